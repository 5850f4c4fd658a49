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
