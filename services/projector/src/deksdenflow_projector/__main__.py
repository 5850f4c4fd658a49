"""``python -m deksdenflow_projector [run|migrate|rebuild]``."""

from deksdenflow_projector.cli import main

main()
