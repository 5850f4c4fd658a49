"""A fake OpenAI Responses API, as the real Codex CLI speaks it (streamed ``POST /v1/responses``).

The Codex CLI re-sends the whole conversation on every request and expects, over Server-Sent Events, one
``response.output_item.done`` per output item and then ``response.completed`` carrying an ``id`` (without
``output_item.done`` a message is silently lost; without the ``id`` the turn fails). This fake answers
exactly that, so the CLI under test runs its real loop: it executes the tool calls the fake returns
(shell commands, ``apply_patch``) in its sandbox and sends their output back in the next request.

Scripting: ``push(turn)`` queues answers (first in, first out), or a ``handler(request_json) -> Turn``
decides from the conversation (pushed turns answer first), which suits several CLI runs at once. Every
answered request body is kept in ``calls``; ``user_text``, ``developer_text``, ``output_schema`` and
``tool_outputs`` read them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

from deksdenflow_fakes.httpserver import FakeServer, Reply, Request

# The env var the provider flags of ``codex_provider_args`` name for the key (``env_key``).
CODEX_API_KEY_ENV = "DEKSDENFLOW_FAKE_OPENAI_KEY"
# A slug of the CLI's built-in model catalog: it gets the full tool set, ``apply_patch`` included.
CODEX_TEST_MODEL = "gpt-5.5"


@dataclass(frozen=True)
class Usage:
    """Token counts of one response, in the CLI's terms; sent as the Responses API ``usage`` object."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_output_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class Turn:
    """One scripted answer to one request: output items, or a failure mode.

    ``hold_seconds`` keeps the stream open (after ``response.created``) before answering, which lets a
    test cancel or time out a CLI mid-request; the hold ends early when the fake stops.
    """

    items: tuple[Mapping[str, Any], ...] = ()
    usage: Usage | None = None
    http_status: int = 200
    failure: str | None = None
    failure_code: str = "server_error"
    # The ``error.type`` of an HTTP error's body (the CLI reads some, e.g. ``usage_limit_reached``).
    error_type: str = "server_error"
    cut_stream: bool = False
    hold_seconds: float = 0.0
    response_id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex[:24]}")

    # --- builders -------------------------------------------------------------------------------------

    @classmethod
    def message(cls, text: str, usage: Usage | None = None) -> Turn:
        """An assistant message (the turn's last message when no tool call follows)."""
        item = {
            "type": "message",
            "role": "assistant",
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        return cls(items=(item,), usage=usage)

    @classmethod
    def json(cls, payload: Any, usage: Usage | None = None) -> Turn:
        """An assistant message whose text is ``payload`` as JSON (structured output)."""
        return cls.message(json.dumps(payload), usage=usage)

    @classmethod
    def shell(
        cls, cmd: str, workdir: str | None = None, *, call_id: str | None = None, usage: Usage | None = None
    ) -> Turn:
        """A shell tool call (``exec_command``); the CLI runs ``cmd`` and sends its output back."""
        arguments: dict[str, Any] = {"cmd": cmd}
        if workdir is not None:
            arguments["workdir"] = workdir
        item = {
            "type": "function_call",
            "name": "exec_command",
            "arguments": json.dumps(arguments),
            "call_id": call_id or _new_call_id(),
        }
        return cls(items=(item,), usage=usage)

    @classmethod
    def patch(cls, patch_text: str, *, call_id: str | None = None, usage: Usage | None = None) -> Turn:
        """An ``apply_patch`` tool call; build ``patch_text`` with ``apply_patch(add_file(...), ...)``."""
        item = {
            "type": "custom_tool_call",
            "name": "apply_patch",
            "input": patch_text,
            "call_id": call_id or _new_call_id(),
        }
        return cls(items=(item,), usage=usage)

    @classmethod
    def http_error(
        cls, status: int, message: str = "fake model error", error_type: str = "server_error"
    ) -> Turn:
        """Answer with an HTTP error status and an OpenAI-style error body instead of a stream."""
        return cls(http_status=status, failure=message, error_type=error_type)

    @classmethod
    def failed(cls, message: str = "the model failed", code: str = "server_error") -> Turn:
        """A streamed ``response.failed`` event with an error ``code`` (e.g. ``context_length_exceeded``)."""
        return cls(failure=message, failure_code=code)

    @classmethod
    def cut(cls) -> Turn:
        """A stream that closes before ``response.completed``."""
        return cls(cut_stream=True)

    def held(self, seconds: float) -> Turn:
        """This turn, answered only after keeping the stream open for ``seconds``."""
        return replace(self, hold_seconds=seconds)


# --- apply_patch text --------------------------------------------------------------------------------


def apply_patch(*sections: str) -> str:
    """A whole ``apply_patch`` envelope around file sections (``add_file``, ``update_file``, ...)."""
    return "*** Begin Patch\n" + "".join(sections) + "*** End Patch\n"


def add_file(path: str, content: str) -> str:
    """An ``*** Add File`` section creating ``path`` (relative to the workdir) with ``content``."""
    lines = content.splitlines() or [""]
    return f"*** Add File: {path}\n" + "".join(f"+{line}\n" for line in lines)


def update_file(path: str, old: str, new: str) -> str:
    """An ``*** Update File`` section replacing the lines ``old`` by ``new`` in ``path``."""
    removed = "".join(f"-{line}\n" for line in old.splitlines())
    added = "".join(f"+{line}\n" for line in new.splitlines())
    return f"*** Update File: {path}\n@@\n{removed}{added}"


def delete_file(path: str) -> str:
    """A ``*** Delete File`` section."""
    return f"*** Delete File: {path}\n"


# --- reading recorded requests -----------------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
    return []


def _messages(call: Mapping[str, Any], roles: Sequence[str]) -> list[str]:
    return [
        "\n".join(_texts(item.get("content")))
        for item in call.get("input", [])
        if isinstance(item, dict) and item.get("type", "message") == "message" and item.get("role") in roles
    ]


def user_text(call: Mapping[str, Any]) -> str:
    """The text of the conversation's last user message (the prompt, for a first request)."""
    messages = _messages(call, ("user",))
    return messages[-1] if messages else ""


def developer_text(call: Mapping[str, Any]) -> str:
    """The system side of the conversation: ``instructions`` and every developer/system message."""
    parts = [call["instructions"]] if isinstance(call.get("instructions"), str) else []
    return "\n".join(parts + _messages(call, ("developer", "system")))


def output_schema(call: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema the request asks the answer to match (``text.format`` of type json_schema)."""
    fmt = (call.get("text") or {}).get("format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


def tool_outputs(call: Mapping[str, Any]) -> dict[str, str]:
    """Tool results the CLI sent back in this request, by ``call_id`` (shell and apply_patch alike)."""
    found: dict[str, str] = {}
    for item in call.get("input", []):
        if isinstance(item, dict) and item.get("type") in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            found[str(item.get("call_id"))] = output if isinstance(output, str) else json.dumps(output)
    return found


# --- the server ----------------------------------------------------------------------------------------

Handler = Callable[[Mapping[str, Any]], Turn]


def _event(payload: Mapping[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


class FakeResponsesApi(FakeServer):
    """``POST /v1/responses`` with ``Authorization: Bearer <api_key>``, answered from scripted turns."""

    def __init__(self, api_key: str = "test-key", handler: Handler | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.handler = handler
        self.calls: list[dict[str, Any]] = []
        self._turns: deque[Turn] = deque()
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        """The provider ``base_url`` (the CLI appends ``/responses``)."""
        return f"{self.url}/v1"

    def push(self, *turns: Turn) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._turns.extend(turns)

    def pending(self) -> int:
        """How many pushed turns no request has consumed yet."""
        with self._lock:
            return len(self._turns)

    def stop(self) -> None:
        self._stopping.set()  # end held streams, so no handler thread outlives the fake
        super().stop()

    def start(self) -> Self:
        self._stopping.clear()
        super().start()
        return self

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v1/responses":
            return Reply.json(404, {"error": {"message": f"no route {request.method} {request.path}"}})
        if request.header("authorization") != f"Bearer {self.api_key}":
            return Reply.json(
                401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            )
        body = request.json()
        with self._lock:
            self.calls.append(body)
            turn = self._turns.popleft() if self._turns else None
        if turn is None and self.handler is not None:
            turn = self.handler(body)
        if turn is None:
            return Reply.json(
                500, {"error": {"message": "FakeResponsesApi: no turn scripted for this request"}}
            )
        if turn.http_status != 200:
            message = turn.failure or "error"
            return Reply.json(turn.http_status, {"error": {"message": message, "type": turn.error_type}})
        return Reply(headers={"content-type": "text/event-stream"}, chunks=self._stream(turn, body))

    def _stream(self, turn: Turn, body: Mapping[str, Any]) -> Iterator[bytes]:
        response = {"id": turn.response_id, "object": "response", "model": body.get("model"), "status": ""}
        sequence = iter(range(1_000_000))

        def event(kind: str, **payload: Any) -> bytes:
            return _event({"type": kind, "sequence_number": next(sequence), **payload})

        yield event("response.created", response={**response, "status": "in_progress"})
        if turn.hold_seconds and self._stopping.wait(turn.hold_seconds):
            return
        if turn.cut_stream:
            return
        if turn.failure is not None:
            error = {"code": turn.failure_code, "message": turn.failure}
            yield event("response.failed", response={**response, "status": "failed", "error": error})
            return
        for index, item in enumerate(turn.items):
            yield event("response.output_item.done", output_index=index, item=item)
        completed = {**response, "status": "completed", "output": list(turn.items)}
        if turn.usage is not None:
            completed["usage"] = turn.usage.wire()
        yield event("response.completed", response=completed)


def codex_provider_args(fake: FakeResponsesApi) -> list[str]:
    """``codex`` flags that point the CLI at ``fake`` and keep it offline and quick to fail.

    No retries (a scripted failure shows at once), no plugin sync (a ``git ls-remote`` to the internet
    at start), no analytics. The key is read from ``CODEX_API_KEY_ENV``: see ``codex_provider_env``.
    """
    return codex_offline_args(fake.base_url)


def codex_offline_args(
    base_url: str,
    *,
    name: str = "fake",
    env_key: str = CODEX_API_KEY_ENV,
    stream_idle_timeout_ms: int = 15000,
) -> list[str]:
    """``codex`` flags for a model provider ``name`` at ``base_url`` (its key read from ``env_key``):
    no retries, no plugin sync, no analytics (see ``codex_provider_args``)."""
    provider = (
        f'{{name="{name.title()}", base_url="{base_url}", wire_api="responses", env_key="{env_key}", '
        f"request_max_retries=0, stream_max_retries=0, stream_idle_timeout_ms={stream_idle_timeout_ms}}}"
    )
    return [
        "-c",
        f"model_provider={name}",
        "-c",
        f"model_providers.{name}={provider}",
        "--disable",
        "plugins",
        "--disable",
        "unbounded_connection_retries",
        "-c",
        "analytics.enabled=false",
    ]


def codex_provider_env(fake: FakeResponsesApi) -> dict[str, str]:
    """The environment ``codex_provider_args`` expects: the fake's API key under ``CODEX_API_KEY_ENV``."""
    return {CODEX_API_KEY_ENV: fake.api_key}
