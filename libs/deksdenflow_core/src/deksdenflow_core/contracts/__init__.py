"""Event and command contracts.

The source of truth is ``proto/`` at the repository root. ``generated/`` holds the pydantic bindings
produced from it by ``make proto`` (never edit them by hand); ``base`` is the hand-written runtime they
build on. ``generated.registry`` maps every ``event_type``/``command_type`` string to its model.
"""

from deksdenflow_core.contracts.base import ContractModel

__all__ = ["ContractModel"]
