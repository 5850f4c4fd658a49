"""``python -m deksdenflow_runtime``: the same as the ``deksdenflow`` command."""

from deksdenflow_runtime.cli import main

raise SystemExit(main())
