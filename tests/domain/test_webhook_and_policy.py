"""The webhook delivery aggregate (recorded once) and a project's CI policy and webhook secret."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import project as pcmd
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import webhook as wcmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiPolicy,
    CiProvider,
    WebhookOutcome,
)
from deksdenflow_core.domain.project import decide_project, evolve_project
from deksdenflow_core.domain.webhook import (
    NO_PROJECT,
    WebhookState,
    decide_webhook,
    evolve_webhook,
    webhook_id,
)
from deksdenflow_core.errors import InvalidCommand, NotFound

from tests.domain.builders import ctx, registered_project


def _receive(state: WebhookState, command: wcmd.ReceiveWebhook) -> WebhookState:
    for e in decide_webhook(state, command, ctx()):
        state = evolve_webhook(state, e)
    return state


def test_a_delivery_is_recorded_once_and_processed_once() -> None:
    wid = webhook_id(CiProvider.GITHUB, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert wid.startswith("github-")
    assert len(wid) == len("github-") + 32
    receive = wcmd.ReceiveWebhook(
        provider=CiProvider.GITHUB,
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        event="workflow_run",
        project_id="p1",
        protocol_run_id="r1",
    )
    state = _receive(WebhookState.initial(wid), receive)
    assert state.exists
    assert state.project_id == "p1"
    assert not state.processed
    assert decide_webhook(state, receive, ctx()) == []  # the redelivery
    done = wcmd.RecordWebhookProcessed(protocol_run_id="r1", outcome=WebhookOutcome.APPLIED)
    for e in decide_webhook(state, done, ctx()):
        state = evolve_webhook(state, e)
    assert state.outcome is WebhookOutcome.APPLIED
    assert decide_webhook(state, done, ctx()) == []


def test_an_ignored_delivery_is_done_when_recorded_and_belongs_to_no_project() -> None:
    wid = webhook_id(CiProvider.GITLAB, "x")
    state = _receive(
        WebhookState.initial(wid),
        wcmd.ReceiveWebhook(
            provider=CiProvider.GITLAB, delivery_id="x", ignored_reason="no run named 0009-x"
        ),
    )
    assert state.processed
    assert state.outcome is WebhookOutcome.IGNORED
    assert state.project_id == NO_PROJECT


def test_bad_deliveries_are_refused() -> None:
    with pytest.raises(InvalidCommand, match="id"):
        decide_webhook(
            WebhookState.initial("github-x"), wcmd.ReceiveWebhook(provider=CiProvider.GITHUB), ctx()
        )
    with pytest.raises(InvalidCommand, match="derive"):
        decide_webhook(
            WebhookState.initial(webhook_id(CiProvider.GITHUB, "a")),
            wcmd.ReceiveWebhook(provider=CiProvider.GITHUB, delivery_id="b"),
            ctx(),
        )
    with pytest.raises(NotFound):
        decide_webhook(
            WebhookState.initial("github-x"),
            wcmd.RecordWebhookProcessed(outcome=WebhookOutcome.APPLIED),
            ctx(),
        )


def test_ci_policy_is_validated_and_set_only_when_it_changes() -> None:
    project = registered_project()
    assert project.ci_policy is None
    policy = CiPolicy(auto_qa_on_success=True, fix_attempts=2)
    events = decide_project(project, pcmd.SetCiPolicy(ci_policy=policy), ctx())
    for e in events:
        project = evolve_project(project, e)
    assert project.ci_policy == policy
    assert decide_project(project, pcmd.SetCiPolicy(ci_policy=policy), ctx()) == []
    with pytest.raises(InvalidCommand, match="fix_attempts"):
        decide_project(project, pcmd.SetCiPolicy(ci_policy=CiPolicy(fix_attempts=99)), ctx())


def test_webhook_secret_rotation_counts_generations() -> None:
    project = registered_project()
    for expected in (1, 2):
        for e in decide_project(project, pcmd.RotateWebhookSecret(), ctx()):
            project = evolve_project(project, e)
        assert project.webhook_secret_generation == expected
