"""The Webhook aggregate: one per delivery, so a delivery is recorded once however often it comes.

The aggregate id derives from the provider and its delivery id (``webhook_id``); recording is an append
conditional on the aggregate being empty, so a redelivery — a minute or a month later, far outside
JetStream's duplicate window — finds the delivery recorded and appends nothing.
"""

from __future__ import annotations

import hashlib
from typing import TypedDict, assert_never

from pydantic import BaseModel, ConfigDict

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import webhook as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiProvider, WebhookOutcome
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import webhook as ev
from deksdenflow_core.domain.context import DecisionContext, InvariantViolation
from deksdenflow_core.errors import InvalidCommand, NotFound

AGGREGATE_TYPE = "webhook"
# Subject token of deliveries that match no project (subjects need a project id).
NO_PROJECT = "_"

WebhookEvent = ev.WebhookReceived | ev.WebhookProcessed
WebhookCommand = cmd.ReceiveWebhook | cmd.RecordWebhookProcessed


class WebhookState(BaseModel):
    """A delivery as recorded, and whether applying it is done."""

    model_config = ConfigDict(frozen=True)

    webhook_id: str
    exists: bool = False
    received: ev.WebhookReceived | None = None
    outcome: WebhookOutcome = WebhookOutcome.UNSPECIFIED
    version: int = 0

    @classmethod
    def initial(cls, webhook_id: str) -> WebhookState:
        return cls(webhook_id=webhook_id)

    @property
    def project_id(self) -> str:
        return (self.received.project_id if self.received else "") or NO_PROJECT

    @property
    def processed(self) -> bool:
        return self.outcome is not WebhookOutcome.UNSPECIFIED


class WebhookUpdate(TypedDict, total=False):
    """Fields of a :class:`WebhookState` an event may change, typed like the other aggregates' updates."""

    exists: bool
    received: ev.WebhookReceived | None
    outcome: WebhookOutcome
    version: int


def webhook_id(provider: CiProvider, delivery_id: str) -> str:
    """The aggregate id of a delivery: fixed length and subject-safe whatever the provider sends."""
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    return f"{provider.name.lower()}-{digest}"


def decide_webhook(state: WebhookState, command: WebhookCommand, ctx: DecisionContext) -> list[WebhookEvent]:
    del ctx
    match command:
        case cmd.ReceiveWebhook():
            if state.exists:
                return []  # a redelivery: recorded once
            if not command.delivery_id:
                raise InvalidCommand("a webhook delivery needs an id", field="delivery_id")
            if command.provider is CiProvider.UNSPECIFIED:
                raise InvalidCommand("a webhook delivery needs its provider", field="provider")
            if webhook_id(command.provider, command.delivery_id) != state.webhook_id:
                raise InvalidCommand("the aggregate id does not derive from this delivery id")
            return [ev.WebhookReceived(**command.model_dump())]
        case cmd.RecordWebhookProcessed():
            if not state.exists:
                raise NotFound(f"webhook delivery {state.webhook_id} was never received")
            if state.processed:
                return []
            if command.outcome is WebhookOutcome.UNSPECIFIED:
                raise InvalidCommand("the outcome of a processed delivery must be given", field="outcome")
            return [ev.WebhookProcessed(**command.model_dump())]
        case _:
            assert_never(command)


def evolve_webhook(state: WebhookState, event: WebhookEvent) -> WebhookState:
    match event:
        case ev.WebhookReceived():
            if state.exists:
                raise InvariantViolation("webhook delivery received twice")
            update: WebhookUpdate = {"exists": True, "received": event}
            if event.ignored_reason:
                update["outcome"] = WebhookOutcome.IGNORED
        case ev.WebhookProcessed():
            if not state.exists:
                raise InvariantViolation("webhook.processed before webhook.received")
            update = {"outcome": event.outcome}
        case _:
            assert_never(event)
    return state.model_copy(update={**update, "version": state.version + 1})
