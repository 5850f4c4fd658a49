"""``python -m deksdenflow_git_ci_worker``."""

import sys

from deksdenflow_git_ci_worker.main import main

sys.exit(main())
