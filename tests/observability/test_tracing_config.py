"""Tracing is configured by OpenTelemetry's own variables: an exporter only when they name one, and then
spans really leave the process (OTLP over HTTP to a collector, here a local stand-in that records what it
is sent)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from deksdenflow_core.tracing import _exporter_configured

_SCRIPT = """
import sys
from deksdenflow_core import tracing
assert tracing.configure("api") is {configured}
with tracing.span("api", "configured span") as span:
    print("recording" if span is not None else "not recording", flush=True)
print("sdk" if "opentelemetry.sdk.trace" in sys.modules else "no sdk", flush=True)
"""


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, ""),
        ({"OTEL_SERVICE_NAME": "x"}, ""),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ""),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ""),
    ],
)
def test_an_exporter_only_when_the_variables_name_one(env: dict[str, str], exporter: str) -> None:
    assert _exporter_configured(env) == exporter


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _run(configured: bool, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(configured=configured)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set(
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, received = collector
    assert _run(True, OTEL_EXPORTER_OTLP_ENDPOINT=url).split() == ["recording", "sdk"]
    # The batch processor flushes when the process exits.
    assert [path for path, _ in received] == ["/v1/traces"]
    body = received[0][1]
    assert b"configured span" in body
    assert b"deksdenflow-api" in body  # service.name, unless OTEL_SERVICE_NAME says otherwise


def test_no_span_and_no_sdk_without_an_exporter() -> None:
    assert _run(False).splitlines() == ["not recording", "no sdk"]
