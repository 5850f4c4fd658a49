"""The git/CI worker: onboarding, branches, draft PRs/MRs, CI triggers."""
