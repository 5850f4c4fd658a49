"""``python -m deksdenflow_api``: run the API process."""

from deksdenflow_api.main import main

raise SystemExit(main())
