"""Running an evaluation through the whole system, scoring it and recording it in the log.

For every task and variant: the task's fixture becomes an origin (with the variant's prompt overrides
committed), a project is registered on it with the variant's engine and models and an autopilot policy
that opens no PR, and one protocol runs — planning, the execution of its steps, QA — with the real Codex
CLI, whose model requests the ``ModelServer`` answers for that project. When the run stops, its branch
is checked out and scored by the hidden tests, and its events by ``report.score_events``.

Every evaluation is an ``evaluation`` aggregate in the log (``evaluation.started``, one
``evaluation.task_scored`` per run, ``evaluation.completed`` with the summaries and regressions); a
re-score (``rescore``) reads the stored runs back — their branches in the origins, their events — and
appends ``evaluation.rescored``, with no agent call.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from deksdenflow_fakes.cassettes import Player, Recorder

from evals import report, scoring
from evals.authoring import BEHAVIOURS, AuthoredMessagesModel, AuthoredModel
from evals.models import AnyHandler, ModelServer, load_player, normaliser, save_sessions
from evals.system import Harness
from evals.tasks import Task, load, materialize
from evals.variants import Matrix, Variant

CASSETTES = Path(__file__).resolve().parent / "cassettes"
PHASES = ("planning", "decompose", "exec", "qa")
RUN_SECONDS = 180.0
STOPPED = ("completed", "blocked", "failed", "cancelled")
SCORER = "tests+events/1"  # names the scorers: a re-score says which it used


class EvalError(Exception):
    """The evaluation could not run as asked (a cassette mismatch, a run that never stopped, the API)."""


@dataclass
class Options:
    mode: str = "replay"  # replay | author | live
    cassettes: Path = CASSETTES
    thresholds: report.Thresholds = field(default_factory=report.Thresholds)
    ignore_expectations: bool = False
    live: Callable[[str], AnyHandler] | None = None  # live mode: a recording proxy per run, by engine
    live_variants: frozenset[str] = frozenset()  # live mode: the variants recorded (the others replay)


@dataclass
class Outcome:
    evaluation_id: str
    scores: list[dict[str, Any]]
    summaries: list[report.Summary]
    regressions: dict[str, list[str]]
    problems: list[str]
    table: str
    wall: str

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


async def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise EvalError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


async def _wait(api: httpx.AsyncClient, path: str, ready: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + RUN_SECONDS
    body: Any = None
    while time.monotonic() < deadline:
        response = await api.get(path)
        if response.status_code == 200:
            body = response.json()
            if ready(body):
                return body
        await asyncio.sleep(0.2)
    raise EvalError(f"timed out waiting for {what} (last seen: {str(body)[:2000]})")


def _handler(options: Options, variant: Variant, task: Task, h: Harness) -> Player[Any] | Recorder[Any]:
    """What answers the run's model requests, in its engine's dialect (Responses or Messages API)."""
    norm = normaliser(variant.engine, h.home)
    claude = variant.engine == "claude-code"
    if options.mode == "replay" or (options.mode == "live" and variant.id not in options.live_variants):
        return load_player(options.cassettes / variant.id / task.id, norm)
    if options.mode == "author":
        behaviour = BEHAVIOURS.get(variant.id, {}).get(task.id)
        if behaviour is None:
            raise EvalError(f"evals/authoring.py has no behaviour for variant {variant.id}, task {task.id}")
        if claude:
            return Recorder(AuthoredMessagesModel(task, behaviour), norm)
        return Recorder(AuthoredModel(task, behaviour), norm)
    if options.live is None:
        raise EvalError("live mode needs a recording proxy")
    return Recorder(options.live(variant.engine), norm)


async def run_one(
    h: Harness,
    models: ModelServer,
    evaluation_id: str,
    task: Task,
    variant: Variant,
    workdir: Path,
    options: Options,
    started_runs: list[str] | None = None,
) -> dict[str, Any]:
    """One protocol of ``task`` with ``variant`` through the system; its scores."""
    api = h.api
    origin = workdir / evaluation_id / f"{variant.id}--{task.id}.git"
    origin.parent.mkdir(parents=True, exist_ok=True)
    overrides = {f".deksdenflow/prompts/{name}.md": text for name, text in variant.prompts.items()}
    materialize(task, origin, bare=True, extra=overrides)
    project = await _ok(
        await api.post(
            "/projects",
            json={
                "name": f"eval {evaluation_id[:8]} {variant.id}/{task.id}",
                "git_url": str(origin),
                # Onboarding asks for a CI provider; no CI runs here (no PR is opened, no CI is waited for).
                "ci_provider": "github",
                "forge_repo": f"evals/{task.id}",
                "default_engines": dict.fromkeys(PHASES, variant.engine),
                "default_models": dict.fromkeys(PHASES, variant.model),
                "run_policy": {"mode": "autopilot", "pr": {"open": "never"}},
            },
        ),
        f"registering {task.id} for {variant.id}",
    )
    await _wait(api, f"/projects/{project['id']}", lambda p: p["status"] == "ready", "onboarding")
    handler = _handler(options, variant, task, h)
    models.attach(project["id"], handler)
    started = time.monotonic()
    run = await _ok(
        await api.post(
            f"/projects/{project['id']}/protocols", json={"task_name": task.title, "description": task.task}
        ),
        "creating the protocol",
    )
    if started_runs is not None:
        started_runs.append(run["id"])
    await _ok(await api.post(f"/protocols/{run['id']}/actions/start"), "starting the protocol")
    run = await _wait(
        api, f"/protocols/{run['id']}", lambda r: r["status"] in STOPPED, f"{variant.id}/{task.id}"
    )
    wall_ms = int((time.monotonic() - started) * 1000)
    if isinstance(handler, Player) and not handler.finished:
        left = len(handler.cassette.interactions) - len(handler.played)
        raise EvalError(
            f"{variant.id}/{task.id}: the run does not match its cassettes "
            f"({'; '.join(handler.mismatches[:3]) or f'{left} recorded requests never asked'})"
        )
    if isinstance(handler, Recorder):
        save_sessions(
            handler,
            options.cassettes / variant.id / task.id,
            {
                "task": task.id,
                "variant": variant.id,
                "engine": variant.engine,
                "model": variant.model,
                "authored": options.mode == "author",
            },
        )
    stored = {
        "task_id": task.id,
        "variant_id": variant.id,
        "project_id": project["id"],
        "protocol_run_id": run["id"],
        "git_url": str(origin),
        "branch": run["protocol_name"],
        "head_sha": run.get("branch_head_sha") or "",
        "wall_ms": wall_ms,
    }
    return {**stored, **await score_stored(api, task, stored)}


async def score_stored(api: httpx.AsyncClient, task: Task, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The scores of a stored run: its branch in the origin (hidden tests), its events."""
    events = await _ok(
        await api.get(f"/protocols/{stored['protocol_run_id']}/events?limit=500"), "reading the run's events"
    )
    from_events = report.score_events(events["data"])
    tests = await asyncio.to_thread(score_branch, task, str(stored["git_url"]), str(stored["branch"]))
    return {
        "resolved": tests.resolved,
        "f2p_passed": sum(tests.fail_to_pass.values()),
        "f2p_total": len(tests.fail_to_pass),
        "p2p_passed": sum(tests.pass_to_pass.values()),
        "p2p_total": len(tests.pass_to_pass),
        "qa_verdict": from_events.qa_verdict,
        "qa_label": task.qa_label,
        "qa_agrees": report.qa_agrees(from_events.qa_verdict, tests.resolved, task.qa_label),
        "input_tokens": from_events.input_tokens,
        "cached_input_tokens": from_events.cached_input_tokens,
        "output_tokens": from_events.output_tokens,
        "cost_micro_usd": from_events.cost_micro_usd,
        "turns": from_events.turns,
        "guardrail_violations": from_events.guardrail_violations,
        "run_status": from_events.run_status,
    }


