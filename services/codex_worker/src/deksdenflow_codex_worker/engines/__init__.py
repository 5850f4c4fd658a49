"""Agent engines: codex (real Codex CLI), claude-code (real Claude Code CLI), scripted (deterministic)."""
