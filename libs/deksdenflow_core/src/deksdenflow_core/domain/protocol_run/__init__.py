"""The ProtocolRun aggregate and the StepRuns that live inside it."""

from deksdenflow_core.domain.protocol_run.decide import ProtocolRunCommand, decide_protocol_run
from deksdenflow_core.domain.protocol_run.evolve import ProtocolRunEvent, evolve_protocol_run
from deksdenflow_core.domain.protocol_run.state import (
    AGGREGATE_TYPE,
    MAX_PUSH_ANCESTORS,
    TERMINAL_RUN_STATUSES,
    ProtocolRunState,
    RunStatus,
    StepState,
    StepStatus,
)

__all__ = [
    "AGGREGATE_TYPE",
    "MAX_PUSH_ANCESTORS",
    "TERMINAL_RUN_STATUSES",
    "ProtocolRunCommand",
    "ProtocolRunEvent",
    "ProtocolRunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    "decide_protocol_run",
    "evolve_protocol_run",
]
