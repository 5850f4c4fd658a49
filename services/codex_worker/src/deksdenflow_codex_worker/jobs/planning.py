"""Planning: the agent plans the protocol into numbered step files (each refined once more when
decomposition is on); the plan is committed to the protocol branch, pushed, and its steps recorded.

A plan that stays invalid after the re-ask fails the planning with the reason; a plan a dead worker had
already pushed is read back from the branch and recorded, not made again (what its decomposition did is
read from the commit's trailer).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import structlog
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus
from deksdenflow_core.jobs import Route
from deksdenflow_git import Worktree

from deksdenflow_codex_worker.agent_calls import AgentCalls
from deksdenflow_codex_worker.engines.base import CallPhase, EngineError, Sandbox
from deksdenflow_codex_worker.kit import JOB_TRAILER, RUN_TRAILER, IsCurrent, Job, JobKit, branch_pushed
from deksdenflow_codex_worker.planning import (
    InvalidOutput,
    PlanOutput,
    imported_plan,
    keep_settings,
    parse_json,
    parse_plan,
)
from deksdenflow_codex_worker.prompts import Prompt, load_prompt
from deksdenflow_codex_worker.settings import WorkerSettings

log = structlog.get_logger("deksdenflow.codex_worker")

FILE_LIST_LIMIT = 300
# Per-step settings of the plan (engine, model, QA policy), next to the step files.
SPEC_FILE = "spec.json"
# On the commit of a decomposed plan: what decomposition did (a job that finds the plan pushed reads it back).
DECOMPOSED_TRAILER = "Deksdenflow-Decomposed"


@dataclass(frozen=True)
class Decomposition:
    """What decomposition did to a plan, for the prompt registry's outcomes: the decompose prompt's version
    ("" when decomposition did not run), the step files it refined and those it kept as planned."""

    prompt_version: str = ""
    refined: int = 0
    kept_as_planned: int = 0

    def trailer(self) -> str:
        """One line for :data:`DECOMPOSED_TRAILER`: ``<version> refined=N kept_as_planned=M``."""
        return f"{self.prompt_version} refined={self.refined} kept_as_planned={self.kept_as_planned}"

    @classmethod
    def of_trailer(cls, value: str) -> Decomposition:
        """What :meth:`trailer` wrote; nothing (decomposition did not run) if it is not that."""
        version, *counts = value.split() or [""]
        fields = {key: count for key, _, count in (c.partition("=") for c in counts)}
        try:
            return cls(version, int(fields["refined"]), int(fields["kept_as_planned"]))
        except (KeyError, ValueError):
            return cls()


class PlanningJob:
    """Answers ``planning_requested``."""

    def __init__(self, kit: JobKit, calls: AgentCalls, settings: WorkerSettings) -> None:
        self.kit = kit
        self.calls = calls
        self.settings = settings

    def route(self) -> Route:
        return Route(ev.PlanningRequested, self.run, self.fail)

    async def run(self, delivery: Delivery, req: ev.PlanningRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            return (
                run.status is RunStatus.PLANNING
                and run.planning_attempt == req.attempt
                and not run.is_terminal
            )

        job = await self.kit.take(delivery, current)
        run = job.run
        await self.kit.record(
            run.protocol_run_id,
            [cmd.RecordPlanningStarted(attempt=req.attempt, worker_id=self.settings.worker_id)],
            delivery,
        )
        job_key = _job_key(run, req.attempt)
        engine_id = self.calls.engine_for(CallPhase.PLANNING, job.project)
        model = job.project.default_models.planning or self.settings.planning_model
        async with self.kit.worktree(job, f"plan-{req.attempt}") as wt:
            sha = await wt.find_commit_with_trailer(JOB_TRAILER, job_key)
            prompt = load_prompt("planning", wt.path)
            if sha is not None:  # pushed by a worker that died before recording it
                log.info("planning already pushed; recording it", commit=sha)
                decomposed = await _pushed_decomposition(wt, sha)
                out = (
                    # the import says it all (what the files on the branch do not: groups, policies)
                    imported_plan(run.imported, run.task_name)
                    if run.imported is not None
                    else parse_plan(_read_pushed_plan(wt, run), run.protocol_root)
                )
            else:
                planned = await self._plan(job, wt, prompt, engine_id, model, req, current)
                if planned is None:
                    return
                out, sha, decomposed = planned
            pushed = await branch_pushed(run, wt, sha)
        await self.kit.record(
            run.protocol_run_id,
            [
                cmd.RecordPlanningCompleted(
                    attempt=req.attempt,
                    steps=out.step_plans(run.protocol_root),
                    commit_sha=sha,
                    # an imported plan was written by no agent and no prompt
                    prompt_version="" if run.imported else prompt.version,
                    engine_id="import" if run.imported else engine_id,
                    model="" if run.imported else model,
                    decompose_prompt_version=decomposed.prompt_version,
                    steps_refined=decomposed.refined,
                    steps_kept_as_planned=decomposed.kept_as_planned,
                ),
                pushed,
            ],
            delivery,
        )

    async def fail(self, delivery: Delivery, req: ev.PlanningRequested, reason: str) -> None:
        await self.kit.record(
            delivery.event.envelope.aggregate_id,
            [cmd.RecordPlanningFailed(attempt=req.attempt, reason=reason)],
            delivery,
        )

    async def _plan(
        self,
        job: Job,
        wt: Worktree,
        prompt: Prompt,
        engine_id: str,
        model: str,
        req: ev.PlanningRequested,
        current: IsCurrent,
    ) -> tuple[PlanOutput, str, Decomposition] | None:
        """Plan, decompose, write, commit and push; None if the output stayed invalid (the failure is
        recorded)."""
        run = job.run
        attempt = req.attempt
        job_key = _job_key(run, attempt)
        if run.imported is not None:  # a plan written elsewhere: its files, no agent
            imported = imported_plan(run.imported, run.task_name)
            return await self._commit_plan(job, wt, imported, Decomposition(), job_key, current)
        text = prompt.render(
            protocol_name=run.protocol_name,
            task_name=run.task_name,
            description=run.description,
            file_limit=FILE_LIST_LIMIT,
            file_list=await _file_list(wt),
            feedback=req.feedback,
        )
        text += rejection_note(req.feedback, prompt.template)
        call = self.calls.call(
            job,
            CallPhase.PLANNING,
            text,
            wt.path,
            model,
            Sandbox.READ_ONLY,
            output_schema="protocol-planning",
            prompt_of=prompt,
        )
        try:
            out = await self.calls.structured(
                job, call, engine_id, None, current, lambda message: parse_plan(message, run.protocol_root)
            )
        except InvalidOutput as exc:
            await self.kit.record(
                run.protocol_run_id,
                [cmd.RecordPlanningFailed(attempt=attempt, reason=f"invalid plan output: {exc}")],
                job.delivery,
            )
            return None
        decomposed = Decomposition()
        if self.settings.decompose_steps:
            out, decomposed = await self._decompose(job, wt, out, current)
        return await self._commit_plan(job, wt, out, decomposed, job_key, current)

    async def _commit_plan(
        self,
        job: Job,
        wt: Worktree,
        out: PlanOutput,
        decomposed: Decomposition,
        job_key: str,
        current: IsCurrent,
    ) -> tuple[PlanOutput, str, Decomposition]:
        """Write the plan's files, commit and push them (what decomposition did in a trailer)."""
        run = job.run
        _write_plan(wt.path / run.protocol_root, out)
        trailers = {JOB_TRAILER: job_key, RUN_TRAILER: run.protocol_run_id}
        if decomposed.prompt_version:
            trailers[DECOMPOSED_TRAILER] = decomposed.trailer()
        sha = await wt.commit_all(
            f"docs(protocol): plan {run.protocol_name} [protocol-{job.number}/plan]\n\n"
            f"{len(out.steps)} steps planned for: {run.task_name}",
            trailers=trailers,
        )
        await self.kit.check_still(job, current)
        if sha is None:
            # Planned again (a start on a planned run, a rejected plan) to the very same files: the plan on
            # the branch is this plan; nothing to commit or push.
            if not (wt.path / run.protocol_root / "plan.md").is_file():
                raise EngineError("planning wrote no files", retryable=False)
            return out, await wt.head(), decomposed
        await self.kit.push(wt)
        return out, sha, decomposed

    async def _decompose(
        self, job: Job, wt: Worktree, out: PlanOutput, current: IsCurrent
    ) -> tuple[PlanOutput, Decomposition]:
        """Refine each step file but the setup step; plan/context/log are never touched (defect 3).

        A refinement that stays invalid after its retry keeps the planner's file: the plan is valid
        without it, and the log says so. The counts of both go with the plan to the event log.
        """
        prompt = load_prompt("decompose", wt.path)
        engine_id = self.calls.engine_for(CallPhase.DECOMPOSE, job.project)
        model = job.project.default_models.decompose or self.settings.decompose_model
        steps = list(out.steps)
        notes: list[str] = []
        refined = 0
        for i, step in enumerate(steps):
            if step.filename.startswith("00-"):
                continue
            text = prompt.render(
                protocol_name=job.run.protocol_name,
                plan_md=out.plan_md,
                step_name=step.filename,
                step_content=step.content,
            )
            call = self.calls.call(
                job,
                CallPhase.DECOMPOSE,
                text,
                wt.path,
                model,
                Sandbox.READ_ONLY,
                step=step.filename,
                output_schema="step-decomposition",
                prompt_of=prompt,
            )
            try:
                value = await self.calls.structured(
                    job,
                    call,
                    engine_id,
                    None,
                    current,
                    lambda message: parse_json(message, "step-decomposition"),
                )
            except InvalidOutput as exc:
                notes.append(f"- {step.filename}: kept as planned (refinement invalid: {exc})")
                continue
            steps[i] = replace(step, content=keep_settings(step.content, value["content"]))
            refined += 1
        log_md = out.log_md + ("\n\nDecomposition notes:\n" + "\n".join(notes) if notes else "")
        return replace(out, steps=tuple(steps), log_md=log_md), Decomposition(
            prompt.version, refined, len(notes)
        )


