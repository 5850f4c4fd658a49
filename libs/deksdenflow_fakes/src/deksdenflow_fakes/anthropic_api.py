"""A fake Anthropic Messages API, as the real Claude Code CLI speaks it (``POST /v1/messages?beta=true``).

Claude Code streams every model call: it expects Server-Sent Events ``message_start`` (with the input
usage), then per content block ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``,
then ``message_delta`` (stop reason and output usage) and ``message_stop``. Tool calls are ``tool_use``
blocks whose input arrives as ``input_json_delta`` pieces; the CLI runs the tool (Bash, Write, Edit...)
and sends the result back in the next request as a ``tool_result`` block with the same id. The whole
conversation is re-sent on every request.

Scripting mirrors ``responses_api``: ``push(turn)`` queues answers, or a ``handler(request_json) -> Turn``
decides from the conversation. Answered request bodies are kept in ``calls``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from deksdenflow_fakes.httpserver import FakeServer, Reply, Request

# The model id tests pass with ``--model``: a real one, so the CLI knows its context window and prices.
CLAUDE_TEST_MODEL = "claude-sonnet-4-5"
# The tool Claude Code adds for ``--json-schema``: the model answers by calling it with the object.
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Usage:
    """Token counts of one message, as the Messages API reports them."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens: int = 0


def _new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class Turn:
    """One scripted answer: content blocks (text, tool_use) with usage, or a failure mode.

    ``hold_seconds`` keeps the stream open (after ``message_start``) before the content, for cancel and
    timeout tests; the hold ends early when the fake stops.
    """

    blocks: tuple[Mapping[str, Any], ...] = ()
    usage: Usage = Usage(input_tokens=10, output_tokens=5)
    http_status: int = 200
    failure: str | None = None
    cut_stream: bool = False
    hold_seconds: float = 0.0
    message_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(block["type"] == "tool_use" for block in self.blocks) else "end_turn"

    # --- builders -------------------------------------------------------------------------------------

    @classmethod
    def message(cls, text: str, usage: Usage | None = None) -> Turn:
        """A final text answer (the CLI's ``result``)."""
        return cls(blocks=({"type": "text", "text": text},), usage=usage or cls.usage)

    @classmethod
    def json(cls, payload: Any, usage: Usage | None = None) -> Turn:
        """A final text answer whose text is ``payload`` as JSON."""
        return cls.message(json.dumps(payload), usage=usage)

    @classmethod
    def tool(
        cls,
        name: str,
        tool_input: Mapping[str, Any],
        *,
        tool_id: str | None = None,
        usage: Usage | None = None,
    ) -> Turn:
        """A ``tool_use`` block: the CLI runs tool ``name`` and answers with a ``tool_result``."""
        block = {"type": "tool_use", "id": tool_id or _new_tool_id(), "name": name, "input": dict(tool_input)}
        return cls(blocks=(block,), usage=usage or cls.usage)

    @classmethod
    def bash(cls, command: str, *, tool_id: str | None = None) -> Turn:
        """Run a shell command with the CLI's ``Bash`` tool."""
        return cls.tool("Bash", {"command": command, "description": "run a command"}, tool_id=tool_id)

    @classmethod
    def write(cls, file_path: str, content: str, *, tool_id: str | None = None) -> Turn:
        """Create or overwrite ``file_path`` (absolute, as the CLI requires) with the ``Write`` tool."""
        return cls.tool("Write", {"file_path": file_path, "content": content}, tool_id=tool_id)

    @classmethod
    def structured(cls, payload: Any, usage: Usage | None = None) -> Turn:
        """Answer a ``--json-schema`` run: call the CLI's structured-output tool with ``payload``."""
        return cls.tool(STRUCTURED_OUTPUT_TOOL, payload, usage=usage)

    @classmethod
    def http_error(cls, status: int, message: str = "fake model error") -> Turn:
        """An HTTP error with an Anthropic error body (``overloaded_error`` for 529, ``api_error``...)."""
        return cls(http_status=status, failure=message)

    @classmethod
    def failed(cls, message: str = "Overloaded") -> Turn:
        """A streamed ``error`` event (``overloaded_error``) in place of the content.

        Claude Code answers a broken stream (this, or ``cut``) by sending the request again without
        streaming: script the turn for that one too.
        """
        return cls(failure=message)

    @classmethod
    def cut(cls) -> Turn:
        """A stream that closes after ``message_start``, before ``message_stop``."""
        return cls(cut_stream=True)

    def held(self, seconds: float) -> Turn:
        """This turn, answered only after keeping the stream open for ``seconds``."""
        return replace(self, hold_seconds=seconds)


# --- reading recorded requests -----------------------------------------------------------------------


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def user_text(call: Mapping[str, Any]) -> str:
    """The prompt: the last text block of the first user message.

    Claude Code puts its own ``<system-reminder>`` blocks before the user's text in that message.
    """
    for message in call.get("messages", []):
        if message.get("role") == "user":
            texts = [block["text"] for block in _blocks(message) if block.get("type") == "text"]
            return str(texts[-1]) if texts else ""
    return ""


def system_text(call: Mapping[str, Any]) -> str:
    """The system prompt, all blocks joined."""
    system = call.get("system")
    if isinstance(system, str):
        return system
    return "\n".join(str(block.get("text", "")) for block in system or [] if isinstance(block, dict))


def tool_names(call: Mapping[str, Any]) -> list[str]:
    """The tools the CLI offered the model in this request."""
    return [str(tool.get("name")) for tool in call.get("tools", []) if isinstance(tool, dict)]


