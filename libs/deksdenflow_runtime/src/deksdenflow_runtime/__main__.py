"""``python -m deksdenflow_runtime``: the same as the ``deksdenflow`` command."""

from deksdenflow_runtime.entry import main

raise SystemExit(main())
