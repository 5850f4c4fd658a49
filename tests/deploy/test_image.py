"""The images, built and run (``make test`` and ``make image-test`` run this; a plain pytest does not).

Builds both images with whatever builder the machine has (``deploy/images/build.sh``; here Debian's
daemonless buildah), then runs the services from the images themselves against the session's real NATS
and a fresh PostgreSQL: the migration and its check (what the Kubernetes Job and the projector's init
container run), the projector and the API, a write and a read through the API, the workers image's pinned
tools and its codex worker, and a SIGTERM that stops each cleanly through tini.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deksdenflow_runtime.embedded import free_port

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "images" / "build.sh"
# A cold build (base image from Debian packages, every layer) takes minutes on 2 cores.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]
STORAGE = ("--storage-driver", os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs"))
STOP_SECONDS = 30.0


def _remove_image(image: str) -> None:
    """vfs storage holds a full copy per image: remove what a test built, and whatever dangles."""
    subprocess.run(["buildah", *STORAGE, "rmi", image], capture_output=True, check=False)
    subprocess.run(["buildah", *STORAGE, "rmi", "--prune"], capture_output=True, check=False)


def _build(kind: str) -> str:
    """The ``kind`` image (api or workers), built now; prints how long the build took."""
    if shutil.which("buildah") is None:
        raise AssertionError("buildah is needed (make image-test installs it)")
    started = time.monotonic()
    env = {**os.environ, "BUILDER": "buildah", "IMAGE_TAG": "image-test"}
    out = subprocess.run(
        ["bash", str(BUILD), kind], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-4000:]
    print(f"\nbuilt the {kind} image in {time.monotonic() - started:.0f}s")
    image: str = out.stdout.strip().splitlines()[-1]
    return image


@contextlib.contextmanager
def _container_of(image: str) -> Iterator[str]:
    """A working container of ``image``, removed afterwards."""
    made = subprocess.run(["buildah", *STORAGE, "from", image], capture_output=True, text=True, check=True)
    name = made.stdout.strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", *STORAGE, "rm", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def api_image() -> Iterator[str]:
    """The API image, built now, removed afterwards."""
    image = _build("api")
    yield image
    _remove_image(image)


@pytest.fixture
def container(api_image: str) -> Iterator[str]:
    with _container_of(api_image) as name:
        yield name


async def _run(container: str, env: dict[str, str], *argv: str, volume: str | None = None) -> tuple[int, str]:
    """``argv`` inside the image, as its own user, on the host's network; exit code and output."""
    args = ["buildah", *STORAGE, "run", "--isolation", "chroot", "--network", "host"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    if volume:
        args += ["-v", volume]
    proc = await asyncio.create_subprocess_exec(
        *args, container, "--", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.fixture
def rundir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="deksdenflow-image-"))
    path.chmod(0o777)  # the image's user writes its pid file here
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def services_env(nats_url: str, fresh_db_url: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "DEKSDENFLOW_NATS_URL": nats_url,
        "DEKSDENFLOW_DB_URL": fresh_db_url,
        "DEKSDENFLOW_STREAM_NAME": f"IMG_{suffix}",
        "DEKSDENFLOW_SUBJECT_PREFIX": f"img{suffix}",
        "DEKSDENFLOW_PROJECTOR_DURABLE": f"projector_{suffix}",
        "DEKSDENFLOW_PROJECTOR_FEED_DURABLE": f"feed_{suffix}",
        "DEKSDENFLOW_API_TOKEN": "image-test-admin-token",
        "DEKSDENFLOW_IDEMPOTENCY_SECRET": "image-test-idempotency-secret",
    }


async def _wait_ready(url: str, seconds: float) -> None:
    """``url`` answers 200 (the last answer or error is in the failure)."""
    last = {"answer": "no answer"}

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(url)
        except httpx.TransportError as exc:
            last["answer"] = repr(exc)
            return False
        last["answer"] = f"{response.status_code} {response.text[:200]}"
        return response.status_code == 200

    try:
        await eventually(ready, within=seconds, what=f"{url} to be ready")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last['answer']}") from None


