"""``deksdenflow demo``: a whole protocol on a fresh machine, start to PR, in about a minute.

It starts the whole system (``deksdenflow run``) under ``<home>/demo`` on free ports, so it never
disturbs a system you already run; makes a sample git repository (a bare "origin" on disk); registers it;
starts one protocol, which autopilot runs by itself through planning, three steps each gated by QA, a
draft PR marked ready, and — once CI (simulated on the local forge) is green — its merge; prints the
run's timeline and where the branch and the PR are; and stops everything.

The agent is the deterministic ``scripted`` engine (``demo_script.json``) unless
``DEKSDENFLOW_DEMO_ENGINE=codex`` (then the real Codex CLI plans and codes; it needs its credentials).
GitHub cannot be reached from here, so the PR is opened on a local stand-in that speaks GitHub's REST API
(``deksdenflow_fakes.github``) — the same client code talks to api.github.com when a token is set.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from deksdenflow_core.settings import RuntimeSettings
from deksdenflow_fakes.github import FakeGitHub

from deksdenflow_runtime.embedded import free_port

FORGE_REPO = "demo/sample"
GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
SAMPLE_FILES = {
    "README.md": "# sample\n\nA sample project for the deksdenflow demo.\n",
    "sample/__init__.py": "",
    "tests/__init__.py": "",
}


class DemoError(Exception):
    """The demo could not finish; the message says where it stopped."""


def main(engine: str | None = None, timeout: float = 180.0) -> int:
    home = (RuntimeSettings().home / "demo").resolve()
    engine = engine or os.environ.get("DEKSDENFLOW_DEMO_ENGINE", "scripted")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    origin = make_sample_repo(home)
    token = secrets.token_urlsafe(16)
    with FakeGitHub(token=f"demo-{token}", repos=[FORGE_REPO]) as forge:
        forge.link_git(FORGE_REPO, origin)  # the local forge knows what is pushed to the origin
        api_port = free_port()
        env = system_env(home, api_port, forge, engine)
        log = (home / "system.log").open("wb")
        print(f"demo: starting the system under {home} (output in {home / 'system.log'})")
        system = subprocess.Popen(  # the supervisor: embedded NATS + PostgreSQL, then the four services
            [sys.executable, "-m", "deksdenflow_runtime", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            api = Api(f"http://127.0.0.1:{api_port}", env["DEKSDENFLOW_API_TOKEN"])
            api.wait_healthy(system, timeout=90)
            run = drive(api, origin, engine, timeout, forge)
            report(api, run, origin, forge)
        except DemoError as exc:
            print(
                f"demo: failed: {exc}\ndemo: the system's output is in {home / 'system.log'}", file=sys.stderr
            )
            return 1
        finally:
            system.send_signal(signal.SIGINT)
            try:
                system.wait(30)
            except subprocess.TimeoutExpired:
                system.kill()
            log.close()
    return 0


def make_sample_repo(home: Path) -> Path:
    origin = home / "sample.git"
    create_sample_repo(origin, scratch_dir=home)
    return origin


def create_sample_repo(origin: Path, *, scratch_dir: Path | None = None, with_script: bool = False) -> None:
    """A bare repository at ``origin`` whose ``main`` holds a tiny Python project; ``with_script``: and
    the scripted engine's answers for it (``.deksdenflow/scripted.json``, read from the worktree), so a
    project on it runs with ``--engine scripted`` and no model."""
    scratch = Path(tempfile.mkdtemp(prefix="sample-", dir=scratch_dir))
    env = {
        **os.environ,
        **GIT_ENV,
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }

    def git(*args: str, cwd: Path | None = None) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    files = dict(SAMPLE_FILES)
    if with_script:
        files[".deksdenflow/scripted.json"] = demo_script()
    try:
        git("init", "--bare", "--quiet", "--initial-branch=main", str(origin))
        git("clone", "--quiet", str(origin), str(scratch))
        for name, content in files.items():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_text(content)
        git("add", "--all", cwd=scratch)
        git("commit", "--quiet", "-m", "Initial sample project", cwd=scratch)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def demo_script() -> str:
    """The scripted engine's answers for the sample project's protocol ("Add a greeting")."""
    return (resources.files("deksdenflow_runtime") / "demo_script.json").read_text()


def system_env(home: Path, api_port: int, forge: FakeGitHub, engine: str) -> dict[str, str]:
    script = home / "scripted.json"
    script.write_text(demo_script())
    env = {
        **os.environ,
        **GIT_ENV,
        "DEKSDENFLOW_HOME": str(home),
        "DEKSDENFLOW_API_PORT": str(api_port),
        "DEKSDENFLOW_API_TOKEN": secrets.token_urlsafe(24),
        "DEKSDENFLOW_EMBEDDED_NATS_PORT": str(free_port()),
        "DEKSDENFLOW_EMBEDDED_PG_PORT": str(free_port()),
        "DEKSDENFLOW_PROJECTOR_PORT": str(free_port()),
        "DEKSDENFLOW_CODEX_WORKER_PORT": str(free_port()),
        "DEKSDENFLOW_GIT_CI_WORKER_PORT": str(free_port()),
        "DEKSDENFLOW_DEFAULT_ENGINE": engine,
        "DEKSDENFLOW_SCRIPTED_SCRIPT": str(script),
        # the local forge's CI is found by the git worker's reconciliation, at once
        "DEKSDENFLOW_RECONCILE_INTERVAL_SECONDS": "1",
        "DEKSDENFLOW_RECONCILE_MIN_AGE_SECONDS": "0",
        "DEKSDENFLOW_GITHUB_API_URL": forge.api_url,
        "DEKSDENFLOW_GITHUB_TOKEN": forge.token,
    }
    for name in ("DEKSDENFLOW_NATS_URL", "DEKSDENFLOW_DB_URL"):
        env.pop(name, None)  # the demo always runs on its own embedded servers
    return env


class Api:
    """The public HTTP API, with the standard library only."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL we built
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 503) and method == "GET":  # not projected yet / read model starting
                return None
            raise DemoError(f"{method} {path} answered {exc.code}: {exc.read().decode()[:500]}") from exc

    def wait_healthy(self, system: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if system.poll() is not None:
                raise DemoError(f"the system exited with {system.returncode} while starting")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise DemoError("the system did not become healthy in time")

    def wait(self, path: str, ready: Any, what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", path)
            if body is not None and ready(body):
                return body
            time.sleep(0.2)
        raise DemoError(
            f"timed out waiting for {what} (last: {json.dumps(body)[:400] if body else 'nothing'})"
        )


def drive(
    api: Api, origin: Path, engine: str, timeout: float, forge: FakeGitHub | None = None
) -> dict[str, Any]:
    """Register, open a protocol and start it; from there autopilot runs it: the client only reads. With
    ``forge``, the demo's one other act is the CI a real forge would run: it makes CI green on the head
    commit of the local forge, where the git worker's reconciliation finds it, and the run merges its
    PR. Without, the run goes as far as a PR ready for review (the default policy: no merge)."""
    engines = dict.fromkeys(("planning", "decompose", "exec", "qa"), engine)
    project = api.call(
        "POST",
        "/projects",
        {
            "name": "sample",
            "git_url": str(origin),
            "ci_provider": "github",
            "forge_repo": FORGE_REPO,
            "default_engines": engines,
            "run_policy": {"merge": {"mode": "when_green", "method": "squash"}} if forge else {},
        },
    )
    policy = project["run_policy"]
    print(
        f"demo: registered project {project['id']} ({origin}); run policy: {policy['mode']}, PR "
        f"{policy['pr']['open'].replace('_', ' ')}, merge {policy['merge']['mode'].replace('_', ' ')}"
    )
    api.wait(f"/projects/{project['id']}", lambda p: p["status"] == "ready", "onboarding", timeout)
    print("demo: onboarded (starter assets pushed on branch deksdenflow/onboarding)")
    run = api.call(
        "POST",
        f"/projects/{project['id']}/protocols",
        {"task_name": "Add a greeting", "description": "greet(name) with a test and docs"},
    )
    api.call("POST", f"/protocols/{run['id']}/actions/start")
    print(f"demo: protocol {run['protocol_name']} opened and started; autopilot from here, no further calls")
    reported: set[str] = set()

    def progress(r: dict[str, Any]) -> bool:
        steps = api.call("GET", f"/protocols/{r['id']}/steps")
        for step in steps["data"] if steps else []:
            if step["status"] == "completed" and step["id"] not in reported:
                reported.add(step["id"])
                print(f"demo: step {step['step_name']} done")
        waits = r["waiting_for"] in (("ci",) if forge else ("review", "pull_request"))
        return waits or r["status"] in ("blocked", "failed", "completed", "cancelled")

    run = api.wait(f"/protocols/{run['id']}", progress, "the steps", timeout)
    if forge is None:
        return run  # type: ignore[no-any-return]
    if run["waiting_for"] != "ci":
        raise DemoError(f"the run stopped as {run['status']}: {run['blocked_reason']}")
    print(f"demo: every step done; PR {run['pr_url']} ready for review; waiting for green CI to merge")
    forge.set_ci(FORGE_REPO, run["branch_head_sha"], state="success", branch=run["protocol_name"])
    print(f"demo: CI passed on {run['branch_head_sha'][:12]} (simulated on the local forge)")
    return api.wait(  # type: ignore[no-any-return]
        f"/protocols/{run['id']}",
        lambda r: r["status"] in ("completed", "blocked") and (r["pr_merged"] or r["status"] == "blocked"),
        "the merge",
        timeout,
    )


def report(api: Api, run: dict[str, Any], origin: Path, forge: FakeGitHub) -> None:
    events = api.call("GET", f"/protocols/{run['id']}/events?limit=500")["data"]
    steps = {s["id"]: s["step_name"] for s in api.call("GET", f"/protocols/{run['id']}/steps")["data"]}
    print(f"\nTimeline of {run['protocol_name']} ({len(events)} events):")
    start = events[0]["time"] if events else ""
    for e in events:
        step = steps.get(e["step_run_id"] or "", "")
        print(f"  {e['time'][11:23]}  {e['type'].removeprefix('protocol_run.'):<28} {step}")
    usage = run["usage"]
    print(
        f"\nRun status: {run['status']} · tokens in/out {usage['input_tokens']}/{usage['output_tokens']}"
        f" · started {start[:19]}"
    )
    print(f"Branch:      {run['protocol_name']} at {run['branch_head_sha']} in {origin}")
    print(f"             (git --git-dir {origin} log --oneline {run['protocol_name']})")
    pr = forge.prs(FORGE_REPO)[0]
    state = "merged" if pr.merged else "ready for review" if not pr.draft else "draft"
    print(f"Pull request: {run['pr_url']} ({state}, on the local demo forge at {forge.api_url})")
