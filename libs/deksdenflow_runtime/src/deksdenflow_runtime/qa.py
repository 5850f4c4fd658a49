"""``deksdenflow qa``: the QA gate, which lives with the worker's QA in the codex worker's package.

The runtime never imports the worker: it replaces this process with ``python -m
deksdenflow_codex_worker.gate`` and the arguments as given, so the gate's exit code, output and signals are
the command's own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

GATE_PACKAGE = "deksdenflow_codex_worker"
GATE_MODULE = f"{GATE_PACKAGE}.gate"
EXIT_MISSING_DEPENDENCY = 3


def main(argv: Sequence[str]) -> int:
    """Run the gate with ``argv``; exit 3 when its package is not installed."""
    if importlib.util.find_spec(GATE_PACKAGE) is not None:
        _run_gate(argv)
    print(
        "deksdenflow: error: `deksdenflow qa` needs the deksdenflow-codex-worker package (the gate is there)",
        file=sys.stderr,
    )
    return EXIT_MISSING_DEPENDENCY


def _run_gate(argv: Sequence[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    # The arguments go to Python as a list, never through a shell.
    os.execv(sys.executable, [sys.executable, "-m", GATE_MODULE, *argv])  # noqa: S606
