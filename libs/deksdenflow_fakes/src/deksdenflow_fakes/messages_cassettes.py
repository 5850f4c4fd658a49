"""Cassettes of the Anthropic Messages API: the Claude Code CLI's sessions, recorded and played back.

The same ``Cassette`` file, ``Recorder`` and ``Player`` as the Responses API's (``cassettes``), in the
Messages API's dialect: ``MessagesNormaliser`` says what of a request must match and how an answer is
written down, ``messages_proxy`` records a real Messages API. Serve either through a
``FakeAnthropicApi(handler=...)``: the real ``claude`` CLI then runs its real tools against the fixture
repository, with only the model replaced.

What Claude Code sends and what a cassette keeps of it:

* ``system`` (its built-in prompt, with the call's memory directory in it) and the ``<system-reminder>``
  blocks it puts before the prompt (environment, OS version, git status, today's date, skills, agents):
  normalised, then kept as digests (a reminder's with its first line) — a new CLI version changes them
  and fails loudly, a new day or machine does not;
* ``metadata`` (device and session ids): dropped;
* the conversation — texts, tool calls and their results — normalised in full, tool ids numbered in
  order of appearance, so a mismatch names the very text that differs;
* the offered tools by name, the structured-output schema, ``max_tokens``, ``thinking`` and ``stream``
  (the CLI asks again without streaming after a broken stream).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from deksdenflow_fakes.anthropic_api import STRUCTURED_OUTPUT_TOOL, Handler, Turn, Usage, wire_headers
from deksdenflow_fakes.cassettes import Cassette, Player, Recorder, TextNormaliser, digest_of, scrub_secrets

API_VERSION = "2023-06-01"
ANTHROPIC_URL = "https://api.anthropic.com"
API_KEY_ENV = "ANTHROPIC_API_KEY"
_REMINDER = "<system-reminder>"
_PRIMARY_DIR = re.compile(r"Primary working directory: (\S+)")
# What varies in Claude Code's own context from machine to machine and day to day.
_CLAUDE_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Today's date is \d{4}-\d{2}-\d{2}\."), "Today's date is <DATE>."),
    (re.compile(r"OS Version: [^\n]*"), "OS Version: <OS>"),
    (re.compile(r"^[0-9a-f]{7,12}(?= )", re.MULTILINE), "<SHA>"),  # git status's recent commits
)


def _slug(path: str) -> str:
    """How Claude Code names a project directory after its working directory."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def _label(reminder: str) -> str:
    """What a cassette keeps of one of the CLI's reminders: its first line, to name it in a mismatch, and
    the digest of its (normalised) text."""
    first = reminder.removeprefix(_REMINDER).strip().split("\n", 1)[0]
    return f"{first[:80]} #{digest_of(reminder)}"


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or () if isinstance(block, Mapping)]


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content or "")


