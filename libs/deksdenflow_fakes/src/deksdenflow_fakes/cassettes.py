"""Cassettes: an agent CLI's conversation with its model, recorded once and played back offline.

A cassette is the ordered model requests of one or more agent calls — *normalised*: what varies from run
to run (the worktree's path, dates, call and session ids, wall times, the CLI's own ids) is replaced by
placeholders, and the CLI's long built-in instructions by their digest — and, for each, the answer the
model streamed (its output items and usage). Playback (``CassettePlayer``, a ``FakeResponsesApi``
handler) matches each request against the cassette and answers with the recorded stream, so the real
Codex CLI runs its real tool loop — its shell commands and patches execute against the fixture repository
— with only the model replaced. A request the cassette does not hold gets an HTTP 400 naming the first
difference, and is kept in ``mismatches``: a changed prompt, a changed tool output or a new CLI version
fails loudly instead of being answered with a stale stream.

Recording (``CassetteRecorder``) wraps whatever answers: a scripted handler (how the shipped cassettes
are authored, since no model can be reached here) or ``proxy(url, key)``, which forwards each request to a
real Responses API and records its stream. Credentials never reach a cassette: the key is only a header of
the forwarded request, and text that looks like a secret is scrubbed before it is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deksdenflow_fakes.responses_api import Turn, Usage

FORMAT = 1
Handler = Callable[[Mapping[str, Any]], Turn]

# What varies from run to run in text the CLI sends (tool outputs, its environment context).
_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<TIME>"),
    (re.compile(r"<current_date>[^<]*</current_date>"), "<current_date><DATE></current_date>"),
    (re.compile(r"<timezone>[^<]*</timezone>"), "<timezone><TZ></timezone>"),
    (
        re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+\d{1,2}:\d{2}\b"),
        "<DATE>",
    ),
    (re.compile(r"Chunk ID: \w+"), "Chunk ID: <CHUNK>"),
    (re.compile(r"Wall time: [\d.]+ seconds"), "Wall time: <WALL>"),
    (re.compile(r"\bin \d+\.\d+s\b"), "in <SECONDS>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<UUID>"),
    (re.compile(r"\b[0-9a-f]{40}\b"), "<SHA>"),
    (re.compile(r"^pyenv: .*$\n?", re.MULTILINE), ""),  # the machine's shell start-up noise
)
# Text that looks like a credential, scrubbed before anything is written to a cassette.
_SECRETS = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[bp]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|glpat-[A-Za-z0-9_-]{20,})\b"
)
_CALL_ID = re.compile(r"\bcall_[A-Za-z0-9_]+")
_CWD = re.compile(r"<cwd>([^<]+)</cwd>")


def scrub_secrets(text: str) -> str:
    return _SECRETS.sub("<SECRET>", text)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _texts(item: Mapping[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or () if isinstance(c, Mapping))


class Normaliser:
    """Turns requests into their normalised form; paths (``roots``, and the cwd the CLI announces) become
    placeholders, and call ids become their order of appearance in the request. ``homes``: directories
    whose every entry is a per-call home (the engine's ``codex_home_root``): ``<home>/<any entry>``
    becomes the placeholder."""

    def __init__(
        self, roots: Mapping[str, str] | None = None, homes: Mapping[str, str] | None = None
    ) -> None:
        self.roots = dict(roots or {})
        self._homes = [
            (re.compile(re.escape(home.rstrip("/")) + r"/[^/\s`'\"]+"), placeholder)
            for home, placeholder in (homes or {}).items()
        ]

    def text(self, text: str, roots: Mapping[str, str]) -> str:
        for pattern, placeholder in self._homes:
            text = pattern.sub(placeholder, text)
        for path, placeholder in sorted(roots.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(path, placeholder)
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        return scrub_secrets(text)

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        roots = dict(self.roots)
        for item in body.get("input", ()):
            found = _CWD.search(_texts(item)) if item.get("type") == "message" else None
            if found:
                roots.setdefault(found.group(1), "<WORKDIR>")
        calls: dict[str, str] = {}

        def ids(text: str) -> str:
            return _CALL_ID.sub(lambda m: calls.setdefault(m.group(0), f"<CALL_{len(calls) + 1}>"), text)

        developer: list[str] = []
        conversation: list[dict[str, Any]] = []
        for item in body.get("input", ()):
            kind = item.get("type")
            if kind == "message":
                text = self.text(_texts(item), roots)
                if item.get("role") in ("developer", "system"):
                    developer.append(text)
                else:
                    conversation.append({"role": item.get("role"), "text": text})
            elif kind in ("function_call", "custom_tool_call"):
                args = item.get("arguments", item.get("input", ""))
                conversation.append(
                    {
                        "call": item.get("name"),
                        "id": ids(str(item.get("call_id"))),
                        "args": self.text(args, roots),
                    }
                )
            elif kind in ("function_call_output", "custom_tool_call_output"):
                output = item.get("output")
                text = output if isinstance(output, str) else json.dumps(output, sort_keys=True)
                conversation.append({"output": ids(str(item.get("call_id"))), "text": self.text(text, roots)})
        schema = (body.get("text") or {}).get("format", {}).get("schema")
        return {
            "model": body.get("model"),
            "instructions": _digest(self.text(str(body.get("instructions") or ""), roots)),
            "developer": _digest(developer),
            "tools": sorted(str(t.get("name") or t.get("type")) for t in body.get("tools", ())),
            "output_schema": _digest(schema) if schema else None,
            "conversation": conversation,
        }


@dataclass
class Interaction:
    """One request (normalised) and the model's answer."""

    request: dict[str, Any]
    reply: dict[str, Any]

    @property
    def digest(self) -> str:
        return _digest(self.request)

    def turn(self) -> Turn:
        reply = self.reply
        if reply.get("status", 200) != 200:
            return Turn.http_error(int(reply["status"]), str(reply.get("error", "error")))
        if "failed" in reply:
            return Turn.failed(str(reply["failed"]), str(reply.get("code", "server_error")))
        usage = reply.get("usage")
        return Turn(
            items=tuple(reply.get("items", ())),
            usage=Usage(**usage) if usage else None,
            response_id=str(reply.get("response_id", "resp_cassette")),
        )


def reply_of(turn: Turn, index: int) -> dict[str, Any]:
    """How ``turn`` is written down (ids made stable, so a playback streams the same bytes every time)."""
    if turn.http_status != 200:
        return {"status": turn.http_status, "error": scrub_secrets(turn.failure or "error")}
    if turn.failure is not None:
        return {"failed": scrub_secrets(turn.failure), "code": turn.failure_code}
    items = json.loads(scrub_secrets(json.dumps(list(turn.items))))
    reply: dict[str, Any] = {"response_id": f"resp_cassette_{index:04d}", "items": items}
    if turn.usage is not None:
        u = turn.usage
        reply["usage"] = {
            "input_tokens": u.input_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "output_tokens": u.output_tokens,
            "reasoning_output_tokens": u.reasoning_output_tokens,
        }
    return reply


@dataclass
class Cassette:
    """Interactions in the order they were recorded, and what the cassette is of (free-form ``meta``)."""

    interactions: list[Interaction] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        data = {
            "format": FORMAT,
            "meta": self.meta,
            "interactions": [{"request": i.request, "reply": i.reply} for i in self.interactions],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Cassette:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: cassette format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            [Interaction(i["request"], i["reply"]) for i in data["interactions"]], dict(data.get("meta", {}))
        )


class CassetteRecorder:
    """A ``FakeResponsesApi`` handler that answers with ``upstream`` and records every exchange."""

    def __init__(self, upstream: Handler, normaliser: Normaliser | None = None) -> None:
        self.upstream = upstream
        self.normaliser = normaliser or Normaliser()
        self.cassette = Cassette()
        self._lock = threading.Lock()

    def __call__(self, body: Mapping[str, Any]) -> Turn:
        turn = self.upstream(body)
        with self._lock:
            index = len(self.cassette.interactions)
            reply = reply_of(turn, index)
            self.cassette.interactions.append(Interaction(self.normaliser.request(body), reply))
        return Interaction({}, reply).turn()  # what is streamed is what playback will stream


class CassettePlayer:
    """A ``FakeResponsesApi`` handler that answers from a cassette; a request it does not hold gets an
    HTTP 400 naming the difference, and is kept in ``mismatches``."""

    def __init__(self, cassette: Cassette, normaliser: Normaliser | None = None) -> None:
        self.cassette = cassette
        self.normaliser = normaliser or Normaliser()
        self.played: list[int] = []
        self.mismatches: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, body: Mapping[str, Any]) -> Turn:
        request = self.normaliser.request(body)
        digest = _digest(request)
        with self._lock:
            left = [i for i in range(len(self.cassette.interactions)) if i not in self.played]
            match = next((i for i in left if self.cassette.interactions[i].digest == digest), None)
            if match is None:
                expected = self.cassette.interactions[left[0]].request if left else None
                why = difference(expected, request) if expected else "the cassette has no request left"
                self.mismatches.append(f"request {len(self.played) + len(self.mismatches) + 1}: {why}")
                return Turn.http_error(400, f"cassette mismatch: {why}")
            self.played.append(match)
        return self.cassette.interactions[match].turn()

    @property
    def finished(self) -> bool:
        """Every interaction was played, and nothing was asked that the cassette does not hold."""
        return not self.mismatches and len(self.played) == len(self.cassette.interactions)


