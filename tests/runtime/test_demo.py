"""``deksdenflow demo`` as a user runs it: a real process that starts the whole system on its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def demo_home() -> Iterator[Path]:
    """Outside pytest's temp root: pytest resets that root to 0700 when any other pytest session starts,
    which would cut the embedded PostgreSQL's user off its data directory mid-run."""
    home = Path(tempfile.mkdtemp(prefix="deksdenflow-demo-test-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
async def test_demo_runs_a_whole_protocol_to_a_merged_pr_by_autopilot(demo_home: Path) -> None:
    env = {**os.environ, "DEKSDENFLOW_HOME": str(demo_home / "home")}
    for name in ("DEKSDENFLOW_NATS_URL", "DEKSDENFLOW_DB_URL", "DEKSDENFLOW_API_TOKEN"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deksdenflow_runtime",
        "demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    log = demo_home / "home" / "demo" / "system.log"
    assert proc.returncode == 0, text + (log.read_text()[-4000:] if log.exists() else "")
    assert "Run status: completed" in text
    for step in ("00-setup.md", "01-greeting.md", "02-docs.md"):
        assert f"step {step} done" in text
    assert "qa_verdict_recorded" in text
    assert "autopilot from here, no further calls" in text
    assert "/demo/sample/pull/1 (merged" in text
    for event in ("pr_ready_requested", "pr_marked_ready", "merge_requested", "pr_merged"):
        assert event in text
    assert "Branch:      0001-add-a-greeting at " in text
