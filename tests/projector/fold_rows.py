"""Print, as JSON, the read-model rows the projector builds from a fixed stream of events.

Run as ``python -m tests.projector.fold_rows`` by ``test_fold_determinism``: the same events folded in
processes with different string hashing must give the same bytes.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    CiStatus,
    Phase,
    TokenUsage,
)
from deksdenflow_core.domain.naming import ProtocolCatalog, decide_create_protocol
from deksdenflow_core.domain.project import ProjectState, decide_project, evolve_project
from deksdenflow_core.domain.protocol_run import (
    ProtocolRunState,
    decide_protocol_run,
    evolve_protocol_run,
)
from deksdenflow_core.envelope import Envelope, RecordedEvent
from deksdenflow_projector.fold import Known, Touched, fold
from deksdenflow_projector.rows import build

from tests.domain.builders import MANUAL, NOW, ctx, plan_steps

PROJECT_ID = "p1"


def _recorded(event: Any, aggregate_type: str, aggregate_id: str, seq: int, version: int) -> RecordedEvent:
    envelope = Envelope(
        id=f"e{seq}",
        type=event.EVENT_TYPE,
        source="tests",
        time=NOW + timedelta(seconds=seq),
        project_id=PROJECT_ID,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
    )
    return RecordedEvent(envelope=envelope, event=event, stream_seq=seq)


def events() -> list[RecordedEvent]:
    """A project and a run with many usage calls and CI deliveries (ids kept in sets by the state)."""
    out: list[RecordedEvent] = []
    project = ProjectState.initial(PROJECT_ID)
    for command in (
        pcmd.RegisterProject(name="demo", git_url="file:///demo.git", run_policy=MANUAL),
        pcmd.IssueProjectToken(token_id="t1", token_hash="a" * 64),
        pcmd.IssueProjectToken(token_id="t0", token_hash="b" * 64),
    ):
        for e in decide_project(project, command, ctx()):
            project = evolve_project(project, e)
            out.append(_recorded(e, "project", PROJECT_ID, len(out) + 1, project.version))
    created = decide_create_protocol(project, ProtocolCatalog(), cmd.CreateProtocolRun(task_name="t"), ctx())
    run = evolve_protocol_run(ProtocolRunState.initial(created.protocol_run_id), created)
    out.append(_recorded(created, "protocol_run", run.protocol_run_id, len(out) + 1, run.version))
    commands: list[Any] = [
        cmd.StartProtocolRun(),
        cmd.RecordPlanningCompleted(attempt=1, steps=plan_steps(2)),
    ]
    commands += [
        cmd.RecordUsage(call_id=f"call-{i}", phase=Phase.PLANNING, usage=TokenUsage(input_tokens=i))
        for i in range(24)
    ]
    commands += [
        cmd.RecordCiReport(
            provider=CiProvider.GITHUB,
            status=CiStatus.RUNNING,
            head_sha=f"sha-{i}",
            delivery_id=f"delivery-{i}",
        )
        for i in range(24)
    ]
    for i, command in enumerate(commands):
        for event in decide_protocol_run(run, command, ctx(f"s{i}")):
            run = evolve_protocol_run(run, event)
            out.append(_recorded(event, "protocol_run", run.protocol_run_id, len(out) + 1, run.version))
    assert len(run.usage_call_ids) == 24, "every usage call is in the state"
    assert len(run.ci_delivery_ids) == 24, "every CI delivery is in the state"
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def rows_json() -> str:
    """Every row of the batch, in the order the projector would send them."""
    recorded = events()
    touched = Touched()
    fold(recorded, Known(), touched)
    writes = build(recorded, touched)
    return json.dumps({name: _plain(rows) for name, rows in vars(writes).items()})


if __name__ == "__main__":
    sys.stdout.write(rows_json())