class MessagesNormaliser(TextNormaliser):
    """The Messages API's dialect: ``roots`` and ``homes`` as in ``TextNormaliser`` (pass the engine's
    ``config_root`` as a home: each call's config directory shows in the system prompt); the working
    directory the CLI announces, and its project slug, become ``<WORKDIR>`` and ``<WORKDIR_SLUG>``."""

    def text(self, text: str, roots: Mapping[str, str]) -> str:
        text = super().text(text, roots)
        for pattern, replacement in _CLAUDE_VOLATILE:
            text = pattern.sub(replacement, text)
        return text

    def roots_of(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The paths of this request that become placeholders: ``roots`` and the announced worktree."""
        roots = dict(self.roots)
        messages = [m for m in body.get("messages", ()) if isinstance(m, Mapping)]
        for block in _blocks(messages[0]) if messages else ():
            found = _PRIMARY_DIR.search(str(block.get("text", "")))
            if found:
                roots.setdefault(found.group(1), "<WORKDIR>")
                roots.setdefault(_slug(found.group(1)), "<WORKDIR_SLUG>")
        return roots

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        messages = [m for m in body.get("messages", ()) if isinstance(m, Mapping)]
        roots = self.roots_of(body)
        calls: dict[str, str] = {}

        def call(tool_id: Any) -> str:
            return calls.setdefault(str(tool_id), f"<CALL_{len(calls) + 1}>")

        context: list[str] = []
        conversation: list[dict[str, Any]] = []
        for n, message in enumerate(messages):
            role = message.get("role")
            for block in _blocks(message):
                kind = block.get("type")
                if kind == "text":
                    text = self.text(str(block.get("text", "")), roots)
                    if n == 0 and text.startswith(_REMINDER):
                        context.append(_label(text))
                    else:
                        conversation.append({"role": role, "text": text})
                elif kind == "tool_use":
                    args = json.dumps(block.get("input"), sort_keys=True)
                    conversation.append(
                        {
                            "call": block.get("name"),
                            "id": call(block.get("id")),
                            "args": self.text(args, roots),
                        }
                    )
                elif kind == "tool_result":
                    conversation.append(
                        {
                            "output": call(block.get("tool_use_id")),
                            "text": self.text(_result_text(block.get("content")), roots),
                            "error": bool(block.get("is_error")),
                        }
                    )
                elif kind == "thinking":
                    conversation.append({"thinking": self.text(str(block.get("thinking", "")), roots)})
                else:  # redacted thinking, images, documents: compared whole
                    conversation.append({"block": kind, "digest": digest_of(block)})
        system = body.get("system")
        system_text = (
            system
            if isinstance(system, str)
            else "\n".join(str(b.get("text", "")) for b in system or () if isinstance(b, Mapping))
        )
        tools = [t for t in body.get("tools", ()) if isinstance(t, Mapping)]
        schema = next((t.get("input_schema") for t in tools if t.get("name") == STRUCTURED_OUTPUT_TOOL), None)
        return {
            "model": body.get("model"),
            "system": digest_of(self.text(system_text, roots)),
            "context": context,
            "tools": sorted(str(t.get("name") or t.get("type")) for t in tools),
            "output_schema": digest_of(schema) if schema else None,
            "max_tokens": body.get("max_tokens"),
            "thinking": body.get("thinking"),
            "stream": bool(body.get("stream")),
            "conversation": conversation,
        }

    def reply(self, turn: Turn, index: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """How ``turn`` is written down: its message id made stable (tool ids are kept, as they are), and
        the worktree's path a placeholder — Claude Code's file tools take absolute paths, and a playback
        runs in a worktree of its own."""
        if turn.http_status != 200:
            return {"status": turn.http_status, "error": scrub_secrets(turn.failure or "error")}
        if turn.failure is not None:
            return {"failed": scrub_secrets(turn.failure)}
        if turn.cut_stream:
            return {"cut": True}
        u = turn.usage
        return {
            "message_id": f"msg_cassette_{index:04d}",
            "blocks": _swap(json.loads(scrub_secrets(json.dumps(list(turn.blocks)))), self.roots_of(body)),
            "usage": {
                "input_tokens": u.input_tokens,
                "cache_read_input_tokens": u.cache_read_input_tokens,
                "cache_creation_input_tokens": u.cache_creation_input_tokens,
                "output_tokens": u.output_tokens,
            },
        }

    def turn(self, reply: Mapping[str, Any], body: Mapping[str, Any]) -> Turn:
        if reply.get("status", 200) != 200:
            return Turn.http_error(int(reply["status"]), str(reply.get("error", "error")))
        if "failed" in reply:
            return Turn.failed(str(reply["failed"]))
        if reply.get("cut"):
            return Turn.cut()
        return Turn(
            blocks=tuple(_swap(reply.get("blocks", []), {v: k for k, v in self.roots_of(body).items()})),
            usage=Usage(**reply.get("usage", {})),
            message_id=str(reply.get("message_id", "msg_cassette")),
        )

    def refusal(self, why: str) -> Turn:
        return Turn.http_error(400, why)


def _swap(value: Any, replacements: Mapping[str, str]) -> Any:
    """``value`` (JSON) with every text of ``replacements`` replaced, the longest first."""
    text = json.dumps(value)
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    return json.loads(text)


class MessagesRecorder(Recorder[Turn]):
    """A ``FakeAnthropicApi`` handler that answers with ``upstream`` (a scripted model, or
    ``messages_proxy``) and records every exchange."""

    def __init__(self, upstream: Handler, normaliser: MessagesNormaliser | None = None) -> None:
        super().__init__(upstream, normaliser or MessagesNormaliser())


class MessagesPlayer(Player[Turn]):
    """A ``FakeAnthropicApi`` handler that answers from a cassette; a request it does not hold gets an
    HTTP 400 naming the first difference, and is kept in ``mismatches``."""

    def __init__(self, cassette: Cassette, normaliser: MessagesNormaliser | None = None) -> None:
        super().__init__(cassette, normaliser or MessagesNormaliser())


def messages_proxy(
    base_url: str = ANTHROPIC_URL, api_key: str | None = None, *, timeout: float = 600.0
) -> Handler:
    """A handler that forwards each request to a real Messages API (``base_url``) with ``api_key`` (by
    default ``$ANTHROPIC_API_KEY``) and the CLI's ``anthropic-*`` headers, and turns the answer (streamed
    or not) into a ``Turn`` for the recorder. The key is only a header: never recorded."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
    if not key:
        raise ValueError(f"recording from {base_url} needs its key: set {API_KEY_ENV} or pass api_key")

    def forward(body: Mapping[str, Any]) -> Turn:
        headers = {"anthropic-version": API_VERSION, **wire_headers(), "x-api-key": key}
        url = f"{base_url.rstrip('/')}/v1/messages"
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url, json=dict(body), headers=headers) as r,
        ):
            if r.status_code != 200:
                r.read()
                return Turn.http_error(r.status_code, _error_message(r))
            if not body.get("stream"):
                r.read()
                message = r.json()
                return Turn(
                    blocks=tuple(message.get("content", ())),
                    usage=_usage(message.get("usage"), None),
                    message_id=str(message.get("id", "msg")),
                )
            return _from_stream(r.iter_lines())

    return forward


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("message", response.text))
    except ValueError:
        return response.text or response.reason_phrase


