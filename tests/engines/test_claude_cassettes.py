"""Cassettes with the real Claude Code CLI: a session recorded once (from an authored model, or through the
recording proxy in front of a Messages API) plays back offline in another worktree — the CLI's own tools
run for real — identically run to run; a request the cassette does not hold fails loudly."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from deksdenflow_codex_worker.engines.base import AgentResult, Sandbox
from deksdenflow_codex_worker.engines.claude_code import ClaudeCodeEngine
from deksdenflow_fakes.anthropic_api import (
    CLAUDE_TEST_MODEL,
    FakeAnthropicApi,
    Turn,
    Usage,
    claude_env,
    tool_results,
)
from deksdenflow_fakes.cassettes import Cassette, transcript
from deksdenflow_fakes.messages_cassettes import (
    MessagesNormaliser,
    MessagesPlayer,
    MessagesRecorder,
    messages_proxy,
)

from tests.engines.helpers import git, make_call

PROMPT = "Add hello.py that prints hello, then say what you did."
UPSTREAM_KEY = "sk-ant-api03-" + "b" * 40  # the recording proxy's credential: never in a cassette


def author(call: Mapping[str, Any]) -> Turn:
    """The model, as a cassette's author writes it: read the README, write the file, report.

    The file's path is absolute, as Claude Code's Write tool wants it: the cassette keeps it relative to
    the worktree, so a playback writes into its own."""
    done = tool_results(call)
    workdir = call["messages"][0]["content"][0]["text"].split("Primary working directory: ")[1].split()[0]
    if not done:
        return Turn.bash("cat README.md", tool_id="toolu_read")
    if len(done) == 1:
        return Turn.write(f"{workdir}/hello.py", "print('hello')\n", tool_id="toolu_write")
    return Turn.message("Added hello.py\n\nIt prints hello.", usage=Usage(1000, 800, 100, 20))


def repository(root: Path) -> Path:
    """The fixture repository, fresh (a path of its own each time, as a worktree's would be)."""
    repo = root / f"repo-{uuid.uuid4().hex[:8]}"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n\nA demo project.\n")
    git(repo, "add", "README.md")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "init")
    return repo


def config_root(agent_homes: Path) -> Path:
    """Where the engine makes each call's Claude config directory (an entry of its own per call)."""
    return agent_homes / "claude-cassettes"


def normaliser(agent_homes: Path) -> MessagesNormaliser:
    return MessagesNormaliser(homes={str(config_root(agent_homes)): "<CLAUDE_CONFIG>"})


async def session(
    claude_bin: str, agent_homes: Path, handler: Any, root: Path, prompt: str = PROMPT
) -> tuple[AgentResult, Path]:
    repo = repository(root)
    home = root / "home"
    home.mkdir(exist_ok=True)
    with FakeAnthropicApi(handler=handler) as fake:
        engine = ClaudeCodeEngine(
            claude_bin, config_root=config_root(agent_homes), env={**claude_env(fake), "HOME": str(home)}
        )
        result = await engine.run(
            make_call(repo, prompt, model=CLAUDE_TEST_MODEL, sandbox=Sandbox.WORKSPACE_WRITE)
        )
    return result, repo


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "add-hello.json"


async def test_a_recorded_session_plays_back_offline_with_the_cli_running_its_tools(
    claude_bin: str, agent_homes: Path, tmp_path: Path, recorded: Path
) -> None:
    recorder = MessagesRecorder(author, normaliser(agent_homes))
    first, _ = await session(claude_bin, agent_homes, recorder, tmp_path / "record")
    assert first.ok, first.error
    recorder.cassette.meta = {"task": "add-hello", "engine": "claude-code", "model": CLAUDE_TEST_MODEL}
    recorder.cassette.save(recorded)
    assert len(recorder.cassette.interactions) == 3

    transcripts = []
    for n in range(2):
        player = MessagesPlayer(Cassette.load(recorded), normaliser(agent_homes))
        result, repo = await session(claude_bin, agent_homes, player, tmp_path / f"play-{n}")
        assert player.finished, player.mismatches
        assert result.ok, result.error
        assert result.last_message == "Added hello.py\n\nIt prints hello."
        # the CLI ran the recorded Write for real, in this worktree
        assert (repo / "hello.py").read_text() == "print('hello')\n"
        assert result.changed_files == ("hello.py",)
        played = Cassette([player.cassette.interactions[i] for i in player.played])
        transcripts.append(transcript(played))
    assert transcripts[0] == transcripts[1] == transcript(Cassette.load(recorded))
    # the worktree's path, dates, shas and ids are normalised away: nothing of this run is in the cassette
    text = json.dumps([[i.request, i.reply] for i in Cassette.load(recorded).interactions])
    assert str(tmp_path) not in text
    assert str(agent_homes) not in text
    write = Cassette.load(recorded).interactions[1]
    assert write.reply["blocks"][0]["input"]["file_path"] == "<WORKDIR>/hello.py"
    read = write.request["conversation"][-1]
    assert (read["output"], read["error"]) == ("<CALL_1>", False)
    assert read["text"].startswith("# demo\n\nA demo project.\n")


