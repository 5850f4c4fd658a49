"""The PR/MR body as the renderer writes it: one checklist line per step with its status, its last QA
verdict and a link to the report; the run's status and usage; the same bytes for the same state; and text
from people or agents shown as written, never as Markdown of its own."""

from __future__ import annotations

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    CiProvider,
    Phase,
    QaPolicy,
    QaVerdict,
    StepPlan,
    StepType,
    TokenUsage,
)
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_git_ci_worker.pr_body import MARKER, escape, file_url, pr_body, usd

from tests.domain.builders import apply, new_run

GITHUB_PR = "https://github.example/acme/demo/pull/7"
API = "https://deksdenflow.example/api/"


def _planned(task: str, *steps: tuple[str, QaPolicy]) -> ProtocolRunState:
    plans = tuple(
        StepPlan(index=i, name=name, step_type=StepType.SETUP if i == 0 else StepType.WORK, qa_policy=qa)
        for i, (name, qa) in enumerate(steps)
    )
    run = apply(new_run(task), cmd.StartProtocolRun())
    return apply(run, cmd.RecordPlanningCompleted(attempt=1, steps=plans))


def _executed(run: ProtocolRunState) -> ProtocolRunState:
    run = apply(run, cmd.RunNextStep())
    sid = next(s for s in run.steps if s.executing).step_run_id
    return apply(run, cmd.RecordStepExecutionCompleted(step_run_id=sid, commit_sha="c", auto_qa=True))


def _verdict(run: ProtocolRunState, index: int, verdict: QaVerdict, **extra: str) -> ProtocolRunState:
    step = run.steps[index]
    return apply(
        run,
        cmd.RecordQaVerdict(
            step_run_id=step.step_run_id,
            qa_attempt=step.qa_attempt,
            verdict=verdict,
            blocking=("tests fail",) if verdict is QaVerdict.FAIL else (),
            **extra,
        ),
    )


def _mid_run(pr_url: str = GITHUB_PR) -> ProtocolRunState:
    """Setup done without QA, part 1 passed QA (its report on the branch), part 2 failed QA (its report
    named nowhere), part 3 pending; the PR open, some usage spent."""
    run = _planned(
        "Five parts",
        ("00-setup.md", QaPolicy.SKIP),
        ("01-part.md", QaPolicy.LIGHT),
        ("02-part.md", QaPolicy.FULL),
        ("03-part.md", QaPolicy.FULL),
    )
    run = apply(run, cmd.OpenPullRequest())
    run = apply(run, cmd.RecordPullRequestOpened(attempt=1, provider=CiProvider.GITHUB, number=7, url=pr_url))
    run = _executed(run)
    run = _verdict(_executed(run), 1, QaVerdict.PASS, report_path=f"{run.protocol_root}/qa/01-part-1.md")
    run = _verdict(_executed(run), 2, QaVerdict.FAIL)
    usage = TokenUsage(input_tokens=1_234_567, output_tokens=89)
    return apply(run, cmd.RecordUsage(call_id="c1", phase=Phase.EXEC, usage=usage, cost_micro_usd=123_456))


def _checklist(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("- [")]


def test_each_step_is_one_checklist_line_with_its_status_and_last_qa_verdict() -> None:
    run = _mid_run()
    steps = run.steps
    branch = run.protocol_name
    assert _checklist(pr_body(run, api_url=API)) == [
        "- [x] **00-setup.md** — completed · QA skipped",
        "- [x] **01-part.md** — completed · QA PASS · [QA report]"
        f"(https://github.example/acme/demo/blob/{branch}/{run.protocol_root}/qa/01-part-1.md)",
        "- [ ] **02-part.md** — failed: QA verdict FAIL: tests fail · QA FAIL · [QA report]"
        f"(https://deksdenflow.example/api/steps/{steps[2].step_run_id}/qa)",
        "- [ ] **03-part.md** — pending",
    ]


def test_the_run_shows_its_status_usage_cost_and_the_generated_marker() -> None:
    run = _mid_run()
    body = pr_body(run, api_url=None)
    lines = body.splitlines()
    assert lines[0] == f"## Protocol {run.protocol_name}: Five parts"
    assert "- Status: blocked: step 02-part.md failed: QA verdict FAIL: tests fail" in lines
    assert "- Usage so far: 1,234,567 tokens in · 89 tokens out · $0.1235" in lines
    assert lines[-1] == f"<!-- {MARKER} run={run.protocol_run_id} -->"
    assert body.count("<!--") == 1
    assert (
        f"[{run.protocol_root}/](https://github.example/acme/demo/tree/{run.protocol_name}/"
        f"{run.protocol_root})" in body
    )


