"""Scoring a run's result by tests: its checkout plus the task's hidden tests, run with pytest in a
scratch copy (the checkout is never changed), read back from JUnit XML.

``resolved``: every FAIL_TO_PASS test passes and no PASS_TO_PASS test fails — the SWE-bench rule.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from junitparser import JUnitXml

from evals.tasks import Task

TEST_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class TestScore:
    fail_to_pass: dict[str, bool]
    pass_to_pass: dict[str, bool]

    @property
    def resolved(self) -> bool:
        return all(self.fail_to_pass.values()) and all(self.pass_to_pass.values())

    @property
    def summary(self) -> str:
        f2p = sum(self.fail_to_pass.values())
        p2p = sum(self.pass_to_pass.values())
        return f"FAIL_TO_PASS {f2p}/{len(self.fail_to_pass)}, PASS_TO_PASS {p2p}/{len(self.pass_to_pass)}" + (
            " — resolved" if self.resolved else ""
        )


def run_tests(task: Task, checkout: Path) -> dict[str, bool]:
    """Every test of the checkout with the hidden tests added: ``{"path::name": passed}``."""
    with tempfile.TemporaryDirectory(prefix=f"eval-{task.id}-") as scratch:
        copy = Path(scratch) / "checkout"
        shutil.copytree(checkout, copy, ignore=shutil.ignore_patterns(".git"))
        shutil.copytree(task.hidden, copy / "tests", dirs_exist_ok=True)
        report = Path(scratch) / "junit.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-o",
             "testpaths=tests", f"--junitxml={report}", "--rootdir", str(copy), "tests"],
            cwd=copy,
            capture_output=True,
            timeout=TEST_TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
        if not report.is_file():
            return {}
        results: dict[str, bool] = {}
        for suite in JUnitXml.fromfile(str(report)):
            for case in suite:
                path = (case.classname or "").replace(".", "/") + ".py"
                results[f"{path}::{case.name}"] = case.is_passed
        return results


def score(task: Task, checkout: Path) -> TestScore:
    results = run_tests(task, checkout)
    return TestScore(
        fail_to_pass={t: results.get(t, False) for t in task.fail_to_pass},
        pass_to_pass={t: results.get(t, False) for t in task.pass_to_pass},
    )
