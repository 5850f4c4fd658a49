"""``python -m evals live``: the model server records in front of each engine's real API. Here the "real"
APIs are local servers speaking the same wire protocols (the Responses API for the Codex CLI, the
Messages API for Claude Code) that demand their own keys and answer as the authored model does. What
live mode records must then be what was authored: the very cassettes shipped, with no key written."""

from __future__ import annotations

import json
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
# Keys the cassettes' secret scrubber would not know for keys: found in a cassette, they were written.
OPENAI_KEY = "live-recording-openai-7f3a9c51e2"
ANTHROPIC_KEY = "live-recording-anthropic-0b8d4e6a13"


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
        args = ["--tasks", TASK, "--cassettes", str(cassettes), "--home", str(home)]

        # a key missing: refused before anything runs. Recording claude needs Anthropic's key alone
        # (the baseline, not named, would replay its cassettes)
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        assert main(["live", "--budget-usd", "1", "--variants", "claude", *args]) == 2
        assert (
            capsys.readouterr().err
            == "evals: error: live mode records from the real APIs: set ANTHROPIC_API_KEY\n"
        )
        assert not cassettes.exists()

        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        code = main(["live", "--budget-usd", "1", "--variants", "baseline,claude", *args])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "(recorded live)" in out
    finally:
        anthropic.stop()
        openai.stop()
    # both APIs were asked, through the proxies
    assert openai.calls
    assert anthropic.calls
    # nothing the system wrote holds a key: its logs, log, read model, mirrors and worktrees
    for path in (p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        assert OPENAI_KEY.encode() not in data, path
        assert ANTHROPIC_KEY.encode() not in data, path
    for variant in ("baseline", "claude"):
        recorded = cassettes / variant / TASK
        assert interactions(recorded) == interactions(CASSETTES / variant / TASK), variant
        for path in recorded.glob("*.json"):
            text = path.read_text()
            assert OPENAI_KEY not in text, path
            assert ANTHROPIC_KEY not in text, path
            assert json.loads(text)["meta"]["authored"] is False