async def test_the_api_image_migrates_projects_serves_and_stops_on_sigterm(
    container: str, services_env: dict[str, str], rundir: Path
) -> None:
    env = services_env
    # What the projector's init container waits on, before and after what the migration Job runs.
    code, out = await _run(container, env, "deksdenflow-projector", "migrate", "--check")
    assert code == 1, out
    code, out = await _run(container, env, "deksdenflow-projector", "migrate")
    assert code == 0, out
    assert "read model migrated" in out, out
    code, out = await _run(container, env, "deksdenflow-projector", "migrate", "--check")
    assert code == 0, out
    assert "read model at 0" in out, out

    # Both services from the image, each under tini as the image's entrypoint does it.
    api_port, projector_port = free_port(), free_port()
    env = {
        **env,
        "DEKSDENFLOW_API_PORT": str(api_port),
        "DEKSDENFLOW_PROJECTOR_PORT": str(projector_port),
        "TINI_SUBREAPER": "1",  # not PID 1 under buildah run: tini reaps as a subreaper
    }
    services = {
        "projector": ["deksdenflow-projector", "run"],
        "api": ["python", "-m", "deksdenflow_api"],
    }
    runs = {
        name: asyncio.create_task(
            _run(
                container,
                env,
                "sh",
                "-c",
                f'echo $$ > /run/test/{name}.pid; exec /usr/bin/tini -- "$@"',
                "sh",
                *argv,
                volume=f"{rundir}:/run/test",
            )
        )
        for name, argv in services.items()
    }
    try:
        await _wait_ready(f"http://127.0.0.1:{projector_port}/health", 120)
        await _wait_ready(f"http://127.0.0.1:{api_port}/readyz", 120)
        headers = {"Authorization": f"Bearer {env['DEKSDENFLOW_API_TOKEN']}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers) as api:
            created = await api.post(
                "/projects", json={"name": "image-test", "git_url": "https://github.com/acme/demo.git"}
            )
            assert created.status_code == 201, created.text
            read = await api.get(f"/projects/{created.json()['id']}")
            assert read.status_code == 200, read.text
            assert read.json()["name"] == "image-test", read.text
    finally:
        for name in services:
            pid_file = rundir / f"{name}.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
        results = {name: await asyncio.wait_for(task, STOP_SECONDS) for name, task in runs.items()}
    for name, (code, out) in results.items():
        # uvicorn finishes its shutdown, then lets the SIGTERM it caught end the process (tini: 128 + 15).
        assert code in (0, 128 + signal.SIGTERM), f"{name} exited {code} on SIGTERM:\n{out[-3000:]}"
        assert "Application shutdown complete." in out, f"{name} did not shut down cleanly:\n{out[-3000:]}"
        assert "Traceback" not in out, out


@pytest.fixture(scope="module")
def workers_image() -> Iterator[str]:
    """The workers image, built now, removed afterwards."""
    image = _build("workers")
    yield image
    _remove_image(image)


@pytest.fixture
def workers_container(workers_image: str) -> Iterator[str]:
    with _container_of(workers_image) as name:
        yield name


@pytest.mark.image_full
async def test_the_workers_image_has_the_pinned_tools_and_its_worker_stops_on_sigterm(
    workers_container: str, nats_url: str, rundir: Path
) -> None:
    lock = json.loads((ROOT / "services/codex_worker/agents/package-lock.json").read_text())["packages"]
    code, out = await _run(
        workers_container, {}, "sh", "-c", "codex --version; claude --version; git --version"
    )
    assert code == 0, out
    assert f"codex-cli {lock['node_modules/@openai/codex']['version']}" in out
    assert lock["node_modules/@anthropic-ai/claude-code"]["version"] in out
    code, out = await _run(workers_container, {}, "node", "-p", "process.versions.node.split('.')[0]")
    assert code == 0, out
    assert int(out.strip().splitlines()[-1]) >= 22, out  # Claude Code's engines field
    code, out = await _run(workers_container, {}, "sh", "-c", "command -v uv pip npm gcc cc || true")
    assert out.strip() == "", f"build tools in the runtime image: {out}"

    # The codex worker (no database) from the image, under tini: healthy on NATS, then SIGTERM.
    suffix = uuid.uuid4().hex[:10]
    port = free_port()
    env = {
        "DEKSDENFLOW_NATS_URL": nats_url,
        "DEKSDENFLOW_STREAM_NAME": f"IMGW_{suffix}",
        "DEKSDENFLOW_SUBJECT_PREFIX": f"imgw{suffix}",
        "DEKSDENFLOW_CODEX_WORKER_DURABLE": f"codex_{suffix}",
        "DEKSDENFLOW_CODEX_WORKER_PORT": str(port),
        "TINI_SUBREAPER": "1",
    }
    run = asyncio.create_task(
        _run(
            workers_container,
            env,
            "sh",
            "-c",
            "echo $$ > /run/test/worker.pid; exec /usr/bin/tini -- python -m deksdenflow_codex_worker",
            volume=f"{rundir}:/run/test",
        )
    )
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/health", 120)
    finally:
        pid_file = rundir / "worker.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        code, out = await asyncio.wait_for(run, STOP_SECONDS)
    assert code == 0, f"the codex worker exited {code} on SIGTERM:\n{out[-3000:]}"
    assert "codex-worker stopped" in out, out[-3000:]
