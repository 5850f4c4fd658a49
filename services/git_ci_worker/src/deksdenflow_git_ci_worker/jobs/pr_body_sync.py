"""The PR/MR body kept current: every event that changes what the body shows rewrites it as a whole from
the run's current state (``pr_body.py``), never appending, and only when the text changed.

Rendering the current state rather than the event means a late or out-of-order delivery writes the
newest body, and a redelivery writes nothing new. Within this process one run's bodies are written one
at a time, so an older rendering never lands after a newer one; across replicas the next event puts
the newest one back. A refusal by the forge is logged and dropped (the next event rewrites the body); a
forge that is unavailable is retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakValueDictionary

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.jobs import Route
from deksdenflow_git.forges import ForgeError

from deksdenflow_git_ci_worker.kit import GitJobKit, log, provider_of
from deksdenflow_git_ci_worker.pr_body import pr_body

# The events after which the body shows something else: a step's status or verdict, the PR itself
# (opened, ready), the run's end or block. Usage changes with every agent call; it is shown as of these.
SHOWN_BY: tuple[type[Any], ...] = (
    ev.StepCompleted,
    ev.StepFailed,
    ev.StepBlocked,
    ev.QaVerdictRecorded,
    ev.PullRequestOpened,
    ev.PullRequestMarkedReady,
    ev.ProtocolRunCompleted,
    ev.ProtocolRunBlocked,
)


@dataclass
class PrBodySync:
    """Any of :data:`SHOWN_BY` → the run's open PR/MR body replaced by its current rendering, if that
    differs from the last one written here for the run."""

    kit: GitJobKit
    # How many runs' last bodies are remembered; a run forgotten (or a restart) writes its body once more.
    remembered: int = 1_000
    # Run id → digest of the body last written for it, the most recently written last.
    _written: OrderedDict[str, str] = field(default_factory=OrderedDict, init=False)
    _locks: WeakValueDictionary[str, asyncio.Lock] = field(default_factory=WeakValueDictionary, init=False)

    def routes(self) -> list[Route]:
        """One row per event type; nothing to record when the job gives up (the body simply stays)."""
        return [Route(event_type, self.run) for event_type in SHOWN_BY]

    async def run(self, delivery: Delivery, _event: object) -> None:
        run_id = delivery.event.envelope.aggregate_id
        # The lock lives as long as a job of this run holds or awaits it.
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            await self._sync(run_id)

    async def _sync(self, run_id: str) -> None:
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, run_id)).state
        if not has_open_pull_request(run):
            return
        body = pr_body(run, api_url=kit.settings.public_api_url)
        digest = hashlib.sha256(body.encode()).hexdigest()
        if self._written.get(run_id) == digest:
            return
        project = (await kit.repo.load(PROJECT, run.project_id)).state
        provider = provider_of(project)
        if provider is None:  # its PR was opened on a forge the project no longer names
            log.warning("PR body not updated: the project has no CI provider", pr=run.pr_url)
            return
        forge = kit.forge(provider, project)
        try:
            await forge.update_pull_request_body(run.pr_number, body)
        except ForgeError as exc:
            kit.metrics.prs.labels(provider, "body_refused").inc()
            log.warning("PR body not updated", reason=exc.message, pr=run.pr_url)
            return
        finally:
            await forge.aclose()
        kit.metrics.prs.labels(provider, "body_updated").inc()
        self._remember(run_id, digest)

    def _remember(self, run_id: str, digest: str) -> None:
        self._written[run_id] = digest
        self._written.move_to_end(run_id)
        while len(self._written) > self.remembered:
            self._written.popitem(last=False)


def has_open_pull_request(run: ProtocolRunState) -> bool:
    return bool(run.pr_number) and not run.pr_merged and not run.pr_closed