def output_schema(call: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``--json-schema`` the CLI forwarded, as the input schema of its structured-output tool."""
    for tool in call.get("tools", []):
        if isinstance(tool, dict) and tool.get("name") == STRUCTURED_OUTPUT_TOOL:
            schema = tool.get("input_schema")
            return schema if isinstance(schema, dict) else None
    return None


def tool_results(call: Mapping[str, Any]) -> dict[str, str]:
    """Tool results the CLI sent back in this request, by ``tool_use_id``."""
    found: dict[str, str] = {}
    for message in call.get("messages", []):
        for block in _blocks(message):
            if block.get("type") == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = "\n".join(
                        str(part.get("text", "")) for part in content if isinstance(part, dict)
                    )
                found[str(block.get("tool_use_id"))] = str(content)
    return found


# --- the server ----------------------------------------------------------------------------------------

Handler = Callable[[Mapping[str, Any]], Turn]
_answering = threading.local()


def wire_headers() -> dict[str, str]:
    """The ``anthropic-*`` headers (API version, betas) of the request the calling handler is answering.

    A handler that forwards the CLI's request to a real Messages API (the cassettes' recording proxy)
    must send them too: the body uses the beta features they name.
    """
    return dict(getattr(_answering, "headers", {}))


def _event(kind: str, **payload: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}


class FakeAnthropicApi(FakeServer):
    """``POST /v1/messages`` (streamed or not) with ``x-api-key: <api_key>``, answered from scripted turns."""

    def __init__(self, api_key: str = "test-key", handler: Handler | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.handler = handler
        self.calls: list[dict[str, Any]] = []
        self._turns: deque[Turn] = deque()
        self._stopping = threading.Event()

    def push(self, *turns: Turn) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._turns.extend(turns)

    def pending(self) -> int:
        """How many pushed turns no request has consumed yet."""
        with self._lock:
            return len(self._turns)

    def start(self) -> Self:
        self._stopping.clear()
        super().start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # end held streams, so no handler thread outlives the fake
        super().stop()

    def _authorized(self, request: Request) -> bool:
        bearer = request.header("authorization")
        return request.header("x-api-key") == self.api_key or bearer == f"Bearer {self.api_key}"

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v1/messages":
            return Reply.json(404, _error_body(404, f"no route {request.method} {request.path}"))
        if not self._authorized(request):
            return Reply.json(401, _error_body(401, "invalid x-api-key"))
        body = request.json()
        with self._lock:
            self.calls.append(body)
            turn = self._turns.popleft() if self._turns else None
        if turn is None and self.handler is not None:
            _answering.headers = {k: v for k, v in request.headers.items() if k.startswith("anthropic-")}
            turn = self.handler(body)
        if turn is None:
            return Reply.json(500, _error_body(500, "FakeAnthropicApi: no turn scripted for this request"))
        if turn.http_status != 200:
            return Reply.json(turn.http_status, _error_body(turn.http_status, turn.failure or "error"))
        if not body.get("stream"):
            return Reply.json(200, self._message(turn, body, content=list(turn.blocks)))
        return Reply(headers={"content-type": "text/event-stream"}, chunks=self._stream(turn, body))

    def _message(self, turn: Turn, body: Mapping[str, Any], *, content: list[Any]) -> dict[str, Any]:
        usage = turn.usage
        return {
            "id": turn.message_id,
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": turn.stop_reason if content else None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "output_tokens": usage.output_tokens if content else 1,
            },
        }

    def _stream(self, turn: Turn, body: Mapping[str, Any]) -> Iterator[bytes]:
        yield _event("message_start", message=self._message(turn, body, content=[]))
        if turn.hold_seconds and self._stopping.wait(turn.hold_seconds):
            return
        if turn.cut_stream:
            return
        if turn.failure is not None:
            yield _event("error", error={"type": "overloaded_error", "message": turn.failure})
            return
        for index, block in enumerate(turn.blocks):
            for event, payload in _block_events(block):
                yield _event(event, index=index, **payload)
        yield _event(
            "message_delta",
            delta={"stop_reason": turn.stop_reason, "stop_sequence": None},
            usage={"output_tokens": turn.usage.output_tokens},
        )
        yield _event("message_stop")


def _block_events(block: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """How one content block streams: its start (empty), its deltas, its stop.

    Thinking blocks come from recorded real answers (the CLI asks for extended thinking); their signature
    is streamed back unchanged, as the CLI re-sends it with the conversation.
    """
    kind = block["type"]
    if kind == "tool_use":
        yield "content_block_start", {"content_block": {**block, "input": {}}}
        yield (
            "content_block_delta",
            {"delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
        )
    elif kind == "thinking":
        yield "content_block_start", {"content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        yield (
            "content_block_delta",
            {"delta": {"type": "thinking_delta", "thinking": block.get("thinking", "")}},
        )
        yield (
            "content_block_delta",
            {"delta": {"type": "signature_delta", "signature": block.get("signature", "")}},
        )
    elif kind == "text":
        yield "content_block_start", {"content_block": {"type": "text", "text": ""}}
        yield "content_block_delta", {"delta": {"type": "text_delta", "text": block["text"]}}
    else:  # redacted thinking and the like arrive whole
        yield "content_block_start", {"content_block": dict(block)}
    yield "content_block_stop", {}


def claude_env(fake: FakeAnthropicApi) -> dict[str, str]:
    """Environment that points the Claude Code CLI at ``fake`` and keeps it offline and quick to fail.

    No retries (a scripted failure shows at once), no telemetry, error reporting or auto-update traffic.
    """
    return {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": fake.api_key,
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