def difference(expected: Any, got: Any, where: str = "") -> str:
    """The first place two normalised requests differ, in words."""
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        for key in sorted(set(expected) | set(got)):
            if expected.get(key) != got.get(key):
                return difference(expected.get(key), got.get(key), f"{where}.{key}" if where else str(key))
    elif isinstance(expected, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(expected, got, strict=False)):
            if a != b:
                return difference(a, b, f"{where}[{i}]")
        if len(expected) != len(got):
            return f"{where}: {len(expected)} items recorded, {len(got)} sent"
    if isinstance(expected, str) and isinstance(got, str):  # show where the texts part, not their start
        at = next((i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b), None)
        at = min(len(expected), len(got)) if at is None else at
        start = max(0, at - 60)
        return (
            f"{where or 'request'} from character {at}: recorded {_short(expected[start:])}, "
            f"sent {_short(got[start:])}"
        )
    return f"{where or 'request'}: recorded {_short(expected)}, sent {_short(got)}"


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def proxy(base_url: str, api_key: str, *, timeout: float = 600.0) -> Handler:
    """A handler that forwards each request to a real Responses API (``base_url`` such as
    ``https://api.openai.com/v1``) and turns its stream into a ``Turn`` for the recorder."""

    def forward(body: Mapping[str, Any]) -> Turn:
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
        items: list[dict[str, Any]] = []
        usage: Usage | None = None
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", f"{base_url.rstrip('/')}/responses", json=dict(body), headers=headers) as r,
        ):
            if r.status_code != 200:
                r.read()
                message = r.json().get("error", {}).get("message", r.text) if r.text else r.reason_phrase
                return Turn.http_error(r.status_code, str(message))
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:].strip() or "{}")
                kind = event.get("type")
                if kind == "response.output_item.done":
                    items.append(event["item"])
                elif kind == "response.failed":
                    error = event.get("response", {}).get("error") or {}
                    return Turn.failed(
                        str(error.get("message", "failed")), str(error.get("code", "server_error"))
                    )
                elif kind == "response.completed":
                    usage = _usage(event.get("response", {}).get("usage"))
        return Turn(items=tuple(items), usage=usage)

    return forward


def _usage(wire: Mapping[str, Any] | None) -> Usage | None:
    if not wire:
        return None
    return Usage(
        input_tokens=int(wire.get("input_tokens", 0)),
        cached_input_tokens=int((wire.get("input_tokens_details") or {}).get("cached_tokens", 0)),
        output_tokens=int(wire.get("output_tokens", 0)),
        reasoning_output_tokens=int((wire.get("output_tokens_details") or {}).get("reasoning_tokens", 0)),
    )


def transcript(cassette: Cassette) -> list[str]:
    """The cassette's requests, one digest each: two playbacks that sent the same requests match."""
    return [i.digest for i in cassette.interactions]


__all__: Sequence[str] = (
    "Cassette",
    "CassettePlayer",
    "CassetteRecorder",
    "Interaction",
    "Normaliser",
    "difference",
    "proxy",
    "reply_of",
    "scrub_secrets",
    "transcript",
)
