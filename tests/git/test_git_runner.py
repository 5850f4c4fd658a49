"""The git runner: environment, errors, redaction, retryability, timeouts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from deksdenflow_core.errors import MissingDependency
from deksdenflow_git import Git, GitCommandError, GitIdentity, MirrorCache, redact
from deksdenflow_git.git import is_transient_failure

from tests.git.origin import ISOLATED_GIT_ENV, Origin

SECRET_URL = "https://user:secret@127.0.0.1:9/x.git"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts connections (via the kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port: int = sock.getsockname()[1]
        yield port


async def test_identity_and_fixed_environment_reach_git(git: Git) -> None:
    ident = await git.run("var", "GIT_COMMITTER_IDENT")
    assert ident.startswith("Test Bot <bot@example.com>")
    assert (await git.run("config", "--get", "core.hooksPath")).strip() == "/dev/null"
    assert (await git.run("config", "--get-all", "credential.helper")).strip() == ""


async def test_failed_command_raises_a_non_retryable_error_with_details(git: Git, origin: Origin) -> None:
    with pytest.raises(GitCommandError) as caught:
        await git.run("rev-parse", "--verify", "no-such-ref", cwd=origin.path)
    err = caught.value
    assert not err.retryable
    assert err.exit_code == 128
    assert "rev-parse" in err.message
    assert err.argv[0] == "git"
    assert "no-such-ref" in err.argv
    assert "Needed a single revision" in err.stderr


async def test_unchecked_run_returns_output_of_a_failing_command(git: Git, origin: Origin) -> None:
    result = await git.execute("rev-parse", "--verify", "--quiet", "no-such-ref", cwd=origin.path)
    assert (result.ok, result.exit_code, result.stdout) == (False, 1, "")
    assert (
        await git.run("rev-parse", "--verify", "--quiet", "no-such-ref", cwd=origin.path, check=False) == ""
    )


async def test_input_is_fed_to_stdin(git: Git, origin: Origin) -> None:
    sha = await git.run("hash-object", "--stdin", input=b"hello\n", cwd=origin.path)
    assert sha.strip() == "ce013625030ba8dba906f756967f9e9ca394464a"


async def test_token_in_an_https_url_never_appears_in_errors_or_logs(
    cache: MirrorCache, capfd: pytest.CaptureFixture[str]
) -> None:
    for attempt in (cache.sync("p", SECRET_URL), cache.remote_heads("p", SECRET_URL)):
        with pytest.raises(GitCommandError) as caught:
            await attempt
        err = caught.value
        assert err.retryable, "a refused connection is worth retrying"
        shown = [str(err), repr(err), json.dumps(err.to_dict()), err.stderr, *err.argv]
        assert not [text for text in shown if "secret" in text]
        assert "https://***@127.0.0.1:9/x.git" in err.argv
    out, errors = capfd.readouterr()
    assert "secret" not in out + errors


def test_redact_hides_userinfo_of_every_url() -> None:
    text = "fetch https://x-access-token:ghp_abc@github.com/o/r.git and ssh://git@host/r, http://p@ss@h/x"
    assert redact(text) == "fetch https://***@github.com/o/r.git and ssh://***@host/r, http://***@h/x"
    assert redact("git@github.com:o/r.git /local/path") == "git@github.com:o/r.git /local/path"


def test_network_failures_are_transient_and_refusals_are_not() -> None:
    assert is_transient_failure("fatal: unable to access 'https://h/': Could not resolve host: h")
    assert is_transient_failure("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502")
    assert is_transient_failure("fatal: the remote end hung up unexpectedly")
    assert not is_transient_failure(
        "fatal: unable to access 'https://h/': The requested URL returned error: 403"
    )
    assert not is_transient_failure("fatal: Authentication failed for 'https://h/r.git/'")
    assert not is_transient_failure(
        "git@h: Permission denied (publickey).\nfatal: Could not read from remote"
    )
    assert not is_transient_failure("fatal: ambiguous argument 'x': unknown revision")


async def test_timeout_kills_git_and_raises_a_retryable_error(tmp_path: Path, silent_port: int) -> None:
    git = Git(env=ISOLATED_GIT_ENV, timeout_seconds=0.5)
    with pytest.raises(GitCommandError) as caught:
        await git.run("ls-remote", f"http://u:pw@127.0.0.1:{silent_port}/x.git", cwd=tmp_path)
    assert caught.value.retryable
    assert caught.value.exit_code is None
    assert "timed out" in caught.value.message
    assert "pw" not in " ".join(caught.value.argv)


async def test_missing_git_binary_is_a_missing_dependency(tmp_path: Path) -> None:
    git = Git(env={**ISOLATED_GIT_ENV, "PATH": str(tmp_path)}, identity=GitIdentity("a", "a@b"))
    with pytest.raises(MissingDependency):
        await git.run("version")


async def test_repository_variables_of_the_parent_process_are_ignored(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", "/nonexistent/.git")
    monkeypatch.setenv("GIT_INDEX_FILE", "/nonexistent/index")
    git = Git(env=ISOLATED_GIT_ENV)
    assert (await git.run("rev-parse", "--absolute-git-dir", cwd=origin.path)).strip() == str(
        origin.path.resolve()
    )
