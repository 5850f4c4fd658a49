"""The async runner for the ``git`` binary: one place that decides environment, config and errors.

Every invocation runs non-interactively (no terminal prompt, no pager, C locale so stderr can be
classified) in its own session, so ssh cannot open the worker's terminal either, and is killed with
its children on timeout or cancellation. A few ``-c`` options make git safe for automation without
touching any config file: no hooks, no signing, no colour, and no credential helper, so a token given
in a URL is never handed to a helper that would persist it. Errors never contain the secrets of
``https://user:token@host`` URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deksdenflow_core import tracing
from deksdenflow_core.errors import MissingDependency

from deksdenflow_git.errors import GitCommandError

# Automation defaults passed as ``-c`` so they win over the user's global config without editing it.
_CONFIG_ARGS = (
    "-c", "core.hooksPath=/dev/null",  # hooks are the repository owner's and CI's business, not ours
    "-c", "commit.gpgSign=false",  # no key, no agent to ask for a passphrase
    "-c", "color.ui=false",
    "-c", "credential.helper=",  # an empty value clears the list: tokens in URLs are never stored
)  # fmt: skip

_FIXED_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    # ``git status`` would otherwise take index.lock to refresh stat data, racing an agent in the tree.
    "GIT_OPTIONAL_LOCKS": "0",
}

# Variables that tie git to one repository. Inherited (say, from a hook that started the worker) they
# would redirect every command to that repository, so they are dropped from the inherited environment.
_REPOSITORY_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
    }
)

_STDERR_TAIL = 2000

# The userinfo of any ``scheme://user:secret@host`` (greedy up to the last '@' before the path, so a
# password with a raw '@' is hidden entirely).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"]+@")

# Failures where the same command can succeed later. Checked only after _PERMANENT, because git wraps
# both kinds in "unable to access" / "Could not read from remote repository".
_TRANSIENT = re.compile(
    r"could not resolve host|temporary failure in name resolution|name or service not known"
    r"|connection (refused|reset|timed out|closed)|failed to connect|couldn't connect"
    r"|operation timed out|timed out|network is unreachable|no route to host"
    r"|early eof|remote end hung up|rpc failed|returned error: 5\d\d|ssl|tls|gnutls"
    r"|unable to access|could not read from remote repository|cannot lock ref",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"authentication failed|could not read (username|password)|returned error: 4\d\d"
    r"|repository not found|permission denied|does not appear to be a git repository"
    r"|host key verification failed",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def is_transient_failure(stderr: str) -> bool:
    """Whether git's stderr describes a failure of the network or the remote rather than of the request."""
    return _TRANSIENT.search(stderr) is not None and _PERMANENT.search(stderr) is None


@dataclass(frozen=True)
class GitIdentity:
    """Author and committer of the commits a worker makes."""

    name: str
    email: str


@dataclass(frozen=True)
class GitResult:
    """What a finished ``git`` process printed and returned (argv is kept raw; ``error`` redacts it)."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    cwd: Path | None

    @property
    def ok(self) -> bool:
        """True if git exited 0."""
        return self.exit_code == 0

    def error(self) -> GitCommandError:
        """The error describing this failure, with secrets redacted and retryability classified."""
        stderr = redact(self.stderr.strip())[-_STDERR_TAIL:]
        return GitCommandError(
            f"git {_subcommand(self.argv)} failed (exit {self.exit_code}): {_what_went_wrong(stderr)}",
            argv=[redact(a) for a in self.argv],
            exit_code=self.exit_code,
            stderr=stderr,
            retryable=is_transient_failure(self.stderr),
            cwd=str(self.cwd) if self.cwd else None,
        )


def _what_went_wrong(stderr: str) -> str:
    """git's own words for a failure: its ``fatal:``/``error:`` lines (the last line is often advice such
    as "and the repository exists."), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    if errors:
        return " ".join(dict.fromkeys(errors[:3]))
    return lines[-1] if lines else "no output"


class Git:
    """Runs ``git`` as an asyncio subprocess with a fixed, non-interactive environment.

    The environment is the process's (read once, here, minus variables that pin git to a repository)
    plus ``env``, e.g. ``GIT_SSH_COMMAND`` or ``GIT_CONFIG_GLOBAL`` in tests; the non-interactive
    settings and the identity always win.
    """

    def __init__(
        self,
        *,
        identity: GitIdentity | None = None,
        env: Mapping[str, str] | None = None,
        timeout_seconds: float = 300,
    ) -> None:
        inherited = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_ENV}
        merged = {**inherited, **(env or {}), **_FIXED_ENV}
        if identity is not None:
            merged |= {
                "GIT_AUTHOR_NAME": identity.name,
                "GIT_AUTHOR_EMAIL": identity.email,
                "GIT_COMMITTER_NAME": identity.name,
                "GIT_COMMITTER_EMAIL": identity.email,
            }
        self._env = merged
        self.identity = identity
        self.timeout_seconds = timeout_seconds

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run ``git *args`` and return its stdout; raise ``GitCommandError`` on failure if ``check``."""
        result = await self.execute(*args, cwd=cwd, input=input, env=env)
        if check and not result.ok:
            raise result.error()
        return result.stdout

    async def execute(
        self,
        *args: str,
        cwd: Path | None = None,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GitResult:
        """Run ``git *args`` and return the result whatever the exit code.

        For callers that read meaning into a non-zero exit (``diff --quiet``, a rejected push).
        Raises ``GitCommandError`` (retryable) on timeout and ``MissingDependency`` without git.
        """
        argv = ("git", *_CONFIG_ARGS, *args)
        if not tracing.enabled():
            return await self._execute(argv, cwd, input, env)
        with tracing.child_span("git", f"git {_subcommand(argv)}") as span:
            result = await self._execute(argv, cwd, input, env)
            if span is not None:
                span.set_attribute("process.exit.code", result.exit_code)
            return result

    async def _execute(
        self,
        argv: tuple[str, ...],
        cwd: Path | None,
        input: bytes | None,
        env: Mapping[str, str] | None,
    ) -> GitResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env={**self._env, **env} if env else self._env,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            if exc.filename != "git":  # a missing cwd raises this too, naming the directory
                raise
            raise MissingDependency("the git binary is not on PATH", binary="git") from exc
        try:
            async with asyncio.timeout(self.timeout_seconds):
                out, err = await proc.communicate(input)
        except TimeoutError:
            await _kill(proc)
            raise GitCommandError(
                f"git {_subcommand(argv)} timed out after {self.timeout_seconds}s",
                argv=[redact(a) for a in argv],
                exit_code=None,
                stderr="",
                retryable=True,
                cwd=str(cwd) if cwd else None,
            ) from None
        except BaseException:
            await _kill(proc)
            raise
        return GitResult(
            argv=argv,
            exit_code=await proc.wait(),  # already exited: communicate() waits for it
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            cwd=cwd,
        )


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill git and whatever it started (remote helpers, ssh, pack-objects): they share its session."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    # Shielded: a second cancellation must not leave a zombie behind.
    await asyncio.shield(proc.wait())


def _subcommand(argv: tuple[str, ...]) -> str:
    """The git subcommand in ``argv`` (the first word after the global ``-c``/``-C`` options)."""
    rest = list(argv[1:])
    while rest and rest[0] in ("-c", "-C"):
        rest = rest[2:]
    return rest[0] if rest else ""
