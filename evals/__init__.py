"""The evaluation suite: fixture tasks with hidden tests, scored the way the SWE-bench harness scores a
change — the tests that must go from failing to passing (FAIL_TO_PASS) and those that must keep passing
(PASS_TO_PASS) — plus the labelled QA verdict a run's QA should agree with. ``python -m evals`` (``make
eval``) runs every task with every variant of ``variants.toml`` through the whole system on the shipped
cassettes and compares the variants (README.md)."""
