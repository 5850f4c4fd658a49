"""``python -m deksdenflow_codex_worker``."""

import sys

from deksdenflow_codex_worker.main import main

sys.exit(main())