async def _cancel(api: httpx.AsyncClient, runs: list[str]) -> None:
    for run_id in runs:
        with contextlib.suppress(httpx.HTTPError):
            await api.post(f"/protocols/{run_id}/actions/cancel")


def score_branch(task: Task, git_url: str, branch: str) -> scoring.TestScore:
    """The hidden tests on a fresh clone of ``branch`` (of the fixture as it was when nothing was pushed)."""
    with tempfile.TemporaryDirectory(prefix=f"eval-{task.id}-") as scratch:
        checkout = Path(scratch) / "checkout"
        cloned = subprocess.run(
            ["git", "clone", "-q", "--branch", branch, git_url, str(checkout)],
            capture_output=True,
            check=False,
        )
        if cloned.returncode != 0:
            shutil.rmtree(checkout, ignore_errors=True)
            subprocess.run(["git", "clone", "-q", git_url, str(checkout)], capture_output=True, check=True)
        return scoring.score(task, checkout)


def conclude(
    evaluation_id: str,
    matrix: Matrix,
    scores: list[dict[str, Any]],
    thresholds: report.Thresholds,
    ignore_expectations: bool = False,
) -> Outcome:
    summaries = [
        report.summarise(v.id, v.label, (s for s in scores if s["variant_id"] == v.id))
        for v in matrix.variants
    ]
    found = report.regressions(summaries, matrix.baseline, thresholds)
    expected = {v.id: v.expect_regression and not ignore_expectations for v in matrix.variants}
    problems = report.verdict(found, expected)
    return Outcome(
        evaluation_id=evaluation_id,
        scores=scores,
        summaries=summaries,
        regressions=found,
        problems=problems,
        table=report.table(scores, summaries, matrix.baseline, found, expected),
        wall=report.wall_times(summaries),
    )


