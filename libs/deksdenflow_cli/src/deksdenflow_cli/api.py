"""What the client sends to and reads from the API, one entry per endpoint it calls.

``tests/cli/test_openapi_drift.py`` checks every entry against the API's OpenAPI document: the path and
method exist, each request field is one the body schema has, each response field one the response schema
(for a list: its items) has. A field renamed or removed on either side fails that test, not a user.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # the OpenAPI path template, e.g. /projects/{project_id}
    request: tuple[str, ...] = ()  # body fields the client may send
    response: tuple[str, ...] = ()  # fields the client reads (of each item, for a list)
    listing: bool = False  # the answer is {"data": [...], "count": n}


PROJECT_FIELDS = (
    "id",
    "name",
    "status",
    "status_reason",
    "last_error",
    "retry",
    "git_url",
    "base_branch",
    "questions",
    "answers",
    "created_at",
)
PROTOCOL_FIELDS = (
    "id",
    "project_id",
    "number",
    "protocol_name",
    "slug",
    "status",
    "waiting_for",
    "blocked_reason",
    "last_error",
    "retry",
    "pr_url",
    "task_name",
    "usage",
    "spec_findings",
    "spec_rules_version",
    "updated_at",
)
EVALUATION_FIELDS = (
    "id",
    "mode",
    "baseline",
    "status",
    "passed",
    "task_ids",
    "variants",
    "summaries",
    "problems",
    "rescores",
    "started_at",
)
STEP_FIELDS = (
    "id",
    "step_index",
    "step_name",
    "status",
    "retries",
    "last_verdict",
    "failure_reason",
    "engine_id",
    "model",
    "commit_sha",
    "policies",
    "runtime_state",
)
ACTION_FIELDS = ("protocol_run_id", "step_run_id", "action", "status", "step_status", "events")
EVENT_FIELDS = (
    "position",
    "time",
    "type",
    "project_id",
    "protocol_run_id",
    "step_run_id",
    "actor",
    "payload",
)
QA_FIELDS = ("qa_attempt", "verdict", "summary", "blocking", "warnings", "engine_id", "time", "report_md")
RUN_POLICY_FIELDS = (
    "mode",
    "plan_approval",
    "qa_after_execution",
    "review_fix_attempts",
    "max_parallel_steps",
    "pr",
    "merge",
)
USAGE_FIELDS = (
    "key",
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
    "cost_micro_usd",
    "cost_usd",
)

ENDPOINTS: dict[str, Endpoint] = {
    "project.create": Endpoint(
        "POST",
        "/projects",
        (
            "name",
            "git_url",
            "base_branch",
            "onboard",
            "local_path",
            "forge_repo",
            "ci_provider",
            "default_engines",
            "default_models",
            "fallbacks",
            "run_policy",
        ),
        (*PROJECT_FIELDS, "project_token", "token_id"),
    ),
    "project.list": Endpoint("GET", "/projects", (), PROJECT_FIELDS, listing=True),
    "project.get": Endpoint("GET", "/projects/{project_id}", (), PROJECT_FIELDS),
    "project.onboard": Endpoint("POST", "/projects/{project_id}/onboard", (), PROJECT_FIELDS),
    "project.answer": Endpoint("POST", "/projects/{project_id}/clarifications", ("answers",), PROJECT_FIELDS),
    "project.token.create": Endpoint(
        "POST", "/projects/{project_id}/tokens", ("label",), ("token_id", "project_token", "label")
    ),
    "project.token.revoke": Endpoint("POST", "/projects/{project_id}/tokens/{token_id}/revoke"),
    "project.webhook_secret": Endpoint(
        "POST", "/projects/{project_id}/webhook-secret", (), ("project_id", "webhook_secret", "generation")
    ),
    "project.ci_policy": Endpoint(
        "PUT", "/projects/{project_id}/ci-policy", ("auto_qa_on_success", "fix_attempts"), PROJECT_FIELDS
    ),
    "project.fallbacks": Endpoint(
        "PUT",
        "/projects/{project_id}/fallbacks",
        ("planning", "decompose", "exec", "qa", "discovery"),
        (*PROJECT_FIELDS, "fallbacks"),
    ),
    "project.run_policy": Endpoint(
        "PUT", "/projects/{project_id}/run-policy", RUN_POLICY_FIELDS, PROJECT_FIELDS
    ),
    "protocol.create": Endpoint(
        "POST",
        "/projects/{project_id}/protocols",
        ("task_name", "description", "base_branch", "run_policy"),
        PROTOCOL_FIELDS,
    ),
    "protocol.import": Endpoint(
        "POST",
        "/projects/{project_id}/protocols/import",
        ("kind", "name", "files", "constitution", "task_name", "base_branch", "run_policy"),
        PROTOCOL_FIELDS,
    ),
    "codemachine.import": Endpoint(
        "POST",
        "/projects/{project_id}/codemachine/import",
        ("files", "workflow", "tracking", "task_name", "base_branch", "run_policy"),
        PROTOCOL_FIELDS,
    ),
    "protocol.list": Endpoint("GET", "/projects/{project_id}/protocols", (), PROTOCOL_FIELDS, listing=True),
    "protocol.get": Endpoint("GET", "/protocols/{protocol_run_id}", (), PROTOCOL_FIELDS),
    "protocol.action": Endpoint("POST", "/protocols/{protocol_run_id}/actions/{action}", (), ACTION_FIELDS),
    "protocol.reject_plan": Endpoint(
        "POST", "/protocols/{protocol_run_id}/actions/reject_plan", ("reason",), ACTION_FIELDS
    ),
    "step.list": Endpoint("GET", "/protocols/{protocol_run_id}/steps", (), STEP_FIELDS, listing=True),
    "step.get": Endpoint("GET", "/steps/{step_run_id}", (), STEP_FIELDS),
    "step.action": Endpoint("POST", "/steps/{step_run_id}/actions/{action}", (), ACTION_FIELDS),
    "step.qa_reports": Endpoint("GET", "/steps/{step_run_id}/qa", (), QA_FIELDS, listing=True),
    "events.list": Endpoint("GET", "/events", (), EVENT_FIELDS, listing=True),
    "events.stream": Endpoint("GET", "/events/stream"),
    "usage": Endpoint("GET", "/usage", (), ("group_by", "data", "total")),
    "prompts": Endpoint("GET", "/prompts", (), ("name", "phase", "version", "versions"), listing=True),
    "protocol.spec": Endpoint(
        "GET",
        "/protocols/{protocol_run_id}/spec",
        (),
        (
            "protocol_run_id",
            "spec_hash",
            "validation_status",
            "rules_version",
            "problems",
            "audit",
            "source",
            "steps",
            "policies",
            "prompts",
        ),
    ),
    "spec.validate": Endpoint(
        "POST",
        "/specs/validate",
        ("kind", "steps", "name", "files", "constitution", "run_policy"),
        ("valid", "kind", "title", "problems", "steps", "skipped", "policies"),
    ),
    "spec.audit": Endpoint(
        "POST", "/admin/spec-audit", (), ("rules_version", "runs_checked", "recorded", "runs")
    ),
    "evaluation.list": Endpoint("GET", "/evaluations", (), EVALUATION_FIELDS, listing=True),
    "evaluation.get": Endpoint("GET", "/evaluations/{evaluation_id}", (), (*EVALUATION_FIELDS, "scores")),
}

# Actions the generic /actions/{action} endpoints take (the API's RunAction and StepAction enums).
PROTOCOL_ACTIONS = (
    "start",
    "pause",
    "resume",
    "cancel",
    "run_next_step",
    "retry_latest",
    "open_pr",
    "approve_plan",
    "continue",
)
STEP_ACTIONS = ("run", "run_qa", "approve")
