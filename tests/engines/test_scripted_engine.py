"""The scripted engine: answers from a declared script, deterministically, without any model."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_codex_worker.engines.base import CallPhase, EngineError, Progress, Sandbox, TokenCounts
from deksdenflow_codex_worker.engines.scripted import ScriptedEngine

from tests.engines.helpers import make_call


def write_script(path: Path, script: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(script))
    return path


def call_for(
    workdir: Path, phase: CallPhase, step: str = "", attempt: int | None = None, **kwargs: Any
) -> Any:
    labels = {"step": step} if step else {}
    if attempt is not None:
        labels["attempt"] = str(attempt)
    return make_call(workdir, "prompt", model="scripted", phase=phase, labels=labels, **kwargs)


async def test_planning_message_usage_and_json_message(tmp_path: Path) -> None:
    plan = {"steps": [{"file": "01-build.md", "title": "Build"}]}
    script = write_script(
        tmp_path / "script.json",
        {
            "planning": {
                "message": plan,
                "usage": {"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 7},
            }
        },
    )

    result = await ScriptedEngine(script).run(call_for(tmp_path, CallPhase.PLANNING))

    assert result.ok
    assert json.loads(result.last_message) == plan
    assert result.usage == TokenCounts(input_tokens=100, cached_input_tokens=40, output_tokens=7)
    assert result.changed_files == ()


async def test_script_in_the_workdir_and_steps_with_a_wildcard(tmp_path: Path) -> None:
    write_script(
        tmp_path / ".deksdenflow" / "scripted.json",
        {"qa": {"01-build.md": {"message": {"verdict": "FAIL"}}, "*": {"message": {"verdict": "PASS"}}}},
    )
    engine = ScriptedEngine()

    first = await engine.run(call_for(tmp_path, CallPhase.QA, "01-build.md", sandbox=Sandbox.READ_ONLY))
    other = await engine.run(call_for(tmp_path, CallPhase.QA, "02-test.md", sandbox=Sandbox.READ_ONLY))

    assert json.loads(first.last_message) == {"verdict": "FAIL"}
    assert json.loads(other.last_message) == {"verdict": "PASS"}


async def test_edits_are_applied_in_the_workdir_and_reported(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    (workdir / "old.txt").parent.mkdir()
    (workdir / "old.txt").write_text("old")
    script = write_script(
        tmp_path / "script.json",
        {
            "exec": {
                "01-build.md": {
                    "message": "built",
                    "edits": [
                        {"path": "src/app.py", "content": "print(1)\n"},
                        {"path": "old.txt", "delete": True},
                        {"path": "src/app.py", "content": "print(2)\n"},
                    ],
                }
            }
        },
    )
    seen: list[Progress] = []

    async def on_progress(progress: Progress) -> None:
        seen.append(progress)

    result = await ScriptedEngine(script).run(call_for(workdir, CallPhase.EXEC, "01-build.md"), on_progress)

    assert result.ok
    assert result.last_message == "built"
    assert (workdir / "src" / "app.py").read_text() == "print(2)\n"
    assert not (workdir / "old.txt").exists()
    assert result.changed_files == ("src/app.py", "old.txt")
    assert [(p.kind, p.text) for p in seen] == [
        ("file_change", "src/app.py"),
        ("file_change", "old.txt"),
        ("message", "built"),
    ]


@pytest.mark.parametrize("path", ["../outside.txt", "/absolute.txt", "src/../../outside.txt", "."])
async def test_an_edit_leaving_the_workdir_is_refused_and_nothing_is_written(
    tmp_path: Path, path: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = write_script(
        tmp_path / "script.json",
        {"exec": {"*": {"edits": [{"path": "fine.txt", "content": "x"}, {"path": path, "content": "x"}]}}},
    )

    with pytest.raises(EngineError, match="leaves the working directory") as caught:
        await ScriptedEngine(script).run(call_for(workdir, CallPhase.EXEC, "01-build.md"))

    assert not caught.value.retryable
    assert list(workdir.iterdir()) == []
    assert not (tmp_path / "outside.txt").exists()


async def test_an_edit_through_a_symlink_out_of_the_workdir_is_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "link").symlink_to(tmp_path)
    script = write_script(
        tmp_path / "script.json", {"exec": {"*": {"edits": [{"path": "link/escaped.txt", "content": "x"}]}}}
    )

    with pytest.raises(EngineError, match="leaves the working directory"):
        await ScriptedEngine(script).run(call_for(workdir, CallPhase.EXEC, "s.md"))

    assert not (tmp_path / "escaped.txt").exists()


async def test_attempt_lists_pick_by_attempt_and_repeat_the_last(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.json",
        {"exec": {"*": [{"fail": "tests are red", "message": "tried"}, {"message": "fixed"}]}},
    )
    engine = ScriptedEngine(script)

    results = [
        await engine.run(call_for(tmp_path, CallPhase.EXEC, "01.md", attempt)) for attempt in (None, 0, 1, 5)
    ]

    assert [(r.ok, r.last_message, r.error) for r in results] == [
        (False, "tried", "tests are red"),
        (False, "tried", "tests are red"),
        (True, "fixed", ""),
        (True, "fixed", ""),
    ]


async def test_fail_still_applies_its_edits(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.json",
        {"exec": {"*": {"fail": "gave up", "edits": [{"path": "half.txt", "content": "half"}]}}},
    )

    result = await ScriptedEngine(script).run(call_for(tmp_path, CallPhase.EXEC, "01.md"))

    assert not result.ok
    assert result.error == "gave up"
    assert result.changed_files == ("half.txt",)
    assert (tmp_path / "half.txt").read_text() == "half"


@pytest.mark.parametrize(("kind", "retryable"), [("retryable", True), ("permanent", False)])
async def test_error_raises_an_engine_error(tmp_path: Path, kind: str, retryable: bool) -> None:
    script = write_script(
        tmp_path / "script.json",
        {"decompose": {"*": {"error": kind, "edits": [{"path": "never.txt", "content": "x"}]}}},
    )

    with pytest.raises(EngineError, match=kind) as caught:
        await ScriptedEngine(script).run(call_for(tmp_path, CallPhase.DECOMPOSE, "01.md"))

    assert caught.value.retryable is retryable
    assert not (tmp_path / "never.txt").exists()


async def test_delay_is_cancellable(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", {"exec": {"*": {"delay_seconds": 60, "message": "late"}}})
    task = asyncio.create_task(ScriptedEngine(script).run(call_for(tmp_path, CallPhase.EXEC, "01.md")))
    done, _ = await asyncio.wait({task}, timeout=0.5)  # without the delay it would answer at once
    assert not done

    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert time.monotonic() - started < 1


async def test_a_short_delay_then_the_answer(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", {"planning": {"delay_seconds": 0.2, "message": "plan"}})
    started = time.monotonic()

    result = await ScriptedEngine(script).run(call_for(tmp_path, CallPhase.PLANNING))

    assert result.last_message == "plan"
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("script", "phase", "step", "problem"),
    [
        ({"planning": {"message": "x"}}, CallPhase.QA, "01-build.md", "no entry for qa of step 01-build.md"),
        ({"exec": {"02.md": {}}}, CallPhase.EXEC, "01-build.md", "no entry for exec of step 01-build.md"),
        ({}, CallPhase.PLANNING, "", "no entry for planning"),
        ({"exec": {"*": []}}, CallPhase.EXEC, "01.md", "entry list for exec of step 01.md is empty"),
        ({"exec": {"*": {"mesage": "typo"}}}, CallPhase.EXEC, "01.md", "unknown fields ['mesage']"),
        ({"exec": {"*": {"usage": {"tokens": 1}}}}, CallPhase.EXEC, "01.md", "usage must be an object"),
        ({"exec": {"*": {"error": "sometimes"}}}, CallPhase.EXEC, "01.md", 'error must be "retryable"'),
        ({"exec": {"*": {"message": 3}}}, CallPhase.EXEC, "01.md", "message must be"),
        (
            {"exec": {"*": {"edits": [{"path": "a"}]}}},
            CallPhase.EXEC,
            "01.md",
            'either "content" or "delete"',
        ),
        ({"exec": {"*": {"delay_seconds": -1}}}, CallPhase.EXEC, "01.md", "delay_seconds must be"),
        ({"exec": "all"}, CallPhase.EXEC, "01.md", "must map step names"),
    ],
)
async def test_a_broken_or_incomplete_script_is_a_clear_permanent_error(
    tmp_path: Path, script: dict[str, Any], phase: CallPhase, step: str, problem: str
) -> None:
    path = write_script(tmp_path / "script.json", script)

    with pytest.raises(EngineError) as caught:
        await ScriptedEngine(path).run(call_for(tmp_path, phase, step))

    assert problem in caught.value.message
    assert not caught.value.retryable


async def test_a_missing_script_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"no script at .*\.deksdenflow/scripted\.json") as caught:
        await ScriptedEngine().run(call_for(tmp_path, CallPhase.PLANNING))

    assert not caught.value.retryable
