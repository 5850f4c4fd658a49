"""The exit-code contract (``deksdenflow help exit-codes``): scripts and CI branch on these numbers."""

from __future__ import annotations

from typing import Any

OK = 0
FAILED = 1
USAGE = 2
MISSING_DEPENDENCY = 3
AUTH = 4
CONFLICT = 5
NOT_FOUND = 6
SERVER = 7
TIMEOUT = 124
INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (OK, "ok (for `protocol wait`: the awaited state was reached and it is not a failure)"),
    (FAILED, "the run or step failed, is blocked or was cancelled, or QA said FAIL"),
    (USAGE, "usage or configuration error (bad arguments, no API URL, invalid request body: HTTP 422)"),
    (MISSING_DEPENDENCY, "a missing dependency (a program or library the command needs)"),
    (AUTH, "authentication or permission (HTTP 401/403: missing, bad or foreign token)"),
    (CONFLICT, "conflict (HTTP 409): illegal in the current status, which is printed on stderr"),
    (NOT_FOUND, "not found (HTTP 404, or no project/protocol with that name)"),
    (SERVER, "server or transport error (HTTP 5xx, connection refused or dropped, bad answer)"),
    (TIMEOUT, "timeout (`--timeout` of `protocol wait` passed)"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)


class CliError(Exception):
    """A failure to report on stderr and exit with ``code``; ``message`` is for people."""

    def __init__(self, code: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # The API's error body (code, message and its fields, e.g. a 409's current_status), when there is one.
        self.body = body or {}


def exit_code_of_status(status: int) -> int:
    """The exit code of an HTTP error status."""
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status in (400, 413, 422):
        return USAGE
    return SERVER


def exit_codes_text() -> str:
    return "Exit codes of deksdenflow:\n" + "\n".join(
        f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES
    )
