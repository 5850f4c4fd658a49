"""Password authentication for the embedded PostgreSQL, and the read-only role the API reads with.

Every connection, over TCP or the Unix socket, needs a password (SCRAM-SHA-256): ``pg_hba.conf`` is ours.
Passwords are sent to the server as SCRAM verifiers computed here, so no statement (nor a log of it) ever
holds one in clear. A cluster made by an earlier version (trust authentication) is secured on its next
start: the superuser gets its password over the still-trusting connection, then ``pg_hba.conf`` is
rewritten and reloaded; an interruption in between just repeats the step next time.

The reader role may connect, use every schema and read every table the superuser makes (default
privileges), and nothing else: the projector, as the superuser, owns the schema.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # no py.typed in asyncpg

HBA = (
    "# Written by deksdenflow: every connection authenticates with a password (SCRAM-SHA-256).\n"
    "# Rewritten on each start; edits here are lost.\n"
    "local   all   all         scram-sha-256\n"
    "host    all   all   all   scram-sha-256\n"
)
_ITERATIONS = 4096


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, as libpq makes it)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def quote_literal(value: str) -> str:
    """An SQL string literal (role passwords cannot be bound as parameters in ALTER ROLE)."""
    return "'" + value.replace("'", "''") + "'"


async def set_passwords(conn: asyncpg.Connection, superuser: str, password: str) -> None:
    """Give ``superuser`` its password (as a verifier); harmless to repeat."""
    await conn.execute(f'ALTER ROLE "{superuser}" PASSWORD {quote_literal(scram_verifier(password))}')


async def ensure_reader(conn: asyncpg.Connection, owner: str, role: str, password: str) -> None:
    """Create or update the read-only login ``role`` and its grants in the database of ``conn``."""
    verifier = quote_literal(scram_verifier(password))
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(
        f'{verb} ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {verifier}'
    )
    # Schemas and tables the owner makes later (migrations, a rebuild's fresh schema) are readable too.
    await conn.execute(f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" GRANT USAGE ON SCHEMAS TO "{role}"')
    await conn.execute(f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" GRANT SELECT ON TABLES TO "{role}"')
    schemas = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
    )
    for (schema,) in schemas:
        name = '"' + schema.replace('"', '""') + '"'
        await conn.execute(f'GRANT USAGE ON SCHEMA {name} TO "{role}"')
        await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO "{role}"')
