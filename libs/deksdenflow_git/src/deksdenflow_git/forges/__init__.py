"""Forge clients: GitHub and GitLab REST, with gh/glab as fallback."""
