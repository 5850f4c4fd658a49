"""Execution: the agent does one step in a worktree of the protocol branch; its work is committed with a
trailer naming the job, pushed, and recorded. A CI fix is an execution whose step carries CI's evidence
of the failure, handed to the agent with the step.

Before anything is committed the guardrails inspect the change (``guardrails.py``): a violation is
recorded and the agent asked again, then the step fails. Protocol files the agent changed are always
restored (the step file stays the contract QA reads). Work a dead worker had already pushed is found by its
trailer and recorded, not redone.
"""

from __future__ import annotations

import structlog
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiFailureEvidence,
    GuardrailFinding,
    ReviewFeedback,
    ReviewState,
    StepType,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunCommand, ProtocolRunState, RunStatus, StepState
from deksdenflow_core.jobs import Route
from deksdenflow_git import Worktree

from deksdenflow_codex_worker import guardrails
from deksdenflow_codex_worker.agent_calls import AgentCalls
from deksdenflow_codex_worker.directive import (
    DIRECTIVE_TRAILER,
    DirectiveRead,
    parse_directive,
    take_directive,
    trailer_value,
)
from deksdenflow_codex_worker.engines.base import AgentResult, CallPhase, Sandbox
from deksdenflow_codex_worker.kit import (
    JOB_TRAILER,
    RUN_TRAILER,
    IsCurrent,
    Job,
    JobKit,
    branch_pushed,
    parallel,
    read_protocol_file,
    step_of,
)
from deksdenflow_codex_worker.prompts import Prompt, load_prompt
from deksdenflow_codex_worker.settings import WorkerSettings

log = structlog.get_logger("deksdenflow.codex_worker")


