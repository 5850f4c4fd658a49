"""Scores of runs, per-variant summaries, regressions against the baseline, and the printed table — pure
functions of the scores, so the table is the same bytes whenever the scores are.

A run's scores, from what the log and the branch hold (``score_events`` + ``scoring.score``):

* resolved: every FAIL_TO_PASS hidden test passes and every PASS_TO_PASS test still passes;
* QA verdict: the last verdict of each step (PASS only if every step's last verdict is PASS; ``none``
  when QA never gave one); QA *agrees* when it says PASS of a resolved change on a task labelled PASS,
  or FAIL of a change that does not resolve it (QA that passes a wrong change disagrees);
* tokens (input, output), cost (each call's recorded cost: the price table, or the published prices),
  turns (agent calls: one ``codex exec`` turn each, re-asks included), guardrail violations
  (``guardrail_violated`` events), wall time (not compared: it varies).

A variant regresses when its resolved rate or its QA agreement rate is below the baseline's by more than
``Thresholds`` (rates in [0, 1]; the defaults, 0, call any drop a regression).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

QA_NONE = "none"


@dataclass(frozen=True)
class Thresholds:
    resolved_drop: float = 0.0
    qa_drop: float = 0.0


@dataclass(frozen=True)
class EventScores:
    """What a run's events say: its QA verdict and what it spent."""

    qa_verdict: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    turns: int
    guardrail_violations: int
    run_status: str


def score_events(events: Sequence[Mapping[str, Any]]) -> EventScores:
    """Scores from a run's events as ``GET /protocols/{id}/events`` gives them (oldest first)."""
    usage = [e["payload"] for e in events if e["type"] == "protocol_run.usage_recorded"]
    last: dict[str, str] = {}
    for e in events:
        if e["type"] == "protocol_run.qa_verdict_recorded":
            last[e["payload"].get("step_run_id", "")] = str(e["payload"].get("verdict", ""))
    if not last:
        verdict = QA_NONE
    else:
        verdict = "PASS" if all(v == "QA_VERDICT_PASS" for v in last.values()) else "FAIL"
    status = ""
    for e in events:
        kind = e["type"].removeprefix("protocol_run.")
        if kind in ("completed", "blocked", "planning_failed", "cancelled"):
            status = kind
    return EventScores(
        qa_verdict=verdict,
        input_tokens=sum(int(u.get("usage", {}).get("input_tokens", 0)) for u in usage),
        cached_input_tokens=sum(int(u.get("usage", {}).get("cached_input_tokens", 0)) for u in usage),
        output_tokens=sum(int(u.get("usage", {}).get("output_tokens", 0)) for u in usage),
        cost_micro_usd=sum(int(u.get("cost_micro_usd", 0)) for u in usage),
        turns=len(usage),
        guardrail_violations=sum(1 for e in events if e["type"] == "protocol_run.guardrail_violated"),
        run_status=status,
    )


def qa_agrees(verdict: str, resolved: bool, label: str) -> str:
    """Whether QA said what it should have: "yes", "no", or "" when it gave no verdict."""
    if verdict == QA_NONE:
        return ""
    expected = label if resolved else "FAIL"
    return "yes" if verdict == expected else "no"


@dataclass(frozen=True)
class Summary:
    variant_id: str
    label: str
    tasks: int
    resolved: int
    qa_verdicts: int
    qa_agreements: int
    input_tokens: int
    output_tokens: int
    cost_micro_usd: int
    turns: int
    guardrail_violations: int
    wall_ms: int

    @property
    def resolved_rate(self) -> float:
        return self.resolved / self.tasks if self.tasks else 0.0

    @property
    def qa_rate(self) -> float:
        return self.qa_agreements / self.qa_verdicts if self.qa_verdicts else 0.0


def summarise(variant_id: str, label: str, scores: Iterable[Mapping[str, Any]]) -> Summary:
    rows = list(scores)
    return Summary(
        variant_id=variant_id,
        label=label,
        tasks=len(rows),
        resolved=sum(1 for r in rows if r["resolved"]),
        qa_verdicts=sum(1 for r in rows if r["qa_agrees"]),
        qa_agreements=sum(1 for r in rows if r["qa_agrees"] == "yes"),
        input_tokens=sum(int(r["input_tokens"]) for r in rows),
        output_tokens=sum(int(r["output_tokens"]) for r in rows),
        cost_micro_usd=sum(int(r["cost_micro_usd"]) for r in rows),
        turns=sum(int(r["turns"]) for r in rows),
        guardrail_violations=sum(int(r["guardrail_violations"]) for r in rows),
        wall_ms=sum(int(r.get("wall_ms", 0)) for r in rows),
    )


