"""``python -m evals live``: the model server records in front of each engine's real API. Here the "real"
APIs are local servers speaking the same wire protocols (the Responses API for the Codex CLI, the
Messages API for Claude Code) that demand their own keys and answer as the authored model does. What
live mode records must then be what was authored: the very cassettes shipped, with no key written."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from deksdenflow_fakes.anthropic_api import FakeAnthropicApi
from deksdenflow_fakes.cassettes import Cassette
from deksdenflow_fakes.responses_api import FakeResponsesApi

from evals.__main__ import main
from evals.authoring import BEHAVIOURS, AuthoredMessagesModel, AuthoredModel
from evals.runner import CASSETTES
from evals.tasks import load

TASK = "add-greeting"
OPENAI_KEY = "sk-live-recording-0123456789abcdefOPENAI"
ANTHROPIC_KEY = "sk-ant-live-recording-0123456789abcdefANTHROPIC"


@pytest.fixture
def home() -> Iterator[Path]:
    """Under the system temp dir, not pytest's private one: the embedded PostgreSQL's user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="deksdenflow-eval-live-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def interactions(folder: Path) -> list[object]:
    return [i for path in sorted(folder.glob("*.json")) for i in Cassette.load(path).interactions]


def test_live_mode_records_both_engines_through_their_apis_and_writes_no_key(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = load(TASK)
    openai = FakeResponsesApi(OPENAI_KEY, AuthoredModel(task, BEHAVIOURS["baseline"][TASK])).start()
    anthropic = FakeAnthropicApi(
        ANTHROPIC_KEY, AuthoredMessagesModel(task, BEHAVIOURS["claude"][TASK])
    ).start()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.url)
        cassettes = home / "cassettes"
        args = ["--variants", "claude", "--tasks", TASK, "--cassettes", str(cassettes), "--home", str(home)]

        # a key missing: refused before anything runs
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        assert main(["live", "--budget-usd", "1", *args]) == 2
        assert "set ANTHROPIC_API_KEY" in capsys.readouterr().err
        assert not cassettes.exists()

        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        code = main(["live", "--budget-usd", "1", *args])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "(recorded live)" in out
    finally:
        anthropic.stop()
        openai.stop()
    # both APIs were asked, through the proxies
    assert openai.calls
    assert anthropic.calls
    for variant in ("baseline", "claude"):
        recorded = cassettes / variant / TASK
        assert interactions(recorded) == interactions(CASSETTES / variant / TASK), variant
        for path in recorded.glob("*.json"):
            text = path.read_text()
            assert OPENAI_KEY not in text, path
            assert ANTHROPIC_KEY not in text, path
            assert json.loads(text)["meta"]["authored"] is False
