"""The shipped cassettes' author: what the model does, per variant and task, written compactly.

No model can be reached from the machines this suite was built on, so the cassettes in
``evals/cassettes/`` were not recorded from one: they were *authored* — ``python -m evals author`` runs
the whole system once with the real Codex CLI talking to ``AuthoredModel`` (a scripted Responses API
model following ``BEHAVIOURS``) through a ``CassetteRecorder``, and writes what was asked and answered.
Everything here is deterministic (fixed call and message ids, token counts computed from the normalised
request), so authoring again gives the same files.

A behaviour says what the model does on a task:

* ``change``: ``"solution"`` (the task's reference change), ``"wrong"`` (``WRONG[task]``: a plausible
  change the hidden tests catch), or ``"none"``;
* ``reads``: whether it reads the file it changes first (a shell tool round trip) before patching;
* ``refuse_first``: its first execution refuses (no change: the guardrails ask again), the next complies;
* ``qa``: the verdict its QA gives (``"PASS"``/``"FAIL"``); ``qa_invalid_first``: its first QA answer does
  not match the verdict schema (the worker asks again with the validation error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deksdenflow_fakes import anthropic_api
from deksdenflow_fakes.cassettes import Normaliser
from deksdenflow_fakes.messages_cassettes import MessagesNormaliser
from deksdenflow_fakes.responses_api import (
    Turn,
    Usage,
    add_file,
    apply_patch,
    output_schema,
    tool_outputs,
    update_file,
    user_text,
)

from evals.tasks import Task


@dataclass(frozen=True)
class Behaviour:
    change: str = "solution"
    reads: bool = True
    refuse_first: bool = False
    qa: str = "PASS"
    qa_invalid_first: bool = False


# A plausible wrong change per task: it looks right and the visible tests pass, the hidden tests do not.
WRONG: dict[str, dict[str, str]] = {
    # greet() written but not exported from the package (test_greet_is_exported fails)
    "add-greeting": {"sample/greeting.py": 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'},
    # the partial page kept by appending the remainder, which adds an empty page after full ones
    "fix-off-by-one": {
        "pager/pages.py": (
            "def pages(items: list[int], size: int) -> list[list[int]]:\n"
            '    """The items cut into pages of ``size``."""\n'
            "    full = [items[i : i + size] for i in range(0, len(items) - size + 1, size)]\n"
            "    return full + [items[len(items) - len(items) % size :]]\n"
        )
    },
    # a hand-made table of a few accents instead of Unicode decomposition ('Ångström' is missed)
    "slugify-unicode": {
        "textkit/slug.py": (
            'import re\n\n_ACCENTS = str.maketrans("àâäéèêëîïôöûüç", "aaaeeeeiioouuc")\n\n\n'
            "def slugify(title: str) -> str:\n"
            '    """Lowercase words of ASCII letters and digits, joined by dashes."""\n'
            '    return "-".join(re.findall(r"[a-z0-9]+", title.lower().translate(_ACCENTS)))\n'
        )
    },
}

CARELESS = Behaviour(change="wrong", reads=False, qa="PASS")
BEHAVIOURS: dict[str, dict[str, Behaviour]] = {
    "baseline": {
        "add-greeting": Behaviour(),
        "fix-off-by-one": Behaviour(),
        "slugify-unicode": Behaviour(change="wrong", qa="PASS"),  # a miss its QA does not see
    },
    "luna": {
        "add-greeting": Behaviour(qa_invalid_first=True),
        "fix-off-by-one": Behaviour(reads=False),
        "slugify-unicode": Behaviour(change="wrong", refuse_first=True, qa="FAIL"),
    },
    "careless-exec": dict.fromkeys(("add-greeting", "fix-off-by-one", "slugify-unicode"), CARELESS),
    # claude-code:claude-sonnet-4-5 (AuthoredMessagesModel): solves all three, the accents included
    "claude": dict.fromkeys(("add-greeting", "fix-off-by-one", "slugify-unicode"), Behaviour()),
}

REFUSAL = "I can't help with changing this repository's code."
_ANSWER_NORMALISER = Normaliser()
_MESSAGES_NORMALISER = MessagesNormaliser()
_WORKDIR = re.compile(r"Primary working directory: ([^\s\\\\]+)")  # in the JSON of the message


def plan(task: Task) -> dict[str, Any]:
    """One work step: the task as written, with what done means."""
    step = (
        f"# {task.title}\n\n{task.task}\n\nDone when the change is made and the existing tests still pass.\n"
    )
    return {
        "plan_md": f"# Plan: {task.title}\n\n1. `00-{task.id}.md`: {task.task}\n",
        "context_md": f"# Context\n\nA small Python package with pytest tests.\n\nTask: {task.task}\n",
        "log_md": "# Log\n\n- planned in one step\n",
        "step_files": [
            {
                "filename": f"00-{task.id}.md",
                "content": step,
                "qa_policy": "full",
                "engine_id": None,
                "model": None,
            }
        ],
    }


def verdict(passed: bool, task: Task) -> dict[str, Any]:
    if passed:
        return {
            "summary": f"The change does what the step asks: {task.title.lower()}.",
            "findings": {"blocking": [], "warnings": [], "notes": ["the existing tests still pass"]},
            "next_actions": [],
            "verdict": "PASS",
        }
    return {
        "summary": "The change does not do all the step asks.",
        "findings": {
            "blocking": [f"the change does not fully {task.title.lower()}: see the diff"],
            "warnings": [],
            "notes": [],
        },
        "next_actions": ["fix the cases the change misses"],
        "verdict": "FAIL",
    }


class AuthoredModel:
    """A Responses API model following one behaviour on one task (a ``FakeResponsesApi`` handler).

    It tells the phases apart by the request: the planning and QA calls carry their output schemas, an
    execution carries none. It keeps count of the executions it began, for ``refuse_first``."""

    def __init__(self, task: Task, behaviour: Behaviour) -> None:
        self.task = task
        self.behaviour = behaviour
        self.executions = 0
        self.calls = 0

    def __call__(self, body: Mapping[str, Any]) -> Turn:
        self.calls += 1
        props = (output_schema(body) or {}).get("properties", {})
        if "plan_md" in props:
            return self._answer(body, _message(json.dumps(plan(self.task))))
        if "verdict" in props:
            rejected = "Your previous answer was rejected" in user_text(body)
            if self.behaviour.qa_invalid_first and not rejected:
                return self._answer(body, _message(json.dumps({"verdict": "LGTM", "summary": "Looks good."})))
            return self._answer(body, _message(json.dumps(verdict(self.behaviour.qa == "PASS", self.task))))
        return self._execute(body)

    def _execute(self, body: Mapping[str, Any]) -> Turn:
        done = len(tool_outputs(body))
        b = self.behaviour
        if done == 0:
            self.executions += 1
            if b.refuse_first and self.executions == 1:
                return self._answer(body, _message(REFUSAL))
        files = self._files()
        if b.reads and done == 0 and files:
            return self._answer(body, _shell(f"cat {next(iter(files))}", self._call_id(body)))
        if done == (1 if b.reads else 0) and files:
            return self._answer(body, _patch(self._patch_text(files), self._call_id(body)))
        return self._answer(body, _message(self._summary()))

    def _files(self) -> dict[str, str]:
        if self.behaviour.change == "solution":
            root = self.task.solution
            return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}
        if self.behaviour.change == "wrong":
            return dict(WRONG[self.task.id])
        return {}

    def _patch_text(self, files: Mapping[str, str]) -> str:
        sections = []
        for path, content in files.items():
            old = self.task.repo / path
            if old.is_file():
                sections.append(update_file(path, old.read_text(), content))
            else:
                sections.append(add_file(path, content))
        return apply_patch(*sections)

    def _summary(self) -> str:
        if self.behaviour.change == "none":
            return REFUSAL
        how = "Read the code, then changed it." if self.behaviour.reads else "Changed it."
        return f"{self.task.title}\n\n{how} {self.task.task}"

    def _call_id(self, body: Mapping[str, Any]) -> str:
        return f"call_eval_{self.calls:03d}_{len(tool_outputs(body))}"

    def _answer(self, body: Mapping[str, Any], item: dict[str, Any]) -> Turn:
        """The item, with token counts that follow from the (normalised) request and the answer."""
        request = _ANSWER_NORMALISER.request(body)
        sent = len(json.dumps(request["conversation"])) // 4
        answered = len(json.dumps(item)) // 4
        first = not tool_outputs(body)
        usage = Usage(
            input_tokens=2400 + sent,
            cached_input_tokens=0 if first else 2000,
            output_tokens=40 + answered,
            reasoning_output_tokens=16,
        )
        return Turn(items=(item,), usage=usage)


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "id": "msg_eval",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _shell(cmd: str, call_id: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "name": "exec_command",
        "arguments": json.dumps({"cmd": cmd}),
        "call_id": call_id,
    }


def _patch(text: str, call_id: str) -> dict[str, Any]:
    return {"type": "custom_tool_call", "name": "apply_patch", "input": text, "call_id": call_id}


class AuthoredMessagesModel:
    """The same behaviours as Claude Code's model (a ``FakeAnthropicApi`` handler, Messages API).

    Planning and QA answer through the CLI's structured-output tool (``--json-schema``); an execution
    reads every file it changes with the ``Read`` tool (Claude Code's ``Write`` refuses to overwrite a
    file it has not read, so ``reads`` is always true here), writes each with ``Write`` (absolute paths
    in the announced worktree: the cassette keeps them as ``<WORKDIR>/...``), then reports. Refusals
    (``refuse_first``) are followed; ``qa_invalid_first`` is not (the CLI validates the structured
    output itself)."""

    def __init__(self, task: Task, behaviour: Behaviour) -> None:
        self.model = AuthoredModel(task, behaviour)  # the same files, summary and refusal count
        self.calls = 0

    def __call__(self, body: Mapping[str, Any]) -> anthropic_api.Turn:
        self.calls += 1
        task = self.model.task
        props = (anthropic_api.output_schema(body) or {}).get("properties", {})
        done = len(anthropic_api.tool_results(body))
        if props and done:  # the structured answer was taken: the turn ends
            return self._answer(body, {"type": "text", "text": "Done."})
        if "plan_md" in props:
            return self._answer(body, self._tool(anthropic_api.STRUCTURED_OUTPUT_TOOL, plan(task), body))
        if "verdict" in props:
            payload = verdict(self.model.behaviour.qa == "PASS", task)
            return self._answer(body, self._tool(anthropic_api.STRUCTURED_OUTPUT_TOOL, payload, body))
        return self._execute(body, done)

    def _execute(self, body: Mapping[str, Any], done: int) -> anthropic_api.Turn:
        if done == 0:
            self.model.executions += 1
            if self.model.behaviour.refuse_first and self.model.executions == 1:
                return self._answer(body, {"type": "text", "text": REFUSAL})
        workdir = _workdir(body) or "."
        files = self.model._files()
        actions: list[tuple[str, dict[str, Any]]] = [
            ("Read", {"file_path": f"{workdir}/{path}"})
            for path in files
            if (self.model.task.repo / path).is_file()
        ]
        actions += [
            ("Write", {"file_path": f"{workdir}/{path}", "content": text}) for path, text in files.items()
        ]
        if done < len(actions):
            name, tool_input = actions[done]
            return self._answer(body, self._tool(name, tool_input, body))
        return self._answer(body, {"type": "text", "text": self.model._summary()})

    def _tool(self, name: str, tool_input: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        tool_id = f"toolu_eval_{self.calls:03d}_{len(anthropic_api.tool_results(body))}"
        return {"type": "tool_use", "id": tool_id, "name": name, "input": dict(tool_input)}

    def _answer(self, body: Mapping[str, Any], block: dict[str, Any]) -> anthropic_api.Turn:
        """The block, with token counts that follow from the (normalised) conversation and the answer."""
        request = _MESSAGES_NORMALISER.request(body)
        sent = len(json.dumps(request["conversation"])) // 4
        first = not anthropic_api.tool_results(body)
        usage = anthropic_api.Usage(
            input_tokens=2400 + sent,
            cache_read_input_tokens=0 if first else 2000,
            # counted on the block as the cassette keeps it (<WORKDIR>): the same wherever it is authored
            output_tokens=40 + len(_as_kept(json.dumps(block), _workdir(body))) // 4,
        )
        return anthropic_api.Turn(blocks=(block,), usage=usage, message_id="msg_eval")


def _workdir(body: Mapping[str, Any]) -> str:
    """The worktree Claude Code announces in its first message ("" when it names none)."""
    found = _WORKDIR.search(json.dumps(body["messages"][0]))
    return found.group(1) if found else ""


def _as_kept(text: str, workdir: str) -> str:
    return text.replace(workdir, "<WORKDIR>") if workdir else text
