"""The codex worker: takes planning, execution and QA requests from the log and appends their results.

Jobs come from one durable pull consumer over the log's ``planning_requested``, ``step_execution_requested``
and ``qa_requested`` events, shared by every replica (each request goes to one of them). A job:

1. re-reads the run from the log and drops the request if it is no longer current (duplicate, stale,
   run paused or ended) — a paused run's work is requested again when it resumes;
2. records ownership (``…started`` with this worker's id), so a redelivered job is visibly taken over;
3. works in a fresh worktree of the protocol branch from the remote (no shared disk between replicas),
   while a watcher re-reads the run and stops the agent within a second of a pause or cancel;
4. commits with a trailer naming the job and pushes (never forced). A redelivered job first looks for
   that trailer on the remote: if the work was already pushed it is reported, not redone — so a worker
   killed at any point still yields one commit;
5. appends the result; the message is acked only after that (heartbeats keep it while the agent runs).

Agent calls are budgeted, their real usage recorded, transient engine failures retried with backoff
(``step_attempt_failed`` for executions), and results failing validation retried once, then reported
as failures with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import structlog
from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN, Repository
from deksdenflow_core.consumer import ConsumerSpec, Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    Phase,
    QaPolicy,
    QaVerdict,
    TokenUsage,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunCommand,
    ProtocolRunState,
    RunStatus,
    StepState,
)
from deksdenflow_core.errors import DeksdenflowError, DomainError
from deksdenflow_core.eventstore import JetStreamEventStore
from deksdenflow_core.jobs import ConsumerPool, result_meta
from deksdenflow_git import BranchLost, MirrorCache, PushRejected, Worktree

from deksdenflow_codex_worker import budget
from deksdenflow_codex_worker.engines.base import (
    AgentCall,
    AgentResult,
    CallPhase,
    EngineError,
    Progress,
    Sandbox,
)
from deksdenflow_codex_worker.engines.registry import EngineRegistry
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.planning import InvalidOutput, parse_json, parse_plan
from deksdenflow_codex_worker.prompts import load_prompt, schema
from deksdenflow_codex_worker.settings import WorkerSettings

log = structlog.get_logger("deksdenflow.codex_worker")
T = TypeVar("T")

JOB_TRAILER = "Deksdenflow-Job"
RUN_TRAILER = "Deksdenflow-Run"
FILE_LIST_LIMIT = 300
# Per-step settings of the plan (engine, model, QA policy), next to the step files.
SPEC_FILE = "spec.json"
SOURCE = "codex-worker"


class Superseded(Exception):
    """The job's work is no longer wanted (run paused, cancelled, or the result already recorded)."""


class BudgetExceeded(DeksdenflowError):
    """A strict budget refuses the next agent call."""


@dataclass(frozen=True)
class Job:
    """One request taken from the log."""

    delivery: Delivery
    run: ProtocolRunState
    project: ProjectState

    @property
    def cause_id(self) -> str:
        return self.delivery.event.envelope.id

    @property
    def correlation_id(self) -> str:
        return self.delivery.event.envelope.correlation_id or self.run.protocol_run_id

    @property
    def number(self) -> str:
        return f"{self.run.number:04d}"