async def test_a_request_the_cassette_does_not_hold_fails_loudly(
    claude_bin: str, agent_homes: Path, tmp_path: Path, recorded: Path
) -> None:
    recorder = MessagesRecorder(author, normaliser(agent_homes))
    await session(claude_bin, agent_homes, recorder, tmp_path / "record")
    recorder.cassette.save(recorded)

    player = MessagesPlayer(Cassette.load(recorded), normaliser(agent_homes))
    result, repo = await session(
        claude_bin, agent_homes, player, tmp_path / "play", prompt="Add hello.py and a test, then report."
    )
    assert not result.ok
    assert "cassette mismatch" in result.error
    assert not player.finished
    assert player.mismatches
    assert "conversation[0].text" in player.mismatches[0]
    assert "Add hello.py and a test" in player.mismatches[0]
    assert not (repo / "hello.py").exists()


async def test_the_recording_proxy_records_a_real_apis_stream_without_its_key(
    claude_bin: str, agent_homes: Path, tmp_path: Path
) -> None:
    # The "real" Messages API here is a fake that demands its own key, as api.anthropic.com does.
    with FakeAnthropicApi(api_key=UPSTREAM_KEY, handler=author) as upstream:
        recorder = MessagesRecorder(messages_proxy(upstream.url, UPSTREAM_KEY), normaliser(agent_homes))
        result, repo = await session(claude_bin, agent_homes, recorder, tmp_path / "record")
    assert result.ok, result.error
    assert (repo / "hello.py").read_text() == "print('hello')\n"
    assert len(upstream.calls) == 3
    path = tmp_path / "proxied.json"
    recorder.cassette.save(path)
    assert UPSTREAM_KEY not in path.read_text()
    player = MessagesPlayer(Cassette.load(path), normaliser(agent_homes))
    replayed, _ = await session(claude_bin, agent_homes, player, tmp_path / "play")
    assert player.finished, player.mismatches
    assert replayed.last_message == result.last_message
    assert replayed.usage == result.usage


def test_the_clis_context_is_normalised_and_its_ids_dropped() -> None:
    def body(workdir: str, date: str, sha: str, os_version: str, session: str) -> dict[str, Any]:
        context = (
            f"<system-reminder>\n# Environment\n - Primary working directory: {workdir}\n"
            f" - OS Version: {os_version}\n</system-reminder>"
        )
        return {
            "model": CLAUDE_TEST_MODEL,
            "system": [
                {
                    "type": "text",
                    "text": f"memory at /cfg/claude-{session}/projects{workdir.replace('/', '-')}/",
                }
            ],
            "metadata": {"user_id": session},
            "stream": True,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": context},
                        {
                            "type": "text",
                            "text": f"<system-reminder>\nToday's date is {date}.\n</system-reminder>",
                        },
                        {
                            "type": "text",
                            "text": f"<system-reminder>\nRecent commits:\n{sha} init\n</system-reminder>",
                        },
                        {"type": "text", "text": "Fix it."},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "look first", "signature": "sig"},
                        {
                            "type": "tool_use",
                            "id": f"toolu_{session}",
                            "name": "Read",
                            "input": {"file_path": f"{workdir}/a"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_{session}",
                            "content": [{"type": "text", "text": "key sk-abcdefghijklmnopqrstu"}],
                        }
                    ],
                },
            ],
        }

    norm = MessagesNormaliser(homes={"/cfg": "<CLAUDE_CONFIG>"})
    one = norm.request(body("/w/one", "2026-12-07", "afe3709", "Linux 6.1", "s1"))
    other = norm.request(body("/srv/two", "2027-01-31", "34fb755", "Linux 6.18", "s2"))
    assert one == other
    assert one["conversation"] == [
        {"role": "user", "text": "Fix it."},
        {"thinking": "look first"},
        {"call": "Read", "id": "<CALL_1>", "args": '{"file_path": "<WORKDIR>/a"}'},
        {"output": "<CALL_1>", "text": "key <SECRET>", "error": False},
    ]
    assert one["context"][1].startswith("Today's date is <DATE>. #")
    changed = norm.request(body("/w/one", "2026-12-07", "afe3709", "Linux 6.1", "s1") | {"model": "other"})
    assert changed != one


def test_the_proxy_turns_a_streamed_answer_with_thinking_back_into_the_same_turn() -> None:
    answer = Turn(
        blocks=(
            {"type": "thinking", "thinking": "Read it first.", "signature": "c2ln"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/w/a"}},
        ),
        usage=Usage(input_tokens=12, cache_read_input_tokens=3, output_tokens=7),
    )
    with FakeAnthropicApi(api_key=UPSTREAM_KEY) as upstream:
        upstream.push(answer, answer, Turn.http_error(529, "busy"))
        forward = messages_proxy(upstream.url, UPSTREAM_KEY)
        streamed = forward({"model": CLAUDE_TEST_MODEL, "messages": [], "stream": True})
        whole = forward({"model": CLAUDE_TEST_MODEL, "messages": [], "stream": False})
        refused = forward({"model": CLAUDE_TEST_MODEL, "messages": [], "stream": True})
    for got in (streamed, whole):
        assert got.blocks == answer.blocks
        assert got.usage == answer.usage
    assert (refused.http_status, refused.failure) == (529, "busy")


def test_the_proxy_wants_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="set ANTHROPIC_API_KEY"):
        messages_proxy()
    monkeypatch.setenv("ANTHROPIC_API_KEY", UPSTREAM_KEY)
    with FakeAnthropicApi(api_key=UPSTREAM_KEY) as upstream:
        upstream.push(Turn.message("hi"))
        answer = messages_proxy(upstream.url)({"model": CLAUDE_TEST_MODEL, "messages": [], "stream": True})
    assert answer.blocks == ({"type": "text", "text": "hi"},)
