"""``python -m deksdenflow_codex_worker.gate``: the QA gate (``deksdenflow qa``)."""

import sys

from deksdenflow_codex_worker.gate.cli import main

sys.exit(main())