class ExecutionJob:
    """Answers ``step_execution_requested``."""

    def __init__(self, kit: JobKit, calls: AgentCalls, settings: WorkerSettings) -> None:
        self.kit = kit
        self.calls = calls
        self.settings = settings

    def route(self) -> Route:
        return Route(ev.StepExecutionRequested, self.run, self.fail)

    async def run(self, delivery: Delivery, req: ev.StepExecutionRequested) -> None:
        def current(run: ProtocolRunState) -> bool:
            step = run.step(req.step_run_id)
            return (
                step is not None
                and step.executing
                and step.attempt == req.attempt
                and run.status is not RunStatus.PAUSED
                and not run.is_terminal
            )

        job = await self.kit.take(delivery, current)
        run = job.run
        step = step_of(run, req.step_run_id)
        await self.kit.record(
            run.protocol_run_id,
            [
                cmd.RecordStepExecutionStarted(
                    step_run_id=step.step_run_id, attempt=req.attempt, worker_id=self.settings.worker_id
                )
            ],
            delivery,
        )
        job_key = f"exec/{step.step_run_id}/{req.attempt}"
        engine_id = step.engine_id or self.calls.engine_for(CallPhase.EXEC, job.project)
        model = step.model or job.project.default_models.exec or self.settings.exec_model
        async with self.kit.step_worktree(job, f"exec-{step.index:02d}-{req.attempt}", step) as wt:
            prompt = load_prompt("exec", wt.path)
            sha = await wt.find_commit_with_trailer(JOB_TRAILER, job_key)
            if sha is not None:
                log.info("execution already pushed; recording it", commit=sha)
                summary, changed, said = await _commit_summary(wt, sha)
            else:
                done = await self._execute(job, wt, step, req, prompt, engine_id, model, job_key, current)
                if done is None:
                    return
                summary, changed, sha, said = done
            pushed = await branch_pushed(run, wt, sha) if sha else None
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
                directive=said.directive,
                directive_error=said.error,
            )
        ]
        if pushed is not None:
            commands.append(pushed)
        await self.kit.record(run.protocol_run_id, commands, delivery)

    async def fail(self, delivery: Delivery, req: ev.StepExecutionRequested, reason: str) -> None:
        await self.kit.record(
            delivery.event.envelope.aggregate_id,
            [cmd.RecordStepExecutionFailed(step_run_id=req.step_run_id, attempt=req.attempt, reason=reason)],
            delivery,
        )

    async def _execute(
        self,
        job: Job,
        wt: Worktree,
        step: StepState,
        req: ev.StepExecutionRequested,
        prompt: Prompt,
        engine_id: str,
        model: str,
        job_key: str,
        current: IsCurrent,
    ) -> tuple[str, list[str], str | None, DirectiveRead] | None:
        """Run the agent on the step, commit and push: summary, changed files, the commit (None if
        nothing changed) and the agent's directive; None if the agent failed (the failure is recorded).

        A step a trigger queued has no file in the plan: its prompt is its content, and its file is
        written with the agent's work (QA reads it there)."""
        run = job.run
        step_text = _step_content(wt, run.protocol_root, step)  # as planned, before the agent
        text = prompt.render(
            protocol_name=run.protocol_name,
            protocol_root=run.protocol_root,
            step_name=step.name,
            plan_md=read_protocol_file(wt, run.protocol_root, "plan.md"),
            step_content=step_text,
            instructions=instructions(req.instructions, step.ci_failure, step.review),
        )
        restored: list[str] = []
        said = DirectiveRead()

        async def ask(text: str, reask: int) -> AgentResult:
            nonlocal said
            call = self.calls.call(
                job,
                CallPhase.EXEC,
                text,
                wt.path,
                model,
                Sandbox.WORKSPACE_WRITE,
                step=step.name,
                attempt=req.attempt,
                prompt_of=prompt,
                reask=reask,
            )
            result = await self.calls.run(job, call, engine_id, step, current, attempt=req.attempt)
            said = await take_directive(wt)  # never part of the change, nor committed
            return result

        # Only a planned work step's first execution must change something: a retry or a fix may find its
        # work already on the branch, and another agent's step a trigger queued (a review) may change
        # nothing.
        work_step = (
            step.step_type is not StepType.SETUP
            and not step.queued_by
            and req.attempt == 0
            and step.ci_failure is None
            and step.review is None
        )

        async def inspect() -> list[guardrails.Finding]:
            findings, undone = await guard_change(
                wt, self.settings, step_text=step_text, protocol_root=run.protocol_root, work_step=work_step
            )
            restored.extend(p for p in undone if p not in restored)
            return findings

        async def report(findings: list[guardrails.Finding], reask: int, again: bool) -> None:
            await self.kit.record(
                run.protocol_run_id,
                [
                    cmd.RecordGuardrailViolations(
                        step_run_id=step.step_run_id,
                        attempt=req.attempt,
                        reask=reask,
                        findings=[
                            GuardrailFinding(rule=f.rule, message=f.message, evidence=list(f.evidence))
                            for f in findings
                        ],
                        asked_again=again,
                    )
                ],
                job.delivery,
            )

        reasks = self.settings.guardrail_reasks if self.settings.guardrails == "enforce" else 0
        enforced = await guardrails.enforce(text, reasks, ask, inspect, report)
        if enforced.failure:
            await self._failed(job, step, req, enforced.failure)
            return None
        result = enforced.result
        summary = result.last_message.strip() or "(the agent gave no summary)"
        if restored:
            summary += f"\n\n(deksdenflow restored protocol files the agent changed: {', '.join(restored)})"
        changed = await wt.changed_files()
        if _queued_file_missing(wt, run.protocol_root, step):
            path = wt.path / run.protocol_root / step.name
            path.write_text(step.prompt if step.prompt.endswith("\n") else step.prompt + "\n")
        trailers = {JOB_TRAILER: job_key, RUN_TRAILER: run.protocol_run_id}
        if said.directive is not None:
            trailers[DIRECTIVE_TRAILER] = trailer_value(said.directive)
        sha = await wt.commit_all(
            f"feat({_scope(step.name)}): {_subject(summary)} "
            f"[protocol-{job.number}/{step.index:02d}]\n\n{summary}",
            trailers=trailers,
        )
        # Nothing is pushed for a run cancelled meanwhile (a pause lets finished work land).
        await self.kit.check_still(job, lambda r: not r.is_terminal and current_or_paused(r, req))
        if sha is not None:
            # a step of a parallel group may have been rebased onto another's: what was pushed is its sha
            sha = await self.kit.push(wt, parallel=parallel(run, step))
        return summary, changed, sha, said

    async def _failed(self, job: Job, step: StepState, req: ev.StepExecutionRequested, reason: str) -> None:
        await self.kit.record(
            job.run.protocol_run_id,
            [cmd.RecordStepExecutionFailed(step_run_id=step.step_run_id, attempt=req.attempt, reason=reason)],
            job.delivery,
        )


