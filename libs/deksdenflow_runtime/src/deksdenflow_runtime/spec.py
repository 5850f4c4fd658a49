"""``deksdenflow spec``: specs checked before anything runs, and the spec audit.

``spec validate PATH``: a spec-kit feature folder (``specs/NNN-feature/``), an OpenSpec change
(``openspec/changes/<id>/``), a CodeMachine package or first-version workspace (a package's JavaScript
evaluated in the Node sandbox) or a plan (a JSON file of ``StepPlan`` steps: a list, or ``{"steps": [...]}``)
checked as the protocol it would be: the steps it makes, the phases already done, and every problem by
file, line and field. On the local disk with this program's rules, or with ``--server`` by the API's
(``POST /specs/validate``: the rules of the deployment that would run it). ``--max-parallel-steps N``
checks it as a run whose policy executes up to N steps at once imports it: spec-kit's ``[P]`` tasks
become parallel groups, and each step names its group.

``spec show PROTOCOL``: a run's stored plan as the API has it (``GET /protocols/{id}/spec``): its steps,
policies and prompts, its problems under today's rules and its latest audit. ``spec audit`` (admin):
every stored plan of a run that has not ended checked again (``POST /admin/spec-audit``).

Exit codes: 0 valid · 1 problems found · 2 usage (no such file or folder, neither kind of spec, a body
the API refuses); the server's commands otherwise exit as the client does (``deksdenflow help
exit-codes``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deksdenflow_cli import spec_files
from deksdenflow_cli.exits import MISSING_DEPENDENCY, CliError
from deksdenflow_core.domain.run_policy import MAX_PARALLEL_STEPS
from deksdenflow_core.specs import check, codemachine, openspec, sandbox, speckit
from deksdenflow_core.specs.model import ImportedProtocol
from deksdenflow_core.specs.policy_words import policy_words
from pydantic import ValidationError

if TYPE_CHECKING:
    from deksdenflow_cli.client import Client

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """What makes the command unusable as given (exit 2)."""


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text(errors="replace")
        for p in sorted(folder.rglob("*.md"))
        if p.is_file()
    }


def _constitution(folder: Path) -> str:
    for parent in (folder, *folder.parents):
        found = parent / ".specify" / "memory" / "constitution.md"
        if found.is_file():
            return found.read_text(errors="replace")
    return ""


def _kind(folder: Path, files: dict[str, str]) -> str | None:
    if "tasks.md" not in files and "proposal.md" not in files and "spec.md" not in files:
        return None
    return "openspec" if "proposal.md" in files or folder.parent.name == "changes" else "speckit"


def read(folder: Path, *, parallel: bool = False) -> tuple[str, ImportedProtocol] | None:
    """What kind of spec ``folder`` is and the protocol it imports as (None: neither kind); ``parallel``:
    as a run that may execute steps at once imports it (spec-kit's [P] tasks as parallel groups)."""
    files = _files(folder)
    kind = _kind(folder, files)
    if kind == "openspec":
        return kind, openspec.import_change(files, change=folder.name)
    if kind == "speckit":
        return kind, speckit.import_feature(
            files, feature=folder.name, constitution=_constitution(folder), parallel=parallel
        )
    return None


def _plan_steps(path: Path) -> list[Any]:
    """A plan file's steps as JSON (a list of steps, or an object with ``steps``)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a JSON plan: {exc}") from exc
    steps = value.get("steps") if isinstance(value, dict) else value
    if not isinstance(steps, list):
        raise UsageError(f"{path}: a plan is a list of steps, or an object with a list 'steps'")
    return steps


def _check_locally(path: Path, max_parallel_steps: int) -> tuple[dict[str, Any], list[str]]:
    """The check of ``path`` by this program's rules, for a run that executes up to
    ``max_parallel_steps`` steps at once: its report and its problems as lines."""
    if path.is_file():
        try:
            steps = [check.StepPlanIn.model_validate(s) for s in _plan_steps(path)]
        except ValidationError as exc:
            raise UsageError(f"{path}: {exc}") from exc
        checked = check.check_plan(steps)
    elif spec_files.is_codemachine(path):
        try:
            kind, imported = codemachine.import_files(spec_files.codemachine_files(path))
        except sandbox.SandboxUnavailable as exc:
            raise CliError(MISSING_DEPENDENCY, f"{exc} (or check it with --server)") from exc
        main = codemachine.MANIFEST if kind == "package" else codemachine.TRACKING
        checked = check.check_import(f"CodeMachine {kind}", imported, main)
    else:
        found = read(path, parallel=max_parallel_steps > 1)
        if found is None:
            raise _neither(path)
        kind, imported = found
        where = f"specs/{path.name}" if kind == "speckit" else f"openspec/changes/{path.name}"
        checked = check.check_import(kind, imported, f"{where}/tasks.md")
    report = {
        "kind": checked.kind,
        "title": checked.title,
        "valid": checked.valid,
        "steps": [
            {"filename": s.name, "labels": list(s.labels), "parallel_group": s.parallel_group or None}
            for s in checked.steps
        ],
        "skipped": list(checked.skipped),
        "problems": [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in checked.problems
        ],
    }
    return report, [str(p) for p in checked.problems]


def _check_on_server(client: Client, path: Path, max_parallel_steps: int) -> tuple[dict[str, Any], list[str]]:
    """The check of ``path`` by the API's rules (``POST /specs/validate``), for a run that executes up
    to ``max_parallel_steps`` steps at once."""
    body: dict[str, Any]
    if path.is_file():
        body = {"kind": "plan", "steps": _plan_steps(path)}
    elif spec_files.is_codemachine(path):
        body = {"kind": "codemachine", "files": spec_files.codemachine_files(path)}
    else:
        files = _files(path)
        kind = _kind(path, files)
        if kind is None:
            raise _neither(path)
        body = {"kind": kind, "name": path.resolve().name, "files": files}
        if kind == "speckit" and (constitution := _constitution(path.resolve())):
            body["constitution"] = constitution
        if max_parallel_steps > 1:
            body["run_policy"] = {"max_parallel_steps": max_parallel_steps}
    report: dict[str, Any] = client.call("spec.validate", body=body)
    problems = [f"{p['file']}:{p['line']}: {p['field']}: {p['message']}" for p in report["problems"]]
    return {**report, "steps": [{"filename": s["name"], **s} for s in report["steps"]]}, problems


def _client(profile: str | None) -> Client:
    """The API client of the profile (imported only by the commands that ask the server: a local check
    starts without it)."""
    from deksdenflow_cli.client import Client  # noqa: PLC0415
    from deksdenflow_cli.context import resolve  # noqa: PLC0415

    return Client(resolve(profile))


def _neither(path: Path) -> UsageError:
    return UsageError(
        f"{path} is neither a spec-kit feature folder (tasks.md, spec.md), an OpenSpec change "
        "(proposal.md, tasks.md), a CodeMachine package or workspace, nor a JSON plan file"
    )


def _validate(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.exists():
        raise UsageError(f"{path} is not a folder or a file")
    if args.server:
        with closing(_client(args.profile)) as client:
            report, problems = _check_on_server(client, path, args.max_parallel_steps)
    else:
        report, problems = _check_locally(path, args.max_parallel_steps)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        title = f": {report['title']}" if report.get("title") else ""
        print(f"{report['kind']}{title} — {len(report['steps'])} step(s)")
        for step in report["steps"]:
            labels = step.get("labels") or []
            group = step.get("parallel_group")
            print(
                f"  {step['filename']}"
                + (f"  [{', '.join(labels)}]" if labels else "")
                + (f"  (at once with its group {group})" if group else "")
            )
        for done in report["skipped"]:
            print(f"  (done, left out: {done})")
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def _show(args: argparse.Namespace) -> int:
    with closing(_client(args.profile)) as client:
        from deksdenflow_cli import names  # noqa: PLC0415

        spec = client.call("protocol.spec", protocol_run_id=names.protocol_id(client, args.protocol))
    if args.output == "json":
        print(json.dumps(spec, indent=2))
        return EXIT_OK
    print(f"{spec['protocol_run_id']}: spec {spec['spec_hash'] or '-'} — {spec['validation_status']}")
    if spec["source"]:
        print(f"  imported from {spec['source']}")
    for step in spec["steps"]:
        extras = [", ".join(step["labels"])] if step["labels"] else []
        extras += [f"fallbacks {' > '.join(step['fallbacks'])}"] if step["fallbacks"] else []
        group = step.get("parallel_group")  # (an older server has none)
        extras += [f"runs at once with its group {group}"] if group else []
        extras += policy_words(step["policies"])
        prompts = ", ".join(
            f"{p['name']}@{p['version']}{'' if p['used'] else ' (next)'}" for p in step["prompts"]
        )
        print(f"  {step['index']:>2} {step['name']}  {step['step_type'] or '-'}  prompts: {prompts}")
        for extra in extras:
            print(f"       {extra}")
    for problem in spec["problems"]:
        print(f"  problem (rules v{spec['rules_version']}): {problem['field']}: {problem['message']}")
    audit = spec["audit"]
    if audit is not None:
        found = "; ".join(audit["problems"]) or "nothing"
        print(f"  latest audit (rules v{audit['rules_version']}, {audit['time']}): {found}")
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    with closing(_client(args.profile)) as client:
        report = client.call("spec.audit")
    if args.output == "json":
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(
        f"spec rules v{report['rules_version']}: {report['runs_checked']} run(s) checked, "
        f"{report['recorded']} with new findings recorded"
    )
    for run in report["runs"]:
        found = "; ".join(run["problems"]) or "findings cleared"
        recorded = " [recorded]" if run["recorded"] else ""
        print(f"  {run['protocol_name']} ({run['protocol_run_id']}){recorded}: {found}")
    return EXIT_OK


def _parallel_steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL_STEPS:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 1 to {MAX_PARALLEL_STEPS}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deksdenflow spec", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate", help="check a spec-kit feature folder, an OpenSpec change or a JSON plan"
    )
    validate.add_argument("path", type=Path, metavar="PATH")
    validate.add_argument(
        "--server", action="store_true", help="check with the API's rules (POST /specs/validate), not locally"
    )
    validate.add_argument(
        "--max-parallel-steps",
        type=_parallel_steps,
        default=1,
        metavar="N",
        help="check it as a run that executes up to N steps at once (1..8, the run policy's "
        "max_parallel_steps) imports it: spec-kit's [P] tasks become parallel groups",
    )
    show = commands.add_parser("show", help="a run's stored plan, its problems today and its latest audit")
    show.add_argument("protocol", metavar="PROTOCOL", help="an id, or PROJECT/NAME")
    audit = commands.add_parser("audit", help="check every stored plan again by today's rules (admin)")
    for command in (validate, show, audit):
        command.add_argument("-o", "--output", choices=("text", "json"), default="text")
        command.add_argument("--profile", help="the client's profile (the server's commands)")
    args = parser.parse_args(argv)
    run = {"validate": _validate, "show": _show, "audit": _audit}[args.command]
    try:
        return run(args)
    except UsageError as exc:
        print(f"deksdenflow spec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"deksdenflow spec: error: {exc.message}", file=sys.stderr)
        return exc.code
