"""The command line of the QA gate: arguments in, the verdict's outputs and an exit code out.

``deksdenflow qa ARGS`` runs ``python -m deksdenflow_codex_worker.gate ARGS`` (the runtime does not import
the worker). Data goes to stdout (the Markdown report, or the one output given as ``-``, and the GitHub
annotations); logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import structlog
from deksdenflow_core.errors import ConfigurationError, MissingDependency
from deksdenflow_core.logging import configure_logging
from deksdenflow_core.settings import LogSettings
from deksdenflow_git import Git
from pydantic import ValidationError

from deksdenflow_codex_worker.engines.base import AgentCall, CallPhase, Sandbox
from deksdenflow_codex_worker.engines.registry import build_registry
from deksdenflow_codex_worker.gate import github
from deksdenflow_codex_worker.gate.codequality import codequality
from deksdenflow_codex_worker.gate.evaluate import Evaluation, evaluate
from deksdenflow_codex_worker.gate.junit import junit
from deksdenflow_codex_worker.gate.report import (
    EXIT_MISSING_DEPENDENCY,
    EXIT_NOT_EVALUATED,
    EXIT_USAGE,
    Report,
    failed_closed,
    markdown,
)
from deksdenflow_codex_worker.gate.sarif import sarif
from deksdenflow_codex_worker.gate.subject import Subject, find_checkout, protocol_step, task_change
from deksdenflow_codex_worker.prompts import schema
from deksdenflow_codex_worker.qa_verdict import SCHEMA, qa_model, qa_prompt, render
from deksdenflow_codex_worker.settings import ENGINE_IDS, WorkerSettings

log = structlog.get_logger("deksdenflow.qa")

EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes:
  0  PASS
  1  FAIL (with --fail-on warning, also a PASS with warnings)
  2  usage or configuration error
  3  missing dependency: the engine's CLI (or git) cannot be started
  4  could not evaluate: engine error, timeout, or an answer still invalid after the re-ask

Engines, models and CLIs are configured as for the codex worker (DEKSDENFLOW_QA_ENGINE,
DEKSDENFLOW_DEFAULT_ENGINE, PROTOCOL_QA_MODEL, DEKSDENFLOW_QA_LIGHT_MODEL, DEKSDENFLOW_CODEX_BIN,
DEKSDENFLOW_CODEX_ARGS, ...); the options below win over them.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deksdenflow qa",
        description="Run deksdenflow's QA on a local checkout, as the codex worker does, with no server: "
        "a protocol step (--protocol-root, --step), or a change and its task (--base, --task).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to judge")
    what.add_argument(
        "--protocol-root", type=Path, help="the protocol folder in the checkout, e.g. .protocols/0001-add-x"
    )
    what.add_argument("--step", help="the step file in it, e.g. 01-greeting.md")
    task = what.add_mutually_exclusive_group()
    task.add_argument("--task", help="what the change should do (a repository without protocols)")
    task.add_argument("--task-file", type=Path, help="a file with the task")
    what.add_argument(
        "--base",
        default="",
        help="the change starts at the merge base of this ref and the head (default with --step: HEAD~1, "
        "the step's commit)",
    )
    what.add_argument("--head", default="", help="a commit to end the change at (default: the working tree)")
    what.add_argument("--repo", type=Path, default=Path(), help="the checkout (default: the current one)")

    how = parser.add_argument_group("how")
    how.add_argument(
        "--policy",
        choices=("light", "full"),
        help="light: the step file and the diff only, with the light model (default: the step's policy in "
        "the protocol's spec.json, else full)",
    )
    how.add_argument("--engine", choices=ENGINE_IDS, help="default: as the worker's QA")
    how.add_argument("--model", default="", help="default: as the worker's QA")
    how.add_argument("--timeout", type=_seconds, help="seconds for the whole evaluation (default: 3600)")
    how.add_argument(
        "--fail-on",
        choices=("blocking", "warning"),
        default="blocking",
        help="warning: a PASS with warnings fails too (exit 1)",
    )
    how.add_argument("--codex-bin", help="the Codex CLI (default: codex on PATH)")
    how.add_argument("--claude-bin", help="the Claude Code CLI (default: claude on PATH)")
    how.add_argument("--script", type=Path, help="the scripted engine's script")
    how.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="pass this environment variable to the agent, besides its CLI's own (OPENAI_*, CODEX_*, "
        "ANTHROPIC_*...): e.g. the key of a custom model provider (repeatable)",
    )

    out = parser.add_argument_group("outputs (PATH '-' is stdout; without one, stdout gets the Markdown)")
    out.add_argument("--json", metavar="PATH", help="the verdict as JSON (the qa-verdict schema's shape)")
    out.add_argument("--markdown", metavar="PATH", help="the verdict as Markdown")
    out.add_argument("--sarif", metavar="PATH", help="the findings as SARIF 2.1.0")
    out.add_argument("--junit", metavar="PATH", help="the verdict as JUnit XML")
    out.add_argument("--codequality", metavar="PATH", help="the findings as a GitLab Code Quality report")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot say itself; each problem exits 2 with the usage."""
    tasked = args.task is not None or args.task_file is not None
    if (args.step is None) != (args.protocol_root is None):
        parser.error("--step and --protocol-root go together")
    if args.step is None and not tasked:
        parser.error("say what to judge: --protocol-root and --step, or --task/--task-file with --base")
    if args.step is not None and tasked:
        parser.error("judge either a protocol step or a task, not both")
    if tasked and not args.base:
        parser.error("--task and --task-file need --base (where the change starts)")
    outputs = (args.json, args.markdown, args.sarif, args.junit, args.codequality)
    if sum(path == "-" for path in outputs) > 1:
        parser.error("only one output can go to stdout ('-')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate; returns its exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    try:
        configure_logging(LogSettings(), service="qa")
        return asyncio.run(_gate(args))
    except (ConfigurationError, ValidationError) as exc:
        _error(exc.message if isinstance(exc, ConfigurationError) else f"invalid configuration:\n{exc}")
        return EXIT_USAGE
    except MissingDependency as exc:
        _error(exc.message)
        return EXIT_MISSING_DEPENDENCY
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        log.exception("unexpected failure")
        _error("QA could not evaluate: unexpected failure (traceback above)")
        return EXIT_NOT_EVALUATED


def _error(message: str) -> None:
    print(f"deksdenflow qa: error: {message}", file=sys.stderr)


async def _gate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    agent_env = _passed_env(args.pass_env)
    subject = await _subject(args)
    policy = args.policy or ("light" if subject.planned_policy == "light" else "full")
    light = policy == "light"
    engine_id = args.engine or settings.engine_for("qa")
    model = qa_model(settings, light=light, chosen=args.model)
    if not model:
        raise ConfigurationError("no QA model: give --model, or set PROTOCOL_QA_MODEL")
    prompt = qa_prompt(subject.checkout, light=light)
    timeout = args.timeout or settings.agent_timeout_seconds
    call = _agent_call(subject, render(prompt, subject.qa, light=light), model, timeout)
    log.info(
        "QA",
        subject=subject.title,
        base=subject.change.base,
        files=len(subject.change.changed_files),
        policy=policy,
        engine=engine_id,
        model=model,
        prompt=f"{prompt.name}@{prompt.version} ({prompt.source})",
    )
    evaluation = await _evaluate(settings, engine_id, call, agent_env)
    report = Report(
        verdict=evaluation.verdict or failed_closed(f"QA could not evaluate: {evaluation.error}"),
        error=evaluation.error,
        missing_dependency=evaluation.missing_dependency,
        subject=subject,
        policy=policy,
        prompt=prompt,
        engine=engine_id,
        model=model,
        usage=evaluation.usage,
        fail_on=args.fail_on,
    )
    log.info("QA done", verdict=report.verdict_word, outcome=report.outcome.value, exit_code=report.exit_code)
    _write_outputs(args, report)
    return report.exit_code


def _agent_call(subject: Subject, prompt: str, model: str, timeout: float) -> AgentCall:
    """The QA call, as the worker makes it: read-only in the checkout, answering the qa-verdict schema."""
    return AgentCall(
        call_id=f"qa-{uuid.uuid4().hex[:12]}",
        phase=CallPhase.QA,
        prompt=prompt,
        workdir=subject.checkout,
        model=model,
        sandbox=Sandbox.READ_ONLY,
        output_schema=schema(SCHEMA),
        labels={"protocol": subject.qa.protocol_name, "step": subject.qa.step_name, "attempt": "0"},
        timeout_seconds=timeout,
    )


async def _evaluate(
    settings: WorkerSettings, engine_id: str, call: AgentCall, agent_env: dict[str, str]
) -> Evaluation:
    with _agent_homes() as homes:
        engines = build_registry(
            settings,
            codex_home_root=homes / "codex-home",
            claude_config_root=homes / "claude-home",
            codex_env=agent_env,
            claude_env=agent_env,
        )
        return await evaluate(
            engines.get(engine_id),
            call,
            tries=settings.codex_worker_tries,
            backoff=settings.backoff(),
            timeout_seconds=call.timeout_seconds,
        )


def _settings(args: argparse.Namespace) -> WorkerSettings:
    """The worker's settings (``DEKSDENFLOW_*``) with the command line's CLIs and script over them."""
    chosen = {"codex_bin": args.codex_bin, "claude_bin": args.claude_bin, "scripted_script": args.script}
    return WorkerSettings(**{k: v for k, v in chosen.items() if v is not None})


async def _subject(args: argparse.Namespace) -> Subject:
    git = Git()
    checkout = await find_checkout(git, args.repo)
    if args.step is not None:
        return await protocol_step(
            git, checkout, args.protocol_root, args.step, base=args.base, head=args.head
        )
    task = args.task
    if args.task_file is not None:
        try:
            task = args.task_file.read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --task-file {args.task_file}: {exc.strerror}") from exc
    return await task_change(git, checkout, task, task_file=args.task_file, base=args.base, head=args.head)


def _passed_env(names: Sequence[str]) -> dict[str, str]:
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise ConfigurationError(f"--pass-env names variables that are not set: {', '.join(missing)}")
    return {name: os.environ[name] for name in names}


@contextlib.contextmanager
def _agent_homes() -> Iterator[Path]:
    """Where the agent CLIs keep their per-call homes, removed afterwards.

    Outside the checkout (the agent must not see them, nor leave files in it) and outside ``$TMPDIR``,
    which the Codex CLI prefers (``engines/codex.py``): ``$XDG_CACHE_HOME/deksdenflow`` or ``~/.cache``.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deksdenflow"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="qa-", dir=cache))
    except OSError:
        root = Path(tempfile.mkdtemp(prefix="deksdenflow-qa-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _write_outputs(args: argparse.Namespace, report: Report) -> None:
    """Every output asked for; stdout gets the Markdown unless an output is ``-``. Under GitHub Actions,
    the annotations and the step summary too. A path that cannot be written is a usage error, after the
    others are written."""
    page = markdown(report)
    renderers: list[tuple[str | None, Callable[[], str]]] = [
        (args.json, lambda: json.dumps(report.to_json(), indent=2) + "\n"),
        (args.markdown, lambda: page),
        (args.sarif, lambda: json.dumps(sarif(report), indent=2) + "\n"),
        (args.junit, lambda: junit(report)),
        (args.codequality, lambda: json.dumps(codequality(report), indent=2) + "\n"),
    ]
    unwritable = []
    for path, text in renderers:
        if path is None or path == "-":
            continue
        try:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text())
        except OSError as exc:
            unwritable.append(f"{path} ({exc.strerror or exc})")
    to_stdout = [text for path, text in renderers if path == "-"]
    sys.stdout.write(to_stdout[0]() if to_stdout else page)
    if github.under_actions(os.environ):
        for line in github.workflow_commands(report):
            print(line)
        github.append_summary(os.environ, page)
    sys.stdout.flush()
    if unwritable:
        raise ConfigurationError(f"cannot write {', '.join(unwritable)}")
