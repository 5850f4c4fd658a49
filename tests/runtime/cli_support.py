"""Running the ``deksdenflow`` command as a real process, with a clean environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def deksdenflow_command() -> list[str]:
    """The installed console script, or the module when the script is not there."""
    script = Path(sys.executable).parent / "deksdenflow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deksdenflow_runtime"]


def cli_env(**overrides: str) -> dict[str, str]:
    """Our environment without DEKSDENFLOW_* settings (a developer's shell may set some), plus overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEKSDENFLOW_")}
    return {**env, **overrides}