class CodexWorker:
    """Consumes agent work requests; see the module docstring."""

    def __init__(
        self,
        store: JetStreamEventStore,
        settings: WorkerSettings,
        engines: EngineRegistry,
        mirrors: MirrorCache,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.store = store
        self.repo = Repository(store, cache_size=1_000)
        self.settings = settings
        self.engines = engines
        self.mirrors = mirrors
        self.metrics = metrics or WorkerMetrics()
        self.prices = budget.PriceTable(settings.prices())
        self._pool = ConsumerPool(
            store, self.spec(), concurrency=settings.codex_worker_concurrency, on_failure=self.on_failure
        )

    # --- consuming ------------------------------------------------------------------------------------------

    def spec(self) -> ConsumerSpec:
        s = self.store.subjects
        return ConsumerSpec(
            durable=self.settings.codex_worker_durable,
            filter_subjects=[
                s.of_type(ev.PlanningRequested.EVENT_TYPE),
                s.of_type(ev.StepExecutionRequested.EVENT_TYPE),
                s.of_type(ev.QaRequested.EVENT_TYPE),
            ],
            batch=1,
            max_deliver=self.settings.codex_worker_max_deliver,
            backoff_seconds=self.settings.backoff(),
            ack_wait_seconds=self.settings.codex_worker_ack_wait_seconds,
            heartbeat_seconds=self.settings.codex_worker_heartbeat_seconds,
            max_ack_pending=max(64, self.settings.codex_worker_concurrency * 4),
        )

    async def run(self) -> None:
        """Run ``concurrency`` consumer loops on the shared durable until ``stop()``."""
        await self._pool.run(self.handle)

    def stop(self) -> None:
        self._pool.stop()

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.event.event
        kind = type(event).__name__
        with self.metrics.job(kind) as outcome:
            try:
                if isinstance(event, ev.PlanningRequested):
                    await self._planning(delivery, event)
                elif isinstance(event, ev.StepExecutionRequested):
                    await self._execution(delivery, event)
                elif isinstance(event, ev.QaRequested):
                    await self._qa(delivery, event)
                else:  # the filter lets nothing else through
                    outcome.set("ignored")
                    return
            except Superseded as exc:
                outcome.set("superseded")
                log.info("job dropped", reason=str(exc), job=kind)

    async def on_failure(self, delivery: Delivery, exc: Exception) -> None:
        """A job failed for good (permanent error or retries exhausted): record it, never leave it stuck."""
        event = delivery.event.event
        run_id = delivery.event.envelope.aggregate_id
        reason = _reason(exc)
        command: ProtocolRunCommand
        if isinstance(event, ev.PlanningRequested):
            command = cmd.RecordPlanningFailed(attempt=event.attempt, reason=reason)
        elif isinstance(event, ev.StepExecutionRequested):
            command = cmd.RecordStepExecutionFailed(
                step_run_id=event.step_run_id, attempt=event.attempt, reason=reason
            )
        elif isinstance(event, ev.QaRequested):
            command = _fail_closed(event.step_run_id, event.qa_attempt, f"QA could not run: {reason}")
        else:
            return
        await self._record(run_id, [command], delivery)

    # --- planning -------------------------------------------------------------------------------------------

    async def _planning(self, delivery: Delivery, req: ev.PlanningRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            return (
                run.status is RunStatus.PLANNING
                and run.planning_attempt == req.attempt
                and not run.is_terminal
            )

        job = await self._take(delivery, current)
        run = job.run
        await self._record(
            run.protocol_run_id,
            [cmd.RecordPlanningStarted(attempt=req.attempt, worker_id=self.settings.worker_id)],
            delivery,
        )
        job_key = f"planning/{run.protocol_run_id}/{req.attempt}"
        engine_id = self._engine_for("planning", job.project)
        model = job.project.default_models.planning or self.settings.planning_model
        async with self._worktree(job, f"plan-{req.attempt}") as wt:
            sha = await wt.find_commit_with_trailer(JOB_TRAILER, job_key)
            if sha is not None:  # pushed by a worker that died before recording it
                log.info("planning already pushed; recording it", commit=sha)
                prompt = load_prompt("planning", wt.path)
                out = parse_plan(await self._read_protocol_plan(wt, run), run.protocol_root)
            else:
                prompt = load_prompt("planning", wt.path)
                text = prompt.render(
                    protocol_name=run.protocol_name,
                    task_name=run.task_name,
                    description=run.description,
                    file_limit=FILE_LIST_LIMIT,
                    file_list=await self._file_list(wt),
                )
                call = self._call(job, CallPhase.PLANNING, text, wt.path, model, Sandbox.READ_ONLY)
                call = _with_schema(call, "protocol-planning")

                async def parse(result: AgentResult) -> Any:
                    return parse_plan(result.last_message, run.protocol_root)

                try:
                    out = await self._structured(job, call, engine_id, None, current, parse)
                except InvalidOutput as exc:
                    await self._record(
                        run.protocol_run_id,
                        [cmd.RecordPlanningFailed(attempt=req.attempt, reason=f"invalid plan output: {exc}")],
                        delivery,
                    )
                    return
                if self.settings.decompose_steps:
                    out = await self._decompose(job, wt, out, current)
                root = wt.path / run.protocol_root
                shutil.rmtree(root, ignore_errors=True)  # a re-plan replaces the folder; no stale step files
                root.mkdir(parents=True, exist_ok=True)
                for name, content in out.files().items():
                    (root / name).write_text(content if content.endswith("\n") else content + "\n")
                (root / SPEC_FILE).write_text(json.dumps({"steps": out.spec()}, indent=2) + "\n")
                sha = await wt.commit_all(
                    f"docs(protocol): plan {run.protocol_name} [protocol-{job.number}/plan]\n\n"
                    f"{len(out.steps)} steps planned for: {run.task_name}",
                    trailers={JOB_TRAILER: job_key, RUN_TRAILER: run.protocol_run_id},
                )
                await self._check_still(job, current)
                if sha is None:
                    raise EngineError("planning wrote no files", retryable=False)
                await self._push(wt)
        await self._record(
            run.protocol_run_id,
            [
                cmd.RecordPlanningCompleted(
                    attempt=req.attempt,
                    steps=out.step_plans(run.protocol_root),
                    commit_sha=sha,
                    prompt_version=prompt.version,
                    engine_id=engine_id,
                    model=model,
                ),
                cmd.RecordBranchPushed(branch=run.protocol_name, commit_sha=sha),
            ],
            delivery,
        )

    async def _decompose(
        self, job: Job, wt: Worktree, out: Any, current: Callable[[ProtocolRunState], bool]
    ) -> Any:
        """Refine each step file but the setup step; plan/context/log are never touched (defect 3).

        A refinement that stays invalid after its retry keeps the planner's file: the plan is valid
        without it, and the log says so.
        """
        prompt = load_prompt("decompose", wt.path)
        engine_id = self._engine_for("decompose", job.project)
        model = job.project.default_models.decompose or self.settings.decompose_model
        steps = list(out.steps)
        notes: list[str] = []
        for i, step in enumerate(steps):
            if step.filename.startswith("00-"):
                continue
            text = prompt.render(
                protocol_name=job.run.protocol_name,
                plan_md=out.plan_md,
                step_name=step.filename,
                step_content=step.content,
            )
            call = _with_schema(
                self._call(
                    job, CallPhase.DECOMPOSE, text, wt.path, model, Sandbox.READ_ONLY, step=step.filename
                ),
                "step-decomposition",
            )

            async def parse(result: AgentResult) -> Any:
                return parse_json(result.last_message, "step-decomposition")

            try:
                value = await self._structured(job, call, engine_id, None, current, parse)
            except InvalidOutput as exc:
                notes.append(f"- {step.filename}: kept as planned (refinement invalid: {exc})")
                continue
            steps[i] = replace(step, content=value["content"])
        log_md = out.log_md + ("\n\nDecomposition notes:\n" + "\n".join(notes) if notes else "")
        return replace(out, steps=tuple(steps), log_md=log_md)

    async def _read_protocol_plan(self, wt: Worktree, run: ProtocolRunState) -> str:
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

    # --- execution ------------------------------------------------------------------------------------------

    async def _execution(self, delivery: Delivery, req: ev.StepExecutionRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            step = run.step(req.step_run_id)
            return (
                step is not None
                and step.executing
                and step.attempt == req.attempt
                and run.status is not RunStatus.PAUSED
                and not run.is_terminal
            )

        job = await self._take(delivery, current)
        run = job.run
        step = _step(run, req.step_run_id)
        await self._record(
            run.protocol_run_id,
            [
                cmd.RecordStepExecutionStarted(
                    step_run_id=step.step_run_id, attempt=req.attempt, worker_id=self.settings.worker_id
                )
            ],
            delivery,
        )
        job_key = f"exec/{step.step_run_id}/{req.attempt}"
        engine_id = step.engine_id or self._engine_for("exec", job.project)
        model = step.model or job.project.default_models.exec or self.settings.exec_model
        async with self._step_worktree(job, f"exec-{step.index:02d}-{req.attempt}", step) as wt:
            prompt = load_prompt("exec", wt.path)
            sha = await wt.find_commit_with_trailer(JOB_TRAILER, job_key)
            if sha is not None:
                log.info("execution already pushed; recording it", commit=sha)
                summary, changed = await self._commit_summary(wt, sha)
            else:
                plan_md, step_md = (
                    _read(wt, run.protocol_root, "plan.md"),
                    _read(wt, run.protocol_root, step.name),
                )
                text = prompt.render(
                    protocol_name=run.protocol_name,
                    protocol_root=run.protocol_root,
                    step_name=step.name,
                    plan_md=plan_md,
                    step_content=step_md,
                    instructions=_instructions(req.instructions, step.ci_failure),
                )
                call = self._call(
                    job,
                    CallPhase.EXEC,
                    text,
                    wt.path,
                    model,
                    Sandbox.WORKSPACE_WRITE,
                    step=step.name,
                    attempt=req.attempt,
                )
                result = await self._agent(job, call, engine_id, step, current, attempt=req.attempt)
                if not result.ok:
                    await self._record(
                        run.protocol_run_id,
                        [
                            cmd.RecordStepExecutionFailed(
                                step_run_id=step.step_run_id,
                                attempt=req.attempt,
                                reason=f"the agent failed: {result.error or 'no reason given'}",
                            )
                        ],
                        delivery,
                    )
                    return
                restored = await self._protect_protocol_files(wt, run.protocol_root)
                summary = result.last_message.strip() or "(the agent gave no summary)"
                if restored:
                    summary += (
                        f"\n\n(deksdenflow restored protocol files the agent changed: {', '.join(restored)})"
                    )
                changed = await wt.changed_files()
                subject = _subject(summary)
                sha = await wt.commit_all(
                    f"feat({_scope(step.name)}): {subject} "
                    f"[protocol-{job.number}/{step.index:02d}]\n\n{summary}",
                    trailers={JOB_TRAILER: job_key, RUN_TRAILER: run.protocol_run_id},
                )
                # Nothing is pushed for a run cancelled meanwhile (a pause lets finished work land).
                await self._check_still(job, lambda r: not r.is_terminal and current_or_paused(r, req))
                if sha is not None:
                    await self._push(wt)
        commands: list[ProtocolRunCommand] = [
            cmd.RecordStepExecutionCompleted(
                step_run_id=step.step_run_id,
                attempt=req.attempt,
                summary=summary,
                changed_files=tuple(changed),
                commit_sha=sha or "",
                prompt_version=prompt.version,
                engine_id=engine_id,
                model=model,
                auto_qa=self.settings.auto_qa_after_exec,
            )
        ]
        if sha:
            commands.append(cmd.RecordBranchPushed(branch=run.protocol_name, commit_sha=sha))
        await self._record(run.protocol_run_id, commands, delivery)

    async def _protect_protocol_files(self, wt: Worktree, protocol_root: str) -> list[str]:
        """Undo any change the agent made under the protocol folder: the step file stays the contract
        QA reads (defect 2), and plan/context/log stay as planned."""
        changed = [
            p for p in await wt.changed_files() if p == protocol_root or p.startswith(protocol_root + "/")
        ]
        if not changed:
            return []
        git = wt.git
        await git.run("checkout", wt.base_sha, "--", protocol_root, cwd=wt.path, check=False)
        await git.run("clean", "-fdq", "--", protocol_root, cwd=wt.path)
        return changed

    async def _commit_summary(self, wt: Worktree, sha: str) -> tuple[str, list[str]]:
        body = await wt.git.run("show", "-s", "--format=%b", sha, cwd=wt.path)
        summary = "\n".join(
            line for line in body.strip().splitlines() if not line.startswith((JOB_TRAILER, RUN_TRAILER))
        ).strip()
        names = await wt.git.run("show", "--format=", "--name-only", sha, cwd=wt.path)
        return summary, [n for n in names.splitlines() if n]

    # --- QA -------------------------------------------------------------------------------------------------

    async def _qa(self, delivery: Delivery, req: ev.QaRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            step = run.step(req.step_run_id)
            return (
                step is not None
                and step.qa_pending
                and step.qa_attempt == req.qa_attempt
                and run.status is not RunStatus.PAUSED
                and not run.is_terminal
            )

        job = await self._take(delivery, current)
        run = job.run
        step = _step(run, req.step_run_id)
        light = req.policy is QaPolicy.LIGHT
        engine_id = step.qa_engine_id or self._engine_for("qa", job.project)
        model = step.qa_model or (
            (self.settings.qa_light_model if light else "")
            or job.project.default_models.qa
            or self.settings.qa_model
        )
        async with self._step_worktree(job, f"qa-{step.index:02d}-{req.qa_attempt}", step) as wt:
            prompt = load_prompt("qa-light" if light else "qa", wt.path)
            diff = (
                await wt.git.run("show", "--format=%H %s", step.commit_sha, cwd=wt.path)
                if step.commit_sha
                else ""
            )
            text = prompt.render(
                protocol_name=run.protocol_name,
                step_name=step.name,
                plan_md=_read(wt, run.protocol_root, "plan.md"),
                context_md=_read(wt, run.protocol_root, "context.md"),
                log_md=_read(wt, run.protocol_root, "log.md"),
                step_content=_read(wt, run.protocol_root, step.name),
                git_status=(await wt.status_porcelain()) or "(clean)",
                last_commit=await wt.last_commit_subject(),
                diff=_truncate(diff or "(the step changed no file)", 60_000 if light else 200_000),
            )
            call = _with_schema(
                self._call(job, CallPhase.QA, text, wt.path, model, Sandbox.READ_ONLY, step=step.name),
                "qa-verdict",
            )

            async def parse(result: AgentResult) -> Any:
                return parse_json(result.last_message, "qa-verdict")

            try:
                value = await self._structured(job, call, engine_id, step, current, parse)
            except InvalidOutput as exc:
                command = _fail_closed(
                    step.step_run_id, req.qa_attempt, f"QA output was not a valid verdict: {exc}"
                )
            else:
                findings = value["findings"]
                passed = value["verdict"] == "PASS" and not findings["blocking"]
                command = cmd.RecordQaVerdict(
                    step_run_id=step.step_run_id,
                    qa_attempt=req.qa_attempt,
                    verdict=QaVerdict.PASS if passed else QaVerdict.FAIL,
                    summary=value["summary"],
                    blocking=tuple(findings["blocking"]),
                    warnings=tuple(findings["warnings"]),
                    notes=tuple(findings["notes"]),
                    next_actions=tuple(value["next_actions"]),
                )
        self.metrics.qa_verdicts.labels(command.verdict.name.lower()).inc()
        await self._record(
            run.protocol_run_id,
            [
                command.model_copy(
                    update={"prompt_version": prompt.version, "engine_id": engine_id, "model": model}
                )
            ],
            delivery,
        )

    # --- agent calls ----------------------------------------------------------------------------------------

    def _engine_for(self, phase: str, project: ProjectState) -> str:
        return (
            getattr(project.default_engines, phase)
            or getattr(self.settings, f"{phase}_engine")
            or self.settings.default_engine
        )

    def _call(
        self,
        job: Job,
        phase: CallPhase,
        prompt: str,
        workdir: Path,
        model: str,
        sandbox: Sandbox,
        *,
        step: str = "",
        attempt: int = 0,
    ) -> AgentCall:
        return AgentCall(
            call_id=uuid.uuid4().hex,
            phase=phase,
            prompt=prompt,
            workdir=workdir,
            model=model,
            sandbox=sandbox,
            labels={
                "protocol": job.run.protocol_name,
                "project": job.project.project_id,
                "step": step,
                "attempt": str(attempt),
            },
            timeout_seconds=self.settings.agent_timeout_seconds,
        )

    async def _structured(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        current: Callable[[ProtocolRunState], bool],
        parse: Callable[[AgentResult], Awaitable[Any]],
    ) -> Any:
        """A call whose output must parse: one more try with the validation error, then ``InvalidOutput``."""
        problem = ""
        for _ in range(2):
            attempt_call = call if not problem else _retry_call(call, problem)
            result = await self._agent(job, attempt_call, engine_id, step, current)
            if not result.ok:
                problem = f"the agent failed: {result.error or 'no reason given'}"
                continue
            try:
                return await parse(result)
            except InvalidOutput as exc:
                problem = str(exc)
                log.warning("invalid structured output", phase=call.phase.value, problem=problem)
        raise InvalidOutput(problem)

    async def _agent(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        current: Callable[[ProtocolRunState], bool],
        *,
        attempt: int | None = None,
    ) -> AgentResult:
        """One agent call: budget check, tries with backoff for transient engine failures, usage recorded,
        stopped as soon as the run is paused or cancelled."""
        engine = self.engines.get(engine_id)
        await self._check_budget(job, call, step)
        tries = self.settings.codex_worker_tries
        for try_number in range(1, tries + 1):
            call_id = uuid.uuid4().hex
            started = asyncio.get_running_loop().time()
            try:
                result = await self._guarded(job, current, engine.run(call, self._progress(call)))
            except EngineError as exc:
                self.metrics.agent_calls.labels(call.phase.value, engine_id, "error").inc()
                if not exc.retryable or try_number == tries:
                    raise
                if attempt is not None and step is not None:
                    await self._attempt_failed(job, step, attempt, try_number, _reason(exc))
                else:
                    await asyncio.sleep(self._backoff(try_number))
                continue
            finally:
                self.metrics.agent_seconds.labels(call.phase.value, engine_id).observe(
                    asyncio.get_running_loop().time() - started
                )
            self.metrics.agent_calls.labels(
                call.phase.value, engine_id, "ok" if result.ok else "failed"
            ).inc()
            await self._record_usage(job, call, engine_id, step, result, call_id)
            if not result.ok and attempt is not None and step is not None and try_number < tries:
                # A failed turn of an execution is one failed try; the step fails only when all are spent.
                await self._attempt_failed(
                    job, step, attempt, try_number, f"the agent failed: {result.error}"
                )
                continue
            return result
        raise AssertionError("unreachable: the last try returns or raises")

    async def _attempt_failed(
        self, job: Job, step: StepState, attempt: int, try_number: int, reason: str
    ) -> None:
        await self._record(
            job.run.protocol_run_id,
            [
                cmd.RecordStepAttemptFailed(
                    step_run_id=step.step_run_id, attempt=attempt, try_number=try_number, reason=reason
                )
            ],
            job.delivery,
        )
        await asyncio.sleep(self._backoff(try_number))

    def _backoff(self, try_number: int) -> float:
        steps = self.settings.backoff()
        return steps[min(try_number, len(steps)) - 1]

    def _progress(self, call: AgentCall) -> Callable[[Progress], Awaitable[None]]:
        async def report(p: Progress) -> None:
            log.debug("agent progress", phase=call.phase.value, kind=p.kind, text=p.text[:200])

        return report

    async def _record_usage(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState | None,
        result: AgentResult,
        call_id: str,
    ) -> None:
        u = result.usage
        cost = result.reported_cost_micro_usd or self.prices.cost_micro_usd(call.model, u)
        self.metrics.tokens.labels(call.phase.value, call.model, "input").inc(u.input_tokens)
        self.metrics.tokens.labels(call.phase.value, call.model, "output").inc(u.output_tokens)
        await self._record(
            job.run.protocol_run_id,
            [
                cmd.RecordUsage(
                    call_id=call_id,
                    step_run_id=step.step_run_id if step else "",
                    phase=_PHASES[call.phase],
                    engine_id=engine_id,
                    model=call.model,
                    usage=TokenUsage(
                        input_tokens=u.input_tokens,
                        cached_input_tokens=u.cached_input_tokens,
                        output_tokens=u.output_tokens,
                        reasoning_output_tokens=u.reasoning_output_tokens,
                    ),
                    cost_micro_usd=cost,
                )
            ],
            job.delivery,
        )

    async def _check_budget(self, job: Job, call: AgentCall, step: StepState | None) -> None:
        s = self.settings
        mode = s.token_budget_mode
        if mode == "off":
            return
        limits = [
            budget.Limit("step", s.max_tokens_per_step, round(s.max_cost_usd_per_step * 1e6)),
            budget.Limit("protocol", s.max_tokens_per_protocol, round(s.max_cost_usd_per_protocol * 1e6)),
            budget.Limit("project", s.max_tokens_per_project, round(s.max_cost_usd_per_project * 1e6)),
        ]
        limits = [lim for lim in limits if lim.max_tokens or lim.max_cost_micro_usd]
        if step is None:
            limits = [lim for lim in limits if lim.scope != "step"]
        if not limits:
            return
        run = (await self.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
        spent: dict[str, budget.Spent] = {
            "protocol": budget.Spent(run.input_tokens + run.output_tokens, run.cost_micro_usd)
        }
        if step is not None and (fresh := run.step(step.step_run_id)) is not None:
            spent["step"] = budget.Spent(fresh.input_tokens + fresh.output_tokens, fresh.cost_micro_usd)
        if any(lim.scope == "project" for lim in limits):
            spent["project"] = await self._project_spent(job.project.project_id)
        tokens = budget.estimate_tokens(call.prompt)
        verdict = budget.check(
            limits,
            spent,
            next_tokens=tokens,
            next_cost_micro_usd=self.prices.estimate_micro_usd(call.model, tokens),
        )
        if verdict.allowed:
            return
        self.metrics.budget_refusals.labels(mode).inc()
        if mode == "warn":
            log.warning("budget exceeded (warn mode: going on)", reason=verdict.reason)
            return
        if step is not None:
            await self._record(
                job.run.protocol_run_id,
                [cmd.RecordStepBlocked(step_run_id=step.step_run_id, reason=f"budget: {verdict.reason}")],
                job.delivery,
            )
            raise Superseded(f"step blocked by budget: {verdict.reason}")
        raise BudgetExceeded(f"budget: {verdict.reason}")

    async def _project_spent(self, project_id: str) -> budget.Spent:
        loaded = await self.store.read(
            self.store.subjects.of_type(ev.UsageRecorded.EVENT_TYPE, project_id=project_id)
        )
        tokens = cost = 0
        seen: set[str] = set()
        for recorded in loaded.events:
            e = recorded.event
            if isinstance(e, ev.UsageRecorded) and e.call_id not in seen:
                seen.add(e.call_id)
                tokens += (e.usage.input_tokens + e.usage.output_tokens) if e.usage else 0
                cost += e.cost_micro_usd
        return budget.Spent(tokens, cost)

    # --- plumbing -------------------------------------------------------------------------------------------

    async def _take(self, delivery: Delivery, current: Callable[[ProtocolRunState], bool]) -> Job:
        run_id = delivery.event.envelope.aggregate_id
        run = (await self.repo.load(PROTOCOL_RUN, run_id)).state
        if not current(run):
            raise Superseded(f"run {run_id} is {run.status.value}; the request is no longer current")
        project = (await self.repo.load(PROJECT, run.project_id)).state
        if not project.exists:
            raise Superseded(f"project {run.project_id} of run {run_id} does not exist")
        return Job(delivery=delivery, run=run, project=project)

    async def _check_still(self, job: Job, wanted: Callable[[ProtocolRunState], bool]) -> None:
        run = (await self.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
        if not wanted(run):
            raise Superseded(f"run {run.protocol_run_id} is now {run.status.value}")

    async def _guarded(self, job: Job, current: Callable[[ProtocolRunState], bool], work: Awaitable[T]) -> T:
        """Run ``work`` while watching the run; cancel it (which stops the agent) once it is not current."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.settings.codex_worker_watch_seconds)
                if done:
                    return task.result()
                run = (await self.repo.load(PROTOCOL_RUN, job.run.protocol_run_id)).state
                if not current(run):
                    log.info("stopping the agent", run_status=run.status.value)
                    raise Superseded(f"run {run.protocol_run_id} is now {run.status.value}; agent stopped")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @contextlib.asynccontextmanager
    async def _worktree(self, job: Job, name: str, *, expect_head: str = "") -> AsyncIterator[Worktree]:
        run = job.run
        async with self.mirrors.worktree(
            job.project.project_id,
            job.project.git_url,
            branch=run.protocol_name,
            base_branch=run.base_branch or job.project.base_branch,
            job_id=f"{run.protocol_run_id[:12]}-{name}-{uuid.uuid4().hex[:6]}",
            expect_head=expect_head or None,
        ) as wt:
            yield wt

    @contextlib.asynccontextmanager
    async def _step_worktree(self, job: Job, name: str, step: StepState) -> AsyncIterator[Worktree]:
        """The protocol branch as the log knows it, with the plan in it, for work on ``step``.

        A branch the remote deleted or rewritten is pushed back from the last head the log recorded
        (and the log says so); one that cannot be, or a checkout without the plan and the step file,
        blocks the step with the reason: a step never runs on a branch rebuilt from the base.
        """
        run = job.run
        async with contextlib.AsyncExitStack() as stack:
            try:
                wt = await stack.enter_async_context(
                    self._worktree(job, name, expect_head=run.branch_head_sha)
                )
            except BranchLost as exc:
                await self._block(job, step, exc.message)
            if wt.restored is not None:
                restored = wt.restored
                await self._record(
                    run.protocol_run_id,
                    [
                        cmd.RecordBranchRestored(
                            branch=restored.branch,
                            commit_sha=restored.commit_sha,
                            found_sha=restored.found_sha or "",
                        )
                    ],
                    job.delivery,
                )
            missing = [
                f"{run.protocol_root}/{f}"
                for f in ("plan.md", step.name)
                if not (wt.path / run.protocol_root / f).is_file()
            ]
            if missing:
                await self._block(
                    job,
                    step,
                    f"the plan is missing from protocol branch {run.protocol_name} "
                    f"at {wt.base_sha}: {', '.join(missing)} not found",
                )
            yield wt

    async def _block(self, job: Job, step: StepState, reason: str) -> NoReturn:
        """Block ``step`` (and so the run) with ``reason``; the job ends here."""
        log.warning("step blocked", step=step.name, reason=reason)
        await self._record(
            job.run.protocol_run_id,
            [cmd.RecordStepBlocked(step_run_id=step.step_run_id, reason=reason)],
            job.delivery,
        )
        raise Superseded(f"step blocked: {reason}")

    async def _push(self, wt: Worktree) -> None:
        try:
            await wt.push()
        except PushRejected as exc:
            raise DeksdenflowError(f"push refused: {exc}") from exc

    async def _file_list(self, wt: Worktree) -> str:
        files = (await wt.git.run("ls-files", cwd=wt.path)).splitlines()
        shown = files[:FILE_LIST_LIMIT]
        more = f"\n… and {len(files) - len(shown)} more" if len(files) > len(shown) else ""
        return "\n".join(shown) + more

    async def _record(self, run_id: str, commands: list[ProtocolRunCommand], delivery: Delivery) -> None:
        """Append results; a result the run no longer takes (it was cancelled, say) is dropped."""
        meta = result_meta(delivery, source=SOURCE, worker_id=self.settings.worker_id, aggregate_id=run_id)
        try:
            await self.repo.execute_many(PROTOCOL_RUN, run_id, commands, meta, redecide=3)
        except DomainError as exc:
            log.info(
                "result not taken by the run",
                reason=exc.message,
                commands=[type(c).__name__ for c in commands],
            )


def current_or_paused(run: ProtocolRunState, req: ev.StepExecutionRequested) -> bool:
    """The execution is still this attempt's (a pause after the agent finished lets the result land)."""
    step = run.step(req.step_run_id)
    return step is not None and step.executing and step.attempt == req.attempt


_PHASES: Mapping[CallPhase, Phase] = {
    CallPhase.PLANNING: Phase.PLANNING,
    CallPhase.DECOMPOSE: Phase.DECOMPOSE,
    CallPhase.EXEC: Phase.EXEC,
    CallPhase.QA: Phase.QA,
    CallPhase.DISCOVERY: Phase.DISCOVERY,
}


def _with_schema(call: AgentCall, name: str) -> AgentCall:
    return replace(call, output_schema=schema(name))


def _retry_call(call: AgentCall, problem: str) -> AgentCall:
    return replace(
        call,
        call_id=uuid.uuid4().hex,
        prompt=f"{call.prompt}\n\nYour previous answer was rejected: {problem}\n"
        "Answer again with JSON only, exactly matching the schema.",
    )


def _fail_closed(step_run_id: str, qa_attempt: int, reason: str) -> cmd.RecordQaVerdict:
    return cmd.RecordQaVerdict(
        step_run_id=step_run_id,
        qa_attempt=qa_attempt,
        verdict=QaVerdict.FAIL,
        summary=reason,
        blocking=(reason,),
    )


def _step(run: ProtocolRunState, step_run_id: str) -> StepState:
    step = run.step(step_run_id)
    if step is None:
        raise Superseded(f"step {step_run_id} is not in run {run.protocol_run_id}")
    return step


def _read(wt: Worktree, root: str, name: str) -> str:
    path = wt.path / root / name
    return path.read_text() if path.is_file() else f"({root}/{name} is missing)"


def _truncate(text: str, limit: int) -> str:
    return (
        text if len(text) <= limit else text[:limit] + f"\n… (truncated, {len(text) - limit} more characters)"
    )


def _subject(summary: str) -> str:
    first = next((line.strip(" #*-") for line in summary.splitlines() if line.strip()), "apply step")
    return first[:72].rstrip(".") or "apply step"


def _scope(step_name: str) -> str:
    stem = step_name.removesuffix(".md")
    return stem[3:] if len(stem) > 3 and stem[2] == "-" else stem


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, DeksdenflowError) else f"{type(exc).__name__}: {exc}"
    return text[:2000]


def _instructions(extra: str, ci_failure: CiFailureEvidence | None) -> str:
    """What the step's own text does not say: a user's extra instructions, and for a CI fix, CI's evidence."""
    parts: list[str] = []
    if ci_failure is not None:
        commit = ci_failure.head_sha[:12] or "unknown commit"
        said = ci_failure.raw_status or "failure"
        lines = [
            f"CI failed on your previous commit of this step ({commit}, CI said {said}). This attempt is CI "
            f"fix {ci_failure.fix_attempt}: make CI pass without weakening the checks.",
        ]
        if ci_failure.run_url:
            lines.append(f"CI run: {ci_failure.run_url}")
        if ci_failure.job_name:
            lines.append(f"Failed job: {ci_failure.job_name}")
        if ci_failure.log_excerpt:
            lines += ["The end of the failed job's log:", "```", ci_failure.log_excerpt.rstrip("\n"), "```"]
        if ci_failure.note:
            lines.append(f"Note: {ci_failure.note}")
        parts.append("\n".join(lines))
    if extra:
        parts.append(f"Additional instructions:\n{extra}")
    return "".join(f"\n{p}\n" for p in parts)
