"""The request/reply messages between processes keep the JSON bodies their two sides exchanged before they
were contracts, so an API and a git worker of different versions still understand each other."""

from __future__ import annotations

import json

from deksdenflow_core.contracts.generated.deksdenflow.services.v1.branches import (
    ListBranchesReply,
    ListBranchesRequest,
)


def test_branch_listing_request_is_the_project_id() -> None:
    body = ListBranchesRequest(project_id="p-1").model_dump_json()
    assert json.loads(body) == {"project_id": "p-1"}
    assert ListBranchesRequest.model_validate_json(json.dumps({"project_id": "p-1"})).project_id == "p-1"


def test_branch_listing_reply_is_heads_or_error_with_zero_values_left_out() -> None:
    heads = ListBranchesReply(heads={"main": "abc"}).model_dump_json(exclude_defaults=True)
    error = ListBranchesReply(error="project p-1 does not exist").model_dump_json(exclude_defaults=True)
    assert json.loads(heads) == {"heads": {"main": "abc"}}
    assert json.loads(error) == {"error": "project p-1 does not exist"}
    # What a worker wrote before the contract reads the same.
    assert ListBranchesReply.model_validate_json('{"heads": {"main": "abc"}}').heads == {"main": "abc"}
    assert ListBranchesReply.model_validate_json('{"error": "gone"}') == ListBranchesReply(error="gone")
