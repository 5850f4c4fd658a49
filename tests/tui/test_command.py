"""`deksdenflow tui` as a process: wired into the console script, refused before it takes the terminal
when the API refuses the token, and Textual loaded by it alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.api.conftest import System
from tests.cli.support import cli, command, env_for


def test_tui_help_as_a_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [*command(), "tui", "--help"],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: deksdenflow tui [OPTIONS] [PROJECT | PROTOCOL]" in done.stdout
    assert "`:` a command, `/` a filter" in done.stdout


async def test_a_refused_token_is_an_error_before_the_screen_is_taken(system: System, tmp_path: Path) -> None:
    refused = await cli(system, tmp_path, "tui", token="not-a-token")
    assert refused.code == 4, refused.stderr
    assert refused.stderr.startswith("deksdenflow: error: 401"), refused.stderr
    assert refused.stdout == ""


def test_other_commands_do_not_load_textual(tmp_path: Path) -> None:
    script = (
        "import sys; from deksdenflow_runtime.entry import main; main(['project', 'list', '--help']); "
        "print('textual' in sys.modules, 'deksdenflow_cli.tui.app' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False"
