"""The codex worker: planning, execution and QA of protocol steps with agent engines."""
