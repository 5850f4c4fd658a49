"""Cassettes with the real Codex CLI: a session recorded once (from an authored model, or through the
recording proxy in front of a Responses API) plays back offline in another worktree — the CLI's own tool
calls run for real — bit-identical run to run; a request the cassette does not hold fails loudly."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_codex_worker.engines.base import AgentResult
from deksdenflow_codex_worker.engines.codex import CodexEngine
from deksdenflow_fakes.cassettes import (
    Cassette,
    CassettePlayer,
    CassetteRecorder,
    Normaliser,
    proxy,
    transcript,
)
from deksdenflow_fakes.responses_api import (
    CODEX_TEST_MODEL,
    FakeResponsesApi,
    Turn,
    Usage,
    add_file,
    apply_patch,
    codex_provider_args,
    codex_provider_env,
    tool_outputs,
)

from tests.engines.helpers import git, make_call

PROMPT = "Add hello.py that prints hello, then say what you did."
UPSTREAM_KEY = "sk-test-" + "a" * 32  # the recording proxy's credential: never in a cassette


def author(call: Mapping[str, Any]) -> Turn:
    """The model, as a cassette's author writes it: read the README, add the file, report."""
    done = tool_outputs(call)
    if not done:
        return Turn.shell("cat README.md", usage=Usage(900, 0, 40, 10))
    if len(done) == 1:
        return Turn.patch(
            apply_patch(add_file("hello.py", "print('hello')\n")), usage=Usage(1000, 800, 30, 0)
        )
    return Turn.message("Added hello.py\n\nIt prints hello.", usage=Usage(1100, 900, 20, 0))


def repository(root: Path) -> Path:
    """The fixture repository, fresh (a path of its own each time, as a worktree's would be)."""
    repo = root / f"repo-{uuid.uuid4().hex[:8]}"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n\nA demo project.\n")
    git(repo, "add", "README.md")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "init")
    return repo


def homes(agent_homes: Path) -> Path:
    """Where the engine makes each call's CODEX_HOME (an entry of its own per call)."""
    return agent_homes / "codex-cassettes"


def normaliser(agent_homes: Path) -> Normaliser:
    return Normaliser(homes={str(homes(agent_homes)): "<CODEX_HOME>"})


def engine(codex_bin: str, agent_homes: Path, fake: FakeResponsesApi) -> CodexEngine:
    return CodexEngine(
        codex_bin,
        codex_home_root=homes(agent_homes),
        extra_args=codex_provider_args(fake),
        env=codex_provider_env(fake),
    )


async def session(
    codex_bin: str, agent_homes: Path, handler: Any, root: Path, prompt: str = PROMPT
) -> tuple[AgentResult, Path]:
    repo = repository(root)
    with FakeResponsesApi(handler=handler) as fake:
        result = await engine(codex_bin, agent_homes, fake).run(
            make_call(repo, prompt, model=CODEX_TEST_MODEL)
        )
    return result, repo


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "add-hello.json"


async def test_a_recorded_session_plays_back_offline_with_the_cli_running_its_tools(
    codex_bin: str, agent_homes: Path, tmp_path: Path, recorded: Path
) -> None:
    recorder = CassetteRecorder(author, normaliser(agent_homes))
    first, _ = await session(codex_bin, agent_homes, recorder, tmp_path / "record")
    assert first.ok, first.error
    recorder.cassette.meta = {"task": "add-hello", "engine": "codex", "model": CODEX_TEST_MODEL}
    recorder.cassette.save(recorded)
    assert len(recorder.cassette.interactions) == 3

    transcripts = []
    for n in range(2):
        player = CassettePlayer(Cassette.load(recorded), normaliser(agent_homes))
        result, repo = await session(codex_bin, agent_homes, player, tmp_path / f"play-{n}")
        assert player.finished, player.mismatches
        assert result.ok
        assert result.last_message == "Added hello.py\n\nIt prints hello."
        # the CLI ran the recorded patch for real, in this worktree
        assert (repo / "hello.py").read_text() == "print('hello')\n"
        assert result.usage.input_tokens == 3000
        played = Cassette([player.cassette.interactions[i] for i in player.played])
        transcripts.append(transcript(played))
    assert transcripts[0] == transcripts[1] == transcript(Cassette.load(recorded))
    # the worktree's path, dates and ids are normalised away: nothing of this run is in the cassette
    text = Cassette.load(recorded).interactions.__repr__()
    assert str(tmp_path) not in text
    assert "<WORKDIR>" in text


async def test_a_request_the_cassette_does_not_hold_fails_loudly(
    codex_bin: str, agent_homes: Path, tmp_path: Path, recorded: Path
) -> None:
    recorder = CassetteRecorder(author, normaliser(agent_homes))
    await session(codex_bin, agent_homes, recorder, tmp_path / "record")
    recorder.cassette.save(recorded)

    player = CassettePlayer(Cassette.load(recorded), normaliser(agent_homes))
    result, repo = await session(
        codex_bin, agent_homes, player, tmp_path / "play", prompt="Add hello.py and a test, then report."
    )
    assert not result.ok
    assert not player.finished
    assert len(player.mismatches) >= 1
    assert "conversation[1].text" in player.mismatches[0]
    assert "Add hello.py and a test" in player.mismatches[0]
    assert not (repo / "hello.py").exists()


async def test_the_recording_proxy_records_a_real_apis_stream_without_its_key(
    codex_bin: str, agent_homes: Path, tmp_path: Path
) -> None:
    # The "real" Responses API here is a fake that demands its own key, as api.openai.com does.
    with FakeResponsesApi(api_key=UPSTREAM_KEY, handler=author) as upstream:
        recorder = CassetteRecorder(proxy(upstream.base_url, UPSTREAM_KEY), normaliser(agent_homes))
        result, repo = await session(codex_bin, agent_homes, recorder, tmp_path / "record")
    assert result.ok, result.error
    assert (repo / "hello.py").exists()
    path = tmp_path / "proxied.json"
    recorder.cassette.save(path)
    assert UPSTREAM_KEY not in path.read_text()
    player = CassettePlayer(Cassette.load(path), normaliser(agent_homes))
    replayed, _ = await session(codex_bin, agent_homes, player, tmp_path / "play")
    assert player.finished, player.mismatches
    assert replayed.last_message == result.last_message


def test_secrets_and_volatile_text_are_normalised() -> None:
    normaliser = Normaliser({"/home/ci/.codex-x": "<CODEX_HOME>"})
    body = {
        "model": "m",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "<cwd>/w/abc</cwd>"}],
            },
            {
                "type": "function_call",
                "name": "exec_command",
                "arguments": '{"cmd":"ls /w/abc"}',
                "call_id": "call_9f",
            },
            {
                "type": "function_call_output",
                "call_id": "call_9f",
                "output": "Chunk ID: 77\nWall time: 0.12 seconds\nOutput:\nkey sk-abcdefghijklmnopqrstu at "
                "2026-12-07T09:43:00Z /home/ci/.codex-x/cfg\n",
            },
        ],
    }
    got = normaliser.request(body)["conversation"]
    assert got[0] == {"role": "user", "text": "<cwd><WORKDIR></cwd>"}
    assert got[1] == {"call": "exec_command", "id": "<CALL_1>", "args": '{"cmd":"ls <WORKDIR>"}'}
    assert got[2] == {
        "output": "<CALL_1>",
        "text": "Chunk ID: <CHUNK>\nWall time: <WALL>\nOutput:\nkey <SECRET> at <TIME> <CODEX_HOME>/cfg\n",
    }