def _from_stream(lines: Any) -> Turn:
    """The answer a Messages API streamed, as a ``Turn`` (a stream without ``message_stop`` is a cut)."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    output: Mapping[str, Any] | None = None
    for line in lines:
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:].strip() or "{}")
        kind = event.get("type")
        index = int(event.get("index", 0))
        if kind == "message_start":
            message = event.get("message", {})
        elif kind == "content_block_start":
            blocks[index] = dict(event.get("content_block", {}))
        elif kind == "content_block_delta":
            delta = event.get("delta", {})
            block = blocks[index]
            match delta.get("type"):
                case "text_delta":
                    block["text"] = block.get("text", "") + delta.get("text", "")
                case "input_json_delta":
                    partial[index] = partial.get(index, "") + delta.get("partial_json", "")
                case "thinking_delta":
                    block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
                case "signature_delta":
                    block["signature"] = delta.get("signature", "")
        elif kind == "content_block_stop" and blocks.get(index, {}).get("type") == "tool_use":
            blocks[index]["input"] = json.loads(partial.get(index) or "{}")
        elif kind == "message_delta":
            output = event.get("usage")
        elif kind == "error":
            return Turn.failed(str(event.get("error", {}).get("message", "error")))
        elif kind == "message_stop":
            return Turn(
                blocks=tuple(blocks[i] for i in sorted(blocks)),
                usage=_usage(message.get("usage"), output),
                message_id=str(message.get("id", "msg")),
            )
    return Turn.cut()


def _usage(start: Mapping[str, Any] | None, end: Mapping[str, Any] | None) -> Usage:
    start, end = start or {}, end or {}
    return Usage(
        input_tokens=int(start.get("input_tokens", 0)),
        cache_read_input_tokens=int(start.get("cache_read_input_tokens") or 0),
        cache_creation_input_tokens=int(start.get("cache_creation_input_tokens") or 0),
        output_tokens=int(end.get("output_tokens", start.get("output_tokens", 0))),
    )


__all__ = ("MessagesNormaliser", "MessagesPlayer", "MessagesRecorder", "messages_proxy")