def regressions(summaries: Sequence[Summary], baseline: str, thresholds: Thresholds) -> dict[str, list[str]]:
    """Per variant, why it regressed against the baseline (empty list: it did not)."""
    base = next(s for s in summaries if s.variant_id == baseline)
    found: dict[str, list[str]] = {}
    for s in summaries:
        why = []
        if s.variant_id != baseline:
            drop = base.resolved_rate - s.resolved_rate
            if drop > thresholds.resolved_drop + 1e-9:
                why.append(f"resolved {_pct(s.resolved_rate)} < {_pct(base.resolved_rate)}")
            qa_drop = base.qa_rate - s.qa_rate
            if qa_drop > thresholds.qa_drop + 1e-9:
                why.append(f"QA agreement {_pct(s.qa_rate)} < {_pct(base.qa_rate)}")
        found[s.variant_id] = why
    return found


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _signed(value: float, fmt: str) -> str:
    text = format(value, fmt)
    return text if text.startswith("-") else "+" + text


def table(
    scores: Sequence[Mapping[str, Any]],
    summaries: Sequence[Summary],
    baseline: str,
    found: Mapping[str, Sequence[str]],
    expected: Mapping[str, bool],
) -> str:
    """The evaluation as text: each variant's runs, its totals and its difference with the baseline.
    Wall time is left out (it varies from run to run): see ``wall_times``."""
    base = next(s for s in summaries if s.variant_id == baseline)
    out: list[str] = []
    for s in summaries:
        out.append(f"== {s.variant_id}: {s.label}" + ("  (baseline)" if s.variant_id == baseline else ""))
        out.append(
            f"  {'task':<18} {'resolved':<9} {'F2P':>5} {'P2P':>5} {'QA':<5} {'agrees':<7} "
            f"{'tokens in/out':>15} {'cost $':>9} {'turns':>5} {'guard':>5}"
        )
        for r in sorted((r for r in scores if r["variant_id"] == s.variant_id), key=lambda r: r["task_id"]):
            agrees = r["qa_agrees"] or "-"
            out.append(
                f"  {r['task_id']:<18} {'yes' if r['resolved'] else 'no':<9} "
                f"{r['f2p_passed']}/{r['f2p_total']:<3} {r['p2p_passed']}/{r['p2p_total']:<3} "
                f"{r['qa_verdict']:<5} {agrees:<7} "
                f"{str(r['input_tokens']) + '/' + str(r['output_tokens']):>15} "
                f"{r['cost_micro_usd'] / 1e6:>9.4f} {r['turns']:>5} {r['guardrail_violations']:>5}"
            )
        out.append(
            f"  {'total':<18} {s.resolved}/{s.tasks} ({_pct(s.resolved_rate)})  QA agrees {s.qa_agreements}/"
            f"{s.qa_verdicts} ({_pct(s.qa_rate)})  tokens {s.input_tokens}/{s.output_tokens}  "
            f"cost ${s.cost_micro_usd / 1e6:.4f}  turns {s.turns}  "
            f"guardrail violations {s.guardrail_violations}"
        )
        if s.variant_id != baseline:
            tokens = s.input_tokens + s.output_tokens - base.input_tokens - base.output_tokens
            out.append(
                f"  vs {baseline:<15} "
                f"resolved {_signed((s.resolved_rate - base.resolved_rate) * 100, '.0f')} pts"
                f"  QA agreement {_signed((s.qa_rate - base.qa_rate) * 100, '.0f')} pts"
                f"  tokens {_signed(tokens, 'd')}"
                f"  cost {_signed((s.cost_micro_usd - base.cost_micro_usd) / 1e6, '.4f')} $"
                f"  turns {_signed(s.turns - base.turns, 'd')}"
                f"  guardrail violations {_signed(s.guardrail_violations - base.guardrail_violations, 'd')}"
            )
            why = found.get(s.variant_id, [])
            if why:
                tag = "REGRESSION (expected: a canary)" if expected.get(s.variant_id) else "REGRESSION"
                out.append(f"  {tag}: {'; '.join(why)}")
            elif expected.get(s.variant_id):
                out.append("  NOT CAUGHT: this canary was expected to regress")
            else:
                out.append("  no regression")
        out.append("")
    return "\n".join(out)


def wall_times(summaries: Sequence[Summary]) -> str:
    return "Wall time (varies from run to run; not compared): " + ", ".join(
        f"{s.variant_id} {s.wall_ms / 1000:.1f} s" for s in summaries
    )


def verdict(found: Mapping[str, Sequence[str]], expected: Mapping[str, bool]) -> list[str]:
    """What makes the evaluation fail: an unexpected regression, or a canary not caught."""
    problems = []
    for variant_id, why in found.items():
        if why and not expected.get(variant_id):
            problems.append(f"{variant_id} regressed: {'; '.join(why)}")
        if not why and expected.get(variant_id):
            problems.append(f"{variant_id} was expected to regress and did not")
    return problems
