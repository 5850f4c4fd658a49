"""``python -m deksdenflow_cli``: the client without the runtime's run/projector/demo."""

import sys

from deksdenflow_cli.app import main

sys.exit(main())
