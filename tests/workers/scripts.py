"""Scripts for the scripted engine: a small, complete protocol."""

from __future__ import annotations

from typing import Any

PLAN: dict[str, Any] = {
    "plan_md": "# Plan\n\nAdd a greeting module and document it.\n",
    "context_md": "# Context\n\nA tiny Python repository.\n",
    "log_md": "# Log\n\n- planned\n",
    "step_files": [
        {
            "filename": "00-setup.md",
            "content": "# Setup\n\nRead the repo.\n",
            "qa_policy": "skip",
            "engine_id": None,
            "model": None,
        },
        {
            "filename": "01-greeting.md",
            "content": "# Greeting\n\nAdd greet().\n",
            "qa_policy": "full",
            "engine_id": None,
            "model": None,
        },
        {
            "filename": "02-docs.md",
            "content": "# Docs\n\nDocument greet().\n",
            "qa_policy": "light",
            "engine_id": None,
            "model": None,
        },
    ],
}

PASS: dict[str, Any] = {
    "summary": "The step does what its file asks.",
    "findings": {"blocking": [], "warnings": [], "notes": ["looks fine"]},
    "next_actions": [],
    "verdict": "PASS",
}


def protocol_script(*, exec_delay: float = 0.0) -> dict[str, Any]:
    """Plan three steps, refine the work steps, execute each with a real file edit, pass QA."""
    usage = {"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 100}
    return {
        "planning": {"message": PLAN, "usage": usage},
        "decompose": {"*": {"message": {"content": "# Refined\n\n1. Do it.\n2. Test it.\n"}, "usage": usage}},
        "exec": {
            "00-setup.md": {"message": "Read the repository\n\nNothing to change.", "usage": usage},
            "01-greeting.md": {
                "message": "Add greet()\n\nA greeting function with a test.",
                "edits": [{"path": "greeting.py", "content": "def greet(name):\n    return f'hi {name}'\n"}],
                "usage": usage,
                "delay_seconds": exec_delay,
            },
            "02-docs.md": {
                "message": "Document greet()",
                "edits": [{"path": "README.md", "content": "hello\n\n`greet(name)` greets.\n"}],
                "usage": usage,
            },
        },
        "qa": {"*": {"message": PASS, "usage": usage}},
    }


def five_step_script(*, exec_delay: float = 0.0) -> dict[str, Any]:
    """Plan five steps (setup and four work steps, each editing a file), pass every QA."""
    usage = {"input_tokens": 500, "cached_input_tokens": 0, "output_tokens": 50}
    names = ["00-setup.md", *(f"{i:02d}-part-{i}.md" for i in range(1, 5))]
    plan = {
        **PLAN,
        "step_files": [
            {
                "filename": name,
                "content": f"# {name}\n\nDo part {i}.\n",
                "qa_policy": "skip" if i == 0 else "light",
                "engine_id": None,
                "model": None,
            }
            for i, name in enumerate(names)
        ],
    }
    execs: dict[str, Any] = {
        name: {
            "message": f"Part {i}",
            "edits": [{"path": f"part_{i}.py", "content": f"PART = {i}\n"}],
            "usage": usage,
            "delay_seconds": exec_delay,
        }
        for i, name in enumerate(names)
    }
    return {
        "planning": {"message": plan, "usage": usage},
        "decompose": {"*": {"message": {"content": "# Refined\n\n1. Do it.\n"}, "usage": usage}},
        "exec": execs,
        "qa": {"*": {"message": PASS, "usage": usage}},
    }
