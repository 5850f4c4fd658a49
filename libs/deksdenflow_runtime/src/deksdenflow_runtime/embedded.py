"""Embedded servers for local runs and tests: NATS with JetStream, and PostgreSQL.

Both run as child processes owned by the caller (no daemonising, no atexit magic): ``await start()``
returns once the server is usable, ``await stop()`` stops it and leaves nothing behind. Data lives in a
directory of the caller's choice and is reused by the next start.
"""

from __future__ import annotations

from deksdenflow_runtime.embedded_nats import EmbeddedNats, find_nats_server
from deksdenflow_runtime.embedded_pg import EmbeddedPostgres, postgres_bin_dir
from deksdenflow_runtime.process import free_port

__all__ = ["EmbeddedNats", "EmbeddedPostgres", "find_nats_server", "free_port", "postgres_bin_dir"]