async def evaluate(
    h: Harness, models: ModelServer, matrix: Matrix, tasks: Sequence[Task], workdir: Path, options: Options
) -> Outcome:
    """Every task x variant through the system, recorded in the log as one evaluation."""
    api = h.api
    started = await _ok(
        await api.post(
            "/evaluations",
            json={
                "mode": options.mode,
                "baseline": matrix.baseline,
                "task_ids": [t.id for t in tasks],
                # as applied: a re-score judges the canaries the way this evaluation did
                "variants": [_variant_json(v, options.ignore_expectations) for v in matrix.variants],
                "thresholds": {
                    "resolved_drop": options.thresholds.resolved_drop,
                    "qa_drop": options.thresholds.qa_drop,
                },
                "scorer": SCORER,
            },
        ),
        "starting the evaluation",
    )
    evaluation_id = str(started["id"])
    runs: list[str] = []
    try:
        scores = await asyncio.gather(
            *(
                run_one(h, models, evaluation_id, t, v, workdir, options, runs)
                for v in matrix.variants
                for t in tasks
            )
        )
    except BaseException:
        # The system keeps its data: a run left going would be taken up again at its next start.
        await _cancel(api, runs)
        raise
    if models.unrouted:  # a run an earlier, interrupted evaluation left: answered 400, it fails
        print(
            f"evals: warning: {len(models.unrouted)} model request(s) of no run of this evaluation",
            file=sys.stderr,
        )
    for s in scores:
        await _ok(await api.post(f"/evaluations/{evaluation_id}/scores", json=s), "recording a score")
    outcome = conclude(evaluation_id, matrix, list(scores), options.thresholds, options.ignore_expectations)
    await _ok(
        await api.post(f"/evaluations/{evaluation_id}/complete", json=_conclusion(outcome)),
        "completing the evaluation",
    )
    return outcome


async def rescore(api: httpx.AsyncClient, evaluation_id: str) -> Outcome:
    """The stored runs of an evaluation scored again with the current scorers; ``evaluation.rescored``."""
    stored = await _ok(await api.get(f"/evaluations/{evaluation_id}"), f"reading evaluation {evaluation_id}")
    matrix = Matrix(
        stored["baseline"],
        tuple(
            Variant(v["id"], v["engine_id"], v["model"], {}, v["expect_regression"], v["label"])
            for v in stored["variants"]
        ),
    )
    scores = []
    for old in stored["scores"]:
        fresh = await score_stored(api, load(old["task_id"]), old)
        scores.append({**{k: old[k] for k in _STORED}, **fresh})
    t = stored["thresholds"]
    outcome = conclude(evaluation_id, matrix, scores, report.Thresholds(t["resolved_drop"], t["qa_drop"]))
    await _ok(
        await api.post(
            f"/evaluations/{evaluation_id}/rescores",
            json={"scorer": SCORER, "scores": scores, **_conclusion(outcome)},
        ),
        "recording the re-score",
    )
    return outcome


_STORED = (
    "task_id",
    "variant_id",
    "project_id",
    "protocol_run_id",
    "git_url",
    "branch",
    "head_sha",
    "wall_ms",
)


def _variant_json(v: Variant, ignore_expectations: bool) -> dict[str, Any]:
    return {
        "id": v.id,
        "engine_id": v.engine,
        "model": v.model,
        "prompt_versions": v.prompt_versions,
        "expect_regression": v.expect_regression and not ignore_expectations,
        "label": v.label,
    }


def _conclusion(outcome: Outcome) -> dict[str, Any]:
    return {
        "summaries": [
            {
                "variant_id": s.variant_id,
                "tasks": s.tasks,
                "resolved": s.resolved,
                "qa_verdicts": s.qa_verdicts,
                "qa_agreements": s.qa_agreements,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "cost_micro_usd": s.cost_micro_usd,
                "turns": s.turns,
                "guardrail_violations": s.guardrail_violations,
                "regressions": outcome.regressions.get(s.variant_id, []),
            }
            for s in outcome.summaries
        ],
        "problems": outcome.problems,
        "passed": not outcome.problems,
    }
