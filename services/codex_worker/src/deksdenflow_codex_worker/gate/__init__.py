"""The QA gate: the codex worker's QA on a local checkout, with no server (``deksdenflow qa``).

It judges a protocol step (its step file and protocol folder) or a change and the task it is for, with the
worker's own prompts (a project's ``.deksdenflow/prompts/`` override included) and their versions, its
``qa-verdict`` schema, engines, model resolution and re-ask (``qa_verdict``, ``structured``), and reports
the verdict as an exit code and as JSON, Markdown, SARIF 2.1.0, JUnit XML and GitLab Code Quality, with
annotations and a step summary under GitHub Actions. It lives in the worker's package so that both share
one implementation; the runtime's ``deksdenflow qa`` runs it as ``python -m deksdenflow_codex_worker.gate``.
"""