def _job_key(run: ProtocolRunState, attempt: int) -> str:
    """What the plan's commit trailer names: a redelivered job finds its pushed work by it."""
    return f"planning/{run.protocol_run_id}/{attempt}"


async def _pushed_decomposition(wt: Worktree, sha: str) -> Decomposition:
    """What decomposition did to a pushed plan, from its commit's trailer (none: it did not run)."""
    value = await wt.git.run(
        "show", "-s", f"--format=%(trailers:key={DECOMPOSED_TRAILER},valueonly)", sha, cwd=wt.path
    )
    return Decomposition.of_trailer(value)


def _write_plan(root: Path, out: PlanOutput) -> None:
    shutil.rmtree(root, ignore_errors=True)  # a re-plan replaces the folder; no stale step files
    root.mkdir(parents=True, exist_ok=True)
    for name, content in out.files().items():
        (root / name).write_text(content if content.endswith("\n") else content + "\n")
    (root / SPEC_FILE).write_text(json.dumps({"steps": out.spec()}, indent=2) + "\n")


def _read_pushed_plan(wt: Worktree, run: ProtocolRunState) -> str:
    """The plan as pushed, in the planner's output shape (for a job that finds its work done)."""
    root = wt.path / run.protocol_root
    spec = json.loads((root / SPEC_FILE).read_text())
    return json.dumps(
        {
            "plan_md": (root / "plan.md").read_text(),
            "context_md": (root / "context.md").read_text(),
            "log_md": (root / "log.md").read_text(),
            "step_files": [
                {**meta, "content": (root / meta["filename"]).read_text()} for meta in spec["steps"]
            ],
        }
    )


async def _file_list(wt: Worktree) -> str:
    files = (await wt.git.run("ls-files", cwd=wt.path)).splitlines()
    shown = files[:FILE_LIST_LIMIT]
    more = f"\n… and {len(files) - len(shown)} more" if len(files) > len(shown) else ""
    return "\n".join(shown) + more


def rejection_note(feedback: str, template: str) -> str:
    """What a person said when rejecting the previous plan, for the planner, unless the project's own
    template places ``$feedback`` itself."""
    if not feedback.strip() or "$feedback" in template:
        return ""
    return (
        "\n\nA person rejected the previous plan of this protocol. Their reason:\n\n"
        + "\n".join(f"> {line}" for line in feedback.strip().splitlines())
        + "\n\nPlan again, taking it into account.\n"
    )
