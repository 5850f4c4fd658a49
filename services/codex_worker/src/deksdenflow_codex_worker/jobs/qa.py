"""QA: the agent reviews a step's commit against the plan and gives a structured verdict.

QA is fail-closed: output that stays invalid after the re-ask, and a QA that cannot run at all, are
recorded as a failing verdict with the reason. The prompt and the reading of the answer are shared with the
QA gate (``qa_verdict``).

A step marked critical (``Critical: yes`` in its file) is judged by a second reviewer as well
(``DEKSDENFLOW_QA_SECOND_REVIEWER``, engine[:model]; default the same engine and model asked again,
independently). The rule: the step passes QA only when both reviewers say PASS; a FAIL of the first is
the verdict at once (the second is not asked), and a FAIL of the second is the verdict with its findings,
each marked with the reviewer that gave it.
"""

from __future__ import annotations

from dataclasses import replace

from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import QaPolicy, QaVerdict
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState, RunStatus, StepState
from deksdenflow_core.jobs import Route
from deksdenflow_git import Worktree

from deksdenflow_codex_worker.agent_calls import AgentCalls
from deksdenflow_codex_worker.engines.base import AgentCall, CallPhase, Sandbox
from deksdenflow_codex_worker.kit import IsCurrent, Job, JobKit, read_protocol_file, step_of
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_codex_worker.planning import InvalidOutput
from deksdenflow_codex_worker.qa_verdict import (
    SCHEMA,
    QaSubject,
    parse_verdict,
    qa_model,
    qa_prompt,
    render,
)
from deksdenflow_codex_worker.settings import WorkerSettings


