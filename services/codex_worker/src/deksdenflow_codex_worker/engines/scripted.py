"""The ``scripted`` engine: replays a declared script, for demos and tests that need no model at all.

The script is a JSON file (``script_path``, or ``<workdir>/.deksdenflow/scripted.json`` when none is
given, so a demo repository can carry its own)::

    {"planning": ENTRY,
     "decompose": {"<step file>" | "*": ENTRY},
     "exec": {"<step file>" | "*": ENTRY},
     "qa": {"<step file>" | "*": ENTRY}}

(``discovery`` takes one ENTRY, like ``planning``.) The step is the call's ``step`` label; ``*`` answers
any step without an entry of its own. An ENTRY is an object, or a list of them, one per attempt
(``attempt`` label plus the ``reask`` label of a guardrail re-ask, default 0; the last one repeats). Its
fields, all optional:

* ``message``: the last message; a JSON object or array is serialised (structured output);
* ``edits``: ``[{"path": rel, "content": text} | {"path": rel, "delete": true}]``, applied in the workdir
  (a path leaving it is refused); they are the call's ``changed_files``;
* ``usage``: ``{input_tokens, cached_input_tokens, output_tokens, reasoning_output_tokens}``;
* ``delay_seconds``: wait first (cancellable), to exercise cancellation and timeouts;
* ``fail``: a failed turn with that error (``ok`` False; edits are still applied, as a real agent's are);
* ``error``: ``"retryable"`` or ``"permanent"``: raise ``EngineError`` instead of answering.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deksdenflow_codex_worker.engines.base import (
    AgentCall,
    AgentResult,
    CallPhase,
    EngineError,
    Progress,
    ProgressCallback,
    TokenCounts,
)

ENGINE_ID = "scripted"
DEFAULT_SCRIPT = Path(".deksdenflow") / "scripted.json"
# Phases answered by one entry; the others are keyed by step.
SINGLE_ENTRY_PHASES = frozenset({CallPhase.PLANNING, CallPhase.DISCOVERY})
ENTRY_FIELDS = frozenset({"message", "edits", "usage", "delay_seconds", "fail", "error"})
USAGE_FIELDS = frozenset({"input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens"})


def _script_error(message: str, **fields: Any) -> EngineError:
    """A broken or incomplete script: retrying the same call replays the same script, so never retryable."""
    return EngineError(f"scripted engine: {message}", retryable=False, engine=ENGINE_ID, **fields)


class ScriptedEngine:
    """Answers calls from a script; deterministic, no process, no network."""

    def __init__(self, script_path: Path | None = None) -> None:
        self.script_path = script_path

    @property
    def engine_id(self) -> str:
        return ENGINE_ID

    async def run(self, call: AgentCall, on_progress: ProgressCallback | None = None) -> AgentResult:
        path = self.script_path or call.workdir / DEFAULT_SCRIPT
        entry = select_entry(await asyncio.to_thread(_load, path), call)
        delay = entry.get("delay_seconds", 0)
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise _script_error(f"delay_seconds must be a number >= 0, not {delay!r}")
        if delay:
            await asyncio.sleep(delay)
        error = entry.get("error")
        if error is not None:
            if error not in ("retryable", "permanent"):
                raise _script_error(f'error must be "retryable" or "permanent", not {error!r}')
            raise EngineError(
                f"scripted {error} error ({call.phase.value})",
                retryable=error == "retryable",
                engine=ENGINE_ID,
            )
        usage = _usage(entry.get("usage", {}))
        changed = await asyncio.to_thread(apply_edits, call.workdir, entry.get("edits", []))
        for rel in changed:
            await _report(on_progress, Progress("file_change", rel))
        message = _message(entry.get("message", ""))
        if message:
            await _report(on_progress, Progress("message", message))
        fail = entry.get("fail")
        if fail is not None:
            if not isinstance(fail, str):
                raise _script_error(f"fail must be a string, not {fail!r}")
            return AgentResult(
                ok=False, last_message=message, usage=usage, error=fail, exit_code=1, changed_files=changed
            )
        return AgentResult(ok=True, last_message=message, usage=usage, changed_files=changed)


async def _report(on_progress: ProgressCallback | None, progress: Progress) -> None:
    if on_progress is not None:
        await on_progress(progress)


def _load(path: Path) -> Mapping[str, Any]:
    try:
        script = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise _script_error(f"no script at {path}", script=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise _script_error(f"cannot read the script {path}: {exc}", script=str(path)) from exc
    if not isinstance(script, dict):
        raise _script_error(f"the script {path} is not a JSON object", script=str(path))
    return script


def select_entry(script: Mapping[str, Any], call: AgentCall) -> Mapping[str, Any]:
    """The entry answering ``call``: by phase, then step (or ``*``), then attempt."""
    phase = call.phase.value
    step = call.labels.get("step", "")
    where = phase if call.phase in SINGLE_ENTRY_PHASES else f"{phase} of step {step or '(none)'}"
    entry = script.get(phase)
    if call.phase not in SINGLE_ENTRY_PHASES and entry is not None:
        if not isinstance(entry, dict):
            raise _script_error(f'"{phase}" must map step names (or "*") to entries')
        entry = entry.get(step) if step in entry else entry.get("*")
    if entry is None:
        raise _script_error(f"the script has no entry for {where}", phase=phase, step=step)
    if isinstance(entry, list):
        if not entry:
            raise _script_error(f"the entry list for {where} is empty", phase=phase, step=step)
        try:
            attempt = int(call.labels.get("attempt") or 0) + int(call.labels.get("reask") or 0)
        except ValueError as exc:
            raise _script_error(f"attempt label is not a number: {call.labels['attempt']!r}") from exc
        entry = entry[min(max(attempt, 0), len(entry) - 1)]
    if not isinstance(entry, dict):
        raise _script_error(f"the entry for {where} must be an object", phase=phase, step=step)
    unknown = set(entry) - ENTRY_FIELDS
    if unknown:
        raise _script_error(
            f"unknown fields {sorted(unknown)} in the entry for {where}", phase=phase, step=step
        )
    return entry


def _message(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict | list):
        return json.dumps(raw)
    raise _script_error(f"message must be a string, an object or an array, not {raw!r}")


def _usage(raw: Any) -> TokenCounts:
    if not isinstance(raw, dict) or set(raw) - USAGE_FIELDS:
        raise _script_error(f"usage must be an object with fields among {sorted(USAGE_FIELDS)}, not {raw!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw.values()):
        raise _script_error(f"usage counts must be integers >= 0: {raw!r}")
    return TokenCounts(**raw)


def apply_edits(workdir: Path, edits: Any) -> tuple[str, ...]:
    """Apply ``edits`` inside ``workdir``; returns the edited paths (relative, as given, de-duplicated).

    Every path is checked before anything is written, so a script with one bad path changes nothing.
    """
    if not isinstance(edits, list):
        raise _script_error(f"edits must be a list, not {edits!r}")
    root = workdir.resolve()
    planned: list[tuple[str, Path, Mapping[str, Any]]] = []
    for edit in edits:
        if not isinstance(edit, dict) or not isinstance(edit.get("path"), str):
            raise _script_error(f"an edit needs a string path: {edit!r}")
        if set(edit) - {"path", "content", "delete"} or ("content" in edit) == bool(edit.get("delete")):
            raise _script_error(f'an edit has either "content" or "delete": true: {edit!r}')
        if "content" in edit and not isinstance(edit["content"], str):
            raise _script_error(f"edit content must be a string: {edit!r}")
        rel = edit["path"]
        target = (root / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(root) or target == root:
            raise _script_error(f"edit path {rel!r} leaves the working directory", path=rel)
        planned.append((rel, target, edit))
    for _, target, edit in planned:
        if edit.get("delete"):
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(edit["content"])
    return tuple(dict.fromkeys(rel for rel, _, _ in planned))
