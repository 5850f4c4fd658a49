"""The console's browser tests: one whole system (``deksdenflow run``: embedded NATS and PostgreSQL, the API,
the projector, both workers with the scripted engine, a local forge that speaks GitHub's REST API) and one
Chromium (Debian's ``chromium``, launched by its path; Playwright downloads nothing), for the module.

Pages whose runs a test records as a worker would (no worker races it) use the API tests' system instead
(``system``: the API and the projector in the test's process) and Playwright's async API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe as AsyncAxe  # type: ignore[import-untyped]
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from deksdenflow_fakes.github import FakeGitHub
from deksdenflow_runtime.demo import FORGE_REPO, Api, make_sample_repo, system_env
from deksdenflow_runtime.embedded import free_port
from playwright.async_api import Page as AsyncPage
from playwright.sync_api import Browser, Page, sync_playwright

from tests.api.conftest import api_overrides, system

__all__ = ["api_overrides", "system"]

CHROMIUM = os.environ.get("DEKSDENFLOW_CHROMIUM", "/usr/bin/chromium")
# The README's screenshots: refreshed with DEKSDENFLOW_UPDATE_SCREENSHOTS=1; otherwise a test run takes them
# into a scratch folder, so that make test leaves the checkout as it was.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "console"
    if os.environ.get("DEKSDENFLOW_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "deksdenflow-console-screenshots"
)


@dataclass
class Stack:
    base: str
    token: str
    api: Api
    forge: FakeGitHub
    origin: Path
    home: Path

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.api.call(method, path, body)


# Module scope, not session: Playwright's sync API keeps an event loop of its own running while it is open,
# and the asyncio tests of other modules need none running.
@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = Path(tempfile.mkdtemp(prefix="df-console-"))
    origin = make_sample_repo(home)
    with FakeGitHub(token="console-test", repos=[FORGE_REPO]) as forge:
        forge.link_git(FORGE_REPO, origin)
        port = free_port()
        env = system_env(home, port, forge, "scripted")
        log = (home / "system.log").open("wb")
        system = subprocess.Popen(
            [sys.executable, "-m", "deksdenflow_runtime", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            api = Api(f"http://127.0.0.1:{port}", env["DEKSDENFLOW_API_TOKEN"])
            api.wait_healthy(system, timeout=120)
            yield Stack(api.base, api.token, api, forge, origin, home)
        finally:
            system.send_signal(signal.SIGINT)
            try:
                system.wait(30)
            except subprocess.TimeoutExpired:
                system.kill()
            log.close()
            if os.environ.get("DEKSDENFLOW_KEEP_CONSOLE_HOME") is None:
                shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser context (no cookie) per test, with every request outside the stack refused."""
    context = browser.new_context(base_url=stack.base, viewport={"width": 1366, "height": 900})
    outside: list[str] = []

    def only_ours(route: Any) -> None:
        if route.request.url.startswith(stack.base) or route.request.url.startswith(stack.forge.api_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_ours)
    page = context.new_page()
    yield page
    context.close()
    assert outside == [], f"the console made requests outside the stack: {outside}"


AXE = Axe()


ASYNC_AXE = AsyncAxe()


def accessible(page: Page, name: str) -> None:
    """0 axe-core violations on the page as it is, and a screenshot of it for the README."""
    _no_violations(AXE.run(page).response["violations"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


async def accessible_async(page: AsyncPage, name: str | None) -> None:
    """``accessible`` for a page of Playwright's async API; ``name`` None: no screenshot."""
    _no_violations((await ASYNC_AXE.run(page)).response["violations"])
    if name is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def _no_violations(violations: list[dict[str, Any]]) -> None:
    assert violations == [], json.dumps(
        [{"id": v["id"], "nodes": [n["html"][:200] for n in v["nodes"][:3]]} for v in violations], indent=1
    )


def sign_in(page: Page, token: str) -> None:
    page.goto("/console/signin")
    page.get_by_label("Admin token or project token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/attention")
