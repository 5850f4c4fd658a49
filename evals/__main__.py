"""``python -m evals`` (``make eval``): evaluate the variants of ``evals/variants.toml`` on the tasks of
``evals/tasks`` through the whole system, and print the table.

    python -m evals [run]   [--variants a,b] [--tasks x,y] [--max-resolved-drop R] [--max-qa-drop R]
                            [--ignore-expectations] [--cassettes DIR] [--home DIR] [--table FILE]
    python -m evals author  [--variants ...] [--tasks ...]       # write the cassettes from evals/authoring.py
    python -m evals live    --budget-usd X [--variants ...]      # record new cassettes from the real APIs
                                                                 # (OPENAI_API_KEY, ANTHROPIC_API_KEY)
    python -m evals rescore EVALUATION_ID                        # score stored runs again, no agent call

Exit codes: 0 no unexpected regression (and every canary caught) · 1 a regression, or a canary not
caught · 2 the evaluation could not run (a cassette mismatch, the system, bad input).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from deksdenflow_fakes.cassettes import proxy
from deksdenflow_fakes.messages_cassettes import ANTHROPIC_URL, API_KEY_ENV, messages_proxy

from evals import report
from evals.models import AnyHandler, ModelServer
from evals.runner import CASSETTES, EvalError, Options, Outcome, evaluate, rescore
from evals.system import SystemError_, local_system
from evals.tasks import all_tasks, load
from evals.variants import load as load_variants

EXIT_ERROR = 2
DEFAULT_HOME = Path(".deksdenflow") / "eval"
# Where live mode records from, per engine: (the API's address, its variable, its default; the key's variable)
LIVE_APIS = {
    "codex": ("OPENAI_BASE_URL", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "claude-code": ("ANTHROPIC_BASE_URL", ANTHROPIC_URL, API_KEY_ENV),
}


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: a rate between 0 and 1")
    return value


def live_proxies(engines: set[str]) -> Callable[[str], AnyHandler]:
    """A recording proxy in front of each engine's real API, for a run of that engine. Every key the
    engines need is asked for before anything runs: a run half-recorded for want of a key helps nobody."""
    missing = [LIVE_APIS[e][2] for e in sorted(engines) if not os.environ.get(LIVE_APIS[e][2])]
    if missing:
        raise EvalError(f"live mode records from the real APIs: set {' and '.join(missing)}")

    def live(engine: str) -> AnyHandler:
        url_env, default, key_env = LIVE_APIS[engine]
        url, key = os.environ.get(url_env) or default, os.environ[key_env]
        return messages_proxy(url, key) if engine == "claude-code" else proxy(url, key)

    return live


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="run", choices=("run", "author", "live", "rescore"))
    p.add_argument("evaluation_id", nargs="?", help="rescore: the evaluation to score again")
    p.add_argument("--variants", default="", help="comma-separated variant ids (the baseline is always run)")
    p.add_argument("--tasks", default="", help="comma-separated task ids (default: all)")
    p.add_argument(
        "--max-resolved-drop",
        type=_rate,
        default=float(os.environ.get("EVAL_MAX_RESOLVED_DROP", "0")),
        help="how far a variant's resolved rate may fall below the baseline's (0..1; EVAL_MAX_RESOLVED_DROP)",
    )
    p.add_argument(
        "--max-qa-drop",
        type=_rate,
        default=float(os.environ.get("EVAL_MAX_QA_DROP", "0")),
        help="how far a variant's QA agreement rate may fall below the baseline's (0..1; EVAL_MAX_QA_DROP)",
    )
    p.add_argument(
        "--ignore-expectations", action="store_true", help="a canary's expected regression fails too"
    )
    p.add_argument(
        "--budget-usd", type=float, default=0.0, help="live: the spending cap of the whole evaluation"
    )
    p.add_argument(
        "--cassettes",
        type=Path,
        default=CASSETTES,
        help="the cassettes' folder: read by run, written by author and live (default: evals/cassettes)",
    )
    p.add_argument("--home", type=Path, default=Path(os.environ.get("EVAL_HOME", DEFAULT_HOME)))
    p.add_argument("--table", type=Path, help="also write the table (the part that never varies) here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except (EvalError, SystemError_, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"evals: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


async def _main(args: argparse.Namespace) -> int:
    home: Path = args.home.resolve()
    if args.command == "rescore":
        if not args.evaluation_id:
            raise EvalError("rescore needs an evaluation id (make eval RESCORE=<id>)")
        with ModelServer() as models:  # no agent is called; the system still needs a model endpoint
            async with local_system(home / "system", models) as h:
                outcome = await rescore(h.api, args.evaluation_id)
        return _print(outcome, args, "re-scored")
    matrix = load_variants()
    named = [v.strip() for v in args.variants.split(",") if v.strip()]
    if named:
        matrix = matrix.only(named)
    tasks = [load(t.strip()) for t in args.tasks.split(",") if t.strip()] if args.tasks else all_tasks()
    options = Options(
        mode="replay" if args.command == "run" else args.command,
        cassettes=args.cassettes.resolve(),
        thresholds=report.Thresholds(args.max_resolved_drop, args.max_qa_drop),
        ignore_expectations=args.ignore_expectations,
    )
    extra_env: dict[str, str] = {}
    if args.command == "live":
        if args.budget_usd <= 0:
            raise EvalError(
                "live mode spends money: cap it with --budget-usd (make eval LIVE=1 BUDGET_USD=...)"
            )
        # the variants named are recorded; the others (the baseline, unless named) replay their cassettes
        recorded = [v for v in matrix.variants if not named or v.id in named]
        options.live_variants = frozenset(v.id for v in recorded)
        options.live = live_proxies({v.engine for v in recorded})
        per_run = args.budget_usd / (len(tasks) * len(matrix.variants))
        # the system's own budget stops a run that would spend more than its share (strict mode)
        extra_env = {
            "DEKSDENFLOW_TOKEN_BUDGET_MODE": "strict",
            "DEKSDENFLOW_MAX_COST_USD_PER_PROTOCOL": f"{per_run:.4f}",
        }
    with ModelServer() as models:
        async with local_system(home / "system", models, env=extra_env) as h:
            outcome = await evaluate(h, models, matrix, tasks, home / "origins", options)
    return _print(
        outcome, args, {"run": "replayed", "author": "authored", "live": "recorded live"}[args.command]
    )


def _print(outcome: Outcome, args: argparse.Namespace, how: str) -> int:
    print(outcome.table)
    result = "FAIL: " + "; ".join(outcome.problems) if outcome.problems else "PASS: no unexpected regression"
    print(result)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(outcome.table + "\n" + result + "\n")
    print("\n--- varies from run to run (not part of the table) ---")
    print(f"Evaluation {outcome.evaluation_id} ({how})")
    print(outcome.wall)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
