"""The codex worker's jobs, one module each: planning, execution (with CI fixes), QA."""
