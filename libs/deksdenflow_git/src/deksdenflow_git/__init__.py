"""Git plumbing shared by the workers: mirror cache, worktrees, safe pushes, forge (GitHub/GitLab) clients."""
