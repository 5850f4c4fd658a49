"""The README's first session, as a newcomer types it: every line of its block, in order, as a shell
command against a real ``deksdenflow run`` (embedded NATS and PostgreSQL, the four services), with a home
of its own and no credentials. A line exits 0 unless its comment says ``exits N``; what it prints is
checked where the README says what it shows."""

from __future__ import annotations

import asyncio
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.runtime.run_support import Ports, Run

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"<!-- first-session:begin[^>]*-->\s*```sh\n(?P<body>.*?)```\s*<!-- first-session:end -->", re.S
)
EXITS = re.compile(r"#.*\bexits (\d+)")
COMMENT = re.compile(r"\s+#\s.*$")  # a line's trailing comment (no line of the session quotes a "#")


@dataclass(frozen=True)
class Line:
    command: str
    expected: int


def session() -> list[Line]:
    match = BLOCK.search((ROOT / "README.md").read_text())
    assert match, "the README has its first session between first-session markers"
    lines = []
    for raw in match["body"].splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        expected = EXITS.search(raw)
        lines.append(Line(COMMENT.sub("", raw), int(expected[1]) if expected else 0))
    return lines


def test_the_session_is_read_from_the_readme() -> None:
    lines = session()
    assert lines[0].command.startswith("export PATH=")
    assert [line.expected for line in lines].count(1) == 1  # the wait that stops on a question
    assert any("protocol watch" in line.command for line in lines)


@pytest.mark.slow
async def test_every_line_of_the_readme_first_session_works_on_a_fresh_system(
    env: dict[str, str], ports: Ports, tmp_path: Path
) -> None:
    user_home = tmp_path / "user"
    user_home.mkdir()
    shell_env = {**env, "HOME": str(user_home), "XDG_CONFIG_HOME": str(user_home / ".config")}
    # One shell, as a reader's: each line's output and exit code kept apart (what it exports stays).
    lines = session()
    out = tmp_path / "out"
    out.mkdir()
    script = "\n".join(
        f"{line.command} >{out}/{i}.stdout 2>{out}/{i}.stderr; echo $? >{out}/{i}.code"
        for i, line in enumerate(lines)
    )
    run = Run(env, tmp_path, tmp_path / "run.log")
    try:
        await run.wait_healthy(ports.api)
        await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", script],
            cwd=ROOT,  # "$PWD/.venv/bin": the repository's own environment, as make run made it
            env=shell_env,
            timeout=600,
            check=True,
        )
    finally:
        assert await run.interrupt() == 0, run.output()
    outputs: list[tuple[str, str, str]] = []
    for i, line in enumerate(lines):
        stdout, stderr = (out / f"{i}.stdout").read_text(), (out / f"{i}.stderr").read_text()
        code = int((out / f"{i}.code").read_text())
        assert code == line.expected, (
            f"{line.command}\nexit {code}, expected {line.expected}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
        outputs.append((line.command, stdout, stderr))

    def output_of(fragment: str, which: int = 0) -> tuple[str, str]:
        found = [(out, err) for command, out, err in outputs if fragment in command]
        return found[which]

    _, question = output_of("project wait hello", 0)
    assert "waiting for answers to: ci_provider" in question
    ready, _ = output_of("project wait hello", 1)
    assert re.search(r"^status\s+ready\b", ready, re.M)
    timeline, _ = output_of("protocol watch")
    for event in ("planning_completed", "qa_verdict_recorded", "protocol_run.completed"):
        assert event in timeline
    steps, _ = output_of("step list")
    assert [row.split()[3] for row in steps.splitlines()[1:]] == ["completed"] * 3
    assert output_of("protocol get")[0] == "completed\n"
    usage, _ = output_of("usage --project")
    assert usage.splitlines()[-1].split()[0] == "total"
    log, _ = output_of("git -C")
    assert len(log.splitlines()) >= 3  # the steps' commits on top of the sample's first
