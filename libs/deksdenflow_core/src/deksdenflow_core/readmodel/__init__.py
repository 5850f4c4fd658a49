"""The read model: the contract between the projector (which owns and writes it) and the API (which only
reads it). The projector's Alembic migrations make the tables; :mod:`.tables` declares each of their
columns once (type, how it is read from the folded state, whether the API shows it), and a test holds the
two together. This module names the schema and what the projector signals.

All tables live in one PostgreSQL schema so that a rebuild can build a fresh copy in another schema and
swap the two by renaming, while the API keeps serving.
"""

from __future__ import annotations

SCHEMA = "readmodel"
REBUILD_SCHEMA = "readmodel_rebuild"
RETIRED_SCHEMA = "readmodel_retired"

# NOTIFY channel the projector signals after each committed batch; the payload is the new checkpoint.
CHECKPOINT_CHANNEL = "deksdenflow_checkpoint"
# The live projector and a rebuild hold this advisory lock while they write (see the projector).
WRITER_LOCK_KEY = 0x6465_6B73  # "deks"
PROJECTOR_NAME = "projector"
