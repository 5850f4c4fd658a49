"""The images' Containerfiles, offline and in seconds: lint-clean with hadolint (its PyPI wheel), and built
the way the deployment relies on — multi-stage from uv.lock, nothing of the build tools in the runtime
stage, a non-root user, tini as PID 1 passing SIGTERM on, a health check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "deploy" / "images"
CONTAINERFILES = sorted(IMAGES.glob("*.Containerfile"))


def _hadolint() -> str:
    return str(Path(sys.executable).parent / "hadolint")


def _stages(text: str) -> list[str]:
    """The Containerfile's stages, each from its FROM line on (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return ["\n".join(stage) for stage in stages]


def test_there_is_an_image_for_the_api_and_one_for_the_workers() -> None:
    assert [p.name for p in CONTAINERFILES] == ["api.Containerfile", "workers.Containerfile"]


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(containerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(containerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_is_not_silenced_wholesale() -> None:
    """Findings are ignored line by line with a reason, never for the whole file or by a config."""
    assert not (ROOT / ".hadolint.yaml").exists()
    for containerfile in CONTAINERFILES:
        text = containerfile.read_text()
        assert "hadolint global" not in text
        for match in re.finditer(r"# hadolint ignore=(\S+)", text):
            assert match.group(1) == "DL3008", match.group(0)  # apt versions: pinned by the base image


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.name)
def test_the_runtime_stage_is_lean_unprivileged_and_stops_cleanly(containerfile: Path) -> None:
    stages = _stages(containerfile.read_text())
    assert len(stages) >= 3, "base, build and runtime stages"
    build = next(s for s in stages if " AS build" in s.splitlines()[0])
    runtime = stages[-1]
    # Dependencies exactly as locked, the workspace members as wheels, no dev dependencies.
    assert re.search(r"uv sync --locked --no-dev --no-editable", build)
    # Nothing of uv, pip or a compiler in what runs: only the virtual environment is copied over.
    assert re.search(r"^COPY --from=build /opt/deksdenflow /opt/deksdenflow$", runtime, re.M)
    for tool in ("uv ", "/opt/uv", "/opt/tools/bin", "pip install", "gcc", "build-essential", "npm "):
        assert tool not in runtime.replace("no uv", ""), tool
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", runtime, re.M)
    assert re.search(r"^HEALTHCHECK .*CMD \[\"deksdenflow-healthcheck\"\]$", runtime, re.M)
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--"\]$', runtime, re.M)
    # Bytecode compiled at build time, so a read-only root filesystem is enough.
    assert "UV_COMPILE_BYTECODE=1" in build
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert re.search(r'^VOLUME \["/tmp", "/var/lib/deksdenflow"\]$', runtime, re.M)


def test_the_workers_image_has_git_node_and_the_pinned_agent_clis() -> None:
    text = (IMAGES / "workers.Containerfile").read_text()
    runtime = _stages(text)[0]
    assert re.search(r"apt-get install .*\bgit\b", runtime)
    assert "services/codex_worker/agents/package-lock.json" in text
    assert re.search(r"npm-cli\.js \\\n\s+ci\b", text)  # npm ci: exactly the lock
    assert "/opt/agents/node_modules/.bin" in text


def test_the_build_context_leaves_out_what_the_images_do_not_need() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" or "*" in ignored
    for path in ("**/.venv", "**/node_modules", "**/.deksdenflow"):
        assert path in ignored