class QaJob:
    """Answers ``qa_requested``."""

    def __init__(
        self, kit: JobKit, calls: AgentCalls, settings: WorkerSettings, metrics: WorkerMetrics
    ) -> None:
        self.kit = kit
        self.calls = calls
        self.settings = settings
        self.metrics = metrics

    def route(self) -> Route:
        return Route(ev.QaRequested, self.run, self.fail)

    async def run(self, delivery: Delivery, req: ev.QaRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            step = run.step(req.step_run_id)
            return (
                step is not None
                and step.qa_pending
                and step.qa_attempt == req.qa_attempt
                and run.status is not RunStatus.PAUSED
                and not run.is_terminal
            )

        job = await self.kit.take(delivery, current)
        run = job.run
        step = step_of(run, req.step_run_id)
        light = req.policy is QaPolicy.LIGHT
        engine_id = step.qa_engine_id or self.calls.engine_for(CallPhase.QA, job.project)
        model = qa_model(
            self.settings, light=light, chosen=step.qa_model, project=job.project.default_models.qa
        )
        async with self.kit.step_worktree(job, f"qa-{step.index:02d}-{req.qa_attempt}", step) as wt:
            prompt = qa_prompt(wt.path, light=light)
            text = render(prompt, await _subject(wt, run, step), light=light)
            call = self.calls.call(
                job,
                CallPhase.QA,
                text,
                wt.path,
                model,
                Sandbox.READ_ONLY,
                step=step.name,
                output_schema=SCHEMA,
                prompt_of=prompt,
            )
            command = await self._verdict(job, call, engine_id, step, req, current)
            if step.critical and command.verdict is QaVerdict.PASS:
                second_engine, second_model = self._second_reviewer(engine_id, model)
                second = await self._verdict(
                    job, replace(call, model=second_model), second_engine, step, req, current
                )
                command = combine(
                    (f"{engine_id}:{model}", command), (f"{second_engine}:{second_model}", second)
                )
        self.metrics.qa_verdicts.labels(command.verdict.name.lower(), "light" if light else "full").inc()
        await self.kit.record(
            run.protocol_run_id,
            [
                command.model_copy(
                    update={"prompt_version": prompt.version, "engine_id": engine_id, "model": model}
                )
            ],
            delivery,
        )

    async def fail(self, delivery: Delivery, req: ev.QaRequested, reason: str) -> None:
        await self.kit.record(
            delivery.event.envelope.aggregate_id,
            [fail_closed(req.step_run_id, req.qa_attempt, f"QA could not run: {reason}")],
            delivery,
        )

    def _second_reviewer(self, engine_id: str, model: str) -> tuple[str, str]:
        """The engine and model of a critical step's second reviewer."""
        engine, _, chosen = self.settings.qa_second_reviewer.partition(":")
        if not engine:
            return engine_id, model
        return engine, chosen or (model if engine == engine_id else "")

    async def _verdict(
        self,
        job: Job,
        call: AgentCall,
        engine_id: str,
        step: StepState,
        req: ev.QaRequested,
        current: IsCurrent,
    ) -> cmd.RecordQaVerdict:
        """The agent's verdict; output that stays invalid is a failing one (fail-closed)."""
        try:
            verdict = await self.calls.structured(job, call, engine_id, step, current, parse_verdict)
        except InvalidOutput as exc:
            return fail_closed(step.step_run_id, req.qa_attempt, f"QA output was not a valid verdict: {exc}")
        return cmd.RecordQaVerdict(
            step_run_id=step.step_run_id,
            qa_attempt=req.qa_attempt,
            verdict=QaVerdict.PASS if verdict.passed else QaVerdict.FAIL,
            summary=verdict.summary,
            blocking=verdict.blocking,
            warnings=verdict.warnings,
            notes=verdict.notes,
            next_actions=verdict.next_actions,
        )


async def _subject(wt: Worktree, run: ProtocolRunState, step: StepState) -> QaSubject:
    """What QA judges: the protocol files, the worktree's state and the step's commit."""
    diff = await wt.git.run("show", "--format=%H %s", step.commit_sha, cwd=wt.path) if step.commit_sha else ""
    root = run.protocol_root
    return QaSubject(
        protocol_name=run.protocol_name,
        step_name=step.name,
        plan_md=read_protocol_file(wt, root, "plan.md"),
        context_md=read_protocol_file(wt, root, "context.md"),
        log_md=read_protocol_file(wt, root, "log.md"),
        step_content=read_protocol_file(wt, root, step.name),
        git_status=await wt.status_porcelain(),
        last_commit=await wt.last_commit_subject(),
        diff=diff,
    )


def combine(
    first: tuple[str, cmd.RecordQaVerdict], second: tuple[str, cmd.RecordQaVerdict]
) -> cmd.RecordQaVerdict:
    """Two reviewers' verdicts as one: PASS only when both passed; every finding marked with its
    reviewer (``engine:model``), so a FAIL says which reviewer found what."""
    (a, va), (b, vb) = first, second

    def marked(name: str, items: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"[{name}] {item}" for item in items)

    both = va.verdict is QaVerdict.PASS and vb.verdict is QaVerdict.PASS
    return va.model_copy(
        update={
            "verdict": QaVerdict.PASS if both else QaVerdict.FAIL,
            "summary": f"Critical step, two reviewers (both must pass). {a}: {va.verdict.name}: "
            f"{va.summary}\n{b}: {vb.verdict.name}: {vb.summary}",
            "blocking": (*marked(a, va.blocking), *marked(b, vb.blocking)),
            "warnings": (*marked(a, va.warnings), *marked(b, vb.warnings)),
            "notes": (*marked(a, va.notes), *marked(b, vb.notes)),
            "next_actions": (*va.next_actions, *vb.next_actions),
        }
    )


def fail_closed(step_run_id: str, qa_attempt: int, reason: str) -> cmd.RecordQaVerdict:
    """A failing verdict with ``reason`` as its one blocking finding."""
    return cmd.RecordQaVerdict(
        step_run_id=step_run_id,
        qa_attempt=qa_attempt,
        verdict=QaVerdict.FAIL,
        summary=reason,
        blocking=(reason,),
    )
