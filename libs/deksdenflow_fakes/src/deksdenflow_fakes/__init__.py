"""Local fakes that speak real wire protocols (Responses API, Anthropic Messages, GitHub, GitLab)."""