async def guard_change(
    wt: Worktree, settings: WorkerSettings, *, step_text: str, protocol_root: str, work_step: bool
) -> tuple[list[guardrails.Finding], list[str]]:
    """What the guardrails find in the agent's change (none when they are off), and the protocol files
    it changed, restored whatever the guardrails say. ``work_step``: the change must not be empty."""
    findings: list[guardrails.Finding] = []
    if settings.guardrails != "off":
        limits = guardrails.Limits(
            max_lines=settings.guardrail_max_lines,
            max_files=settings.guardrail_max_files,
            protected=tuple(p.strip() for p in settings.guardrail_protected.split(",") if p.strip()),
        )
        findings = guardrails.check(
            await guardrails.read_change(wt),
            step_text,
            protocol_root=protocol_root,
            work_step=work_step,
            root=wt.path,
            limits=limits,
        )
    return findings, await _protect_protocol_files(wt, protocol_root)


def _step_content(wt: Worktree, protocol_root: str, step: StepState) -> str:
    """What the step asks: its file, or for a step a trigger queued whose file is not written yet, its
    prompt."""
    if _queued_file_missing(wt, protocol_root, step):
        return step.prompt
    return read_protocol_file(wt, protocol_root, step.name)


def _queued_file_missing(wt: Worktree, protocol_root: str, step: StepState) -> bool:
    """A step a trigger queued whose file is not on the branch yet (it is written by its execution)."""
    return bool(step.queued_by) and not (wt.path / protocol_root / step.name).is_file()


def current_or_paused(run: ProtocolRunState, req: ev.StepExecutionRequested) -> bool:
    """The execution is still this attempt's (a pause after the agent finished lets the result land)."""
    step = run.step(req.step_run_id)
    return step is not None and step.executing and step.attempt == req.attempt


def instructions(
    extra: str, ci_failure: CiFailureEvidence | None, review: ReviewFeedback | None = None
) -> str:
    """What the step's own text does not say: a user's extra instructions, for a CI fix CI's evidence, and
    for a review fix the reviewer's words."""
    parts: list[str] = []
    if review is not None:
        parts.append(review_instructions(review))
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


async def _protect_protocol_files(wt: Worktree, protocol_root: str) -> list[str]:
    """Undo any change the agent made under the protocol folder: the step file stays the contract
    QA reads (defect 2), and plan/context/log stay as planned."""
    changed = [p for p in await wt.changed_files() if p == protocol_root or p.startswith(protocol_root + "/")]
    if not changed:
        return []
    git = wt.git
    await git.run("checkout", wt.base_sha, "--", protocol_root, cwd=wt.path, check=False)
    await git.run("clean", "-fdq", "--", protocol_root, cwd=wt.path)
    return changed


async def _commit_summary(wt: Worktree, sha: str) -> tuple[str, list[str], DirectiveRead]:
    """What a pushed execution recorded: its summary, changed files and the agent's directive."""
    body = await wt.git.run("show", "-s", "--format=%b", sha, cwd=wt.path)
    lines = body.strip().splitlines()
    summary = "\n".join(
        line for line in lines if not line.startswith((JOB_TRAILER, RUN_TRAILER, DIRECTIVE_TRAILER))
    ).strip()
    said = next(
        (
            parse_directive(line.partition(": ")[2], f"the {DIRECTIVE_TRAILER} trailer of {sha[:12]}")
            for line in lines
            if line.startswith(f"{DIRECTIVE_TRAILER}: ")
        ),
        DirectiveRead(),
    )
    names = await wt.git.run("show", "--format=", "--name-only", sha, cwd=wt.path)
    return summary, [n for n in names.splitlines() if n], said


def _subject(summary: str) -> str:
    first = next((line.strip(" #*-") for line in summary.splitlines() if line.strip()), "apply step")
    return first[:72].rstrip(".") or "apply step"


def _scope(step_name: str) -> str:
    stem = step_name.removesuffix(".md")
    return stem[3:] if len(stem) > 3 and stem[2] == "-" else stem


def review_instructions(review: ReviewFeedback) -> str:
    """A review as the agent fixing it reads it: who asked, what they said, where."""
    who = review.reviewer or "a reviewer"
    verdict = "requested changes" if review.state is ReviewState.CHANGES_REQUESTED else "commented"
    lines = [
        f"A reviewer of the pull request ({who}) {verdict} on your work on this step. This attempt is "
        f"review fix {review.fix_attempt}: address what they asked, and only that; keep everything else "
        "as it is and keep the checks passing.",
    ]
    if review.url:
        lines.append(f"Review: {review.url}")
    if review.body.strip():
        lines += ["What they wrote:", *(f"> {line}" for line in review.body.strip().splitlines())]
    for comment in review.comments:
        where = (
            f"{comment.path}:{comment.line}" if comment.path and comment.line else comment.path or "the PR"
        )
        lines += [f"On {where}:", *(f"> {line}" for line in comment.body.strip().splitlines())]
    return "\n".join(lines)