def test_without_an_api_url_only_reports_on_the_branch_are_linked() -> None:
    run = _mid_run()
    lines = _checklist(pr_body(run, api_url=None))
    assert "[QA report](https://github.example/acme/demo/blob/" in lines[1]
    assert lines[2].endswith("· QA FAIL")


def test_before_the_pr_exists_nothing_links_to_the_branch() -> None:
    run = _executed(_planned("Two parts", ("00-setup.md", QaPolicy.SKIP), ("01-part.md", QaPolicy.FULL)))
    run = _verdict(_executed(run), 1, QaVerdict.PASS, report_path="qa/01.md")
    body = pr_body(run, api_url=None)
    assert _checklist(body)[1] == "- [x] **01-part.md** — completed · QA PASS"
    assert "](" not in body


def test_a_step_whose_qa_runs_shows_it() -> None:
    run = _executed(_planned("One part", ("00-setup.md", QaPolicy.FULL)))
    assert _checklist(pr_body(run, api_url=None)) == ["- [ ] **00-setup.md** — needs qa · QA running"]


def test_gitlab_links_go_through_the_projects_dash_pages() -> None:
    mr = "https://gitlab.example/group/sub/demo/-/merge_requests/3"
    run = _mid_run(pr_url=mr)
    body = pr_body(run, api_url=None)
    branch, root = run.protocol_name, run.protocol_root
    assert f"(https://gitlab.example/group/sub/demo/-/blob/{branch}/{root}/qa/01-part-1.md)" in body
    assert f"(https://gitlab.example/group/sub/demo/-/tree/{branch}/{root})" in body


def test_file_urls_are_quoted_and_unknown_pages_give_none() -> None:
    assert (
        file_url(GITHUB_PR, "feat/x y", "./docs/a (1).md")
        == "https://github.example/acme/demo/blob/feat/x%20y/docs/a%20%281%29.md"
    )
    assert file_url("https://forge.example/acme/demo/changes/7", "b", "a.md") is None
    assert file_url("", "b", "a.md") is None
    assert file_url(GITHUB_PR, "b", "/") is None


def test_the_same_state_gives_the_same_bytes() -> None:
    assert pr_body(_mid_run(), api_url=API) == pr_body(_mid_run(), api_url=API)
    run = _mid_run()
    assert pr_body(run, api_url=API) == pr_body(run, api_url=API)


def test_task_step_names_and_reasons_are_shown_as_written_not_as_markdown() -> None:
    run = _planned(
        "Fix *it*\n- [ ] injected\n<b>@bob</b>",
        ("00-setup.md", QaPolicy.SKIP),
        ("01-a_b_c.md", QaPolicy.FULL),
    )
    run = _executed(run)
    run = apply(run, cmd.RunNextStep())
    sid = run.steps[1].step_run_id
    run = apply(run, cmd.RecordStepExecutionFailed(step_run_id=sid, reason="see [this](http://x) | <!-- y"))
    body = pr_body(run, api_url=None)
    lines = _checklist(body)
    assert len(lines) == 2, "no text opens a checklist line of its own"
    assert lines[1] == "- [ ] **01-a\\_b\\_c.md** — failed: see \\[this\\](http://x) \\| \\<\\!-- y"
    assert body.splitlines()[0].endswith("Fix \\*it\\* - \\[ \\] injected \\<b\\>\\@bob\\</b\\>")
    assert body.count("<!--") == 1


def test_a_step_name_is_escaped_even_where_the_plan_would_refuse_it() -> None:
    run = _mid_run()
    evil = "01 *bold* [x](http://evil) <!-- @bob #1 | `code` ~~s~~ $x$ &amp; \\.md"
    renamed = run.model_copy(update={"steps": (run.steps[0].model_copy(update={"name": evil}),)})
    assert _checklist(pr_body(renamed, api_url=None)) == [
        "- [x] **01 \\*bold\\* \\[x\\](http://evil) \\<\\!-- \\@bob \\#1 \\| \\`code\\` "
        "\\~\\~s\\~\\~ \\$x\\$ \\&amp; \\\\.md** — completed · QA skipped"
    ]


def test_escape_bounds_and_folds_lines_and_usd_has_four_decimals() -> None:
    assert escape("a\n\n b\tc") == "a b c"
    assert escape("x" * 10, limit=5) == "xxxx…"
    assert (usd(0), usd(1_234_567_890), usd(51)) == ("$0.0000", "$1234.5679", "$0.0001")
