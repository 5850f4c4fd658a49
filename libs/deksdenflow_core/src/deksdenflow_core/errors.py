"""One error hierarchy for all of deksdenflow.

Every error says whether retrying the same operation can succeed (``retryable``) and carries
structured fields for logs and for the HTTP mapping done at the API edge. Nothing here knows
about HTTP: the API decides status codes from the class.
"""

from __future__ import annotations

from typing import Any


class DeksdenflowError(Exception):
    """Root of every error raised on purpose by deksdenflow code."""

    retryable: bool = False
    code: str = "error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view: code, message and the structured fields."""
        return {"code": self.code, "message": self.message, **self.fields}


# --- domain -------------------------------------------------------------------------------------------


class DomainError(DeksdenflowError):
    """A command was rejected by the rules of an aggregate. Retrying the same command cannot help."""

    code = "domain_error"


class IllegalTransition(DomainError):
    """The command is not allowed in the aggregate's current status."""

    code = "illegal_transition"

    def __init__(self, message: str, *, current_status: str, **fields: Any) -> None:
        super().__init__(message, current_status=current_status, **fields)
        self.current_status = current_status


class NotFound(DomainError):
    """The aggregate or entity a command names does not exist."""

    code = "not_found"


class InvalidCommand(DomainError):
    """The command is well-formed but its content breaks a rule (e.g. an invalid plan)."""

    code = "invalid_command"


# --- outcomes of a worker's job ------------------------------------------------------------------------
# A job only raises; the consumer settles (consumer.py): ``WorkNotCurrent`` is acknowledged and logged,
# ``PermanentFailure`` is recorded through the job's failure command, then terminated.


class WorkNotCurrent(DeksdenflowError):
    """The work a request asked for is no longer current: the run moved on, was paused or cancelled, the
    attempt was superseded, or the effect is already recorded. Nothing to do and nothing to record."""

    code = "work_not_current"


class PermanentFailure(DeksdenflowError):
    """This work will never succeed as asked (a missing base branch, output that stays invalid after the
    re-ask, …): record the failure with its reason instead of retrying."""

    code = "permanent_failure"


# --- infrastructure -----------------------------------------------------------------------------------


class ConcurrencyConflict(DeksdenflowError):
    """Another writer appended to the aggregate first; reload, decide again, retry."""

    retryable = True
    code = "concurrency_conflict"


class InfrastructureError(DeksdenflowError):
    """A broker, database or process failure. Usually transient."""

    retryable = True
    code = "infrastructure_error"


class ContractError(DeksdenflowError):
    """A message on the wire does not match the contracts (unknown type, bad body or headers)."""

    code = "contract_error"


class ConfigurationError(DeksdenflowError):
    """Settings are missing or contradictory; fix the configuration and start again."""

    code = "configuration_error"


class MissingDependency(DeksdenflowError):
    """A binary or package the process needs is not installed."""

    code = "missing_dependency"
