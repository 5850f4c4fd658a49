"""``<home>/run/endpoints.json``: where a running ``deksdenflow run`` has its NATS, PostgreSQL and API, and
how tools next to it (``deksdenflow projector migrate|rebuild``) log in. The API client
(``deksdenflow_cli.context``) reads ``api_url`` from it to find a local system by itself.

For embedded servers the file names the URL, the user the tools connect as, and the credentials file
that holds the password; no password is written here. URLs given by the operator
(``DEKSDENFLOW_NATS_URL`` / ``DEKSDENFLOW_DB_URL``) are recorded as given, which may include a password:
that is why the file, like the credentials, is readable by its owner only.
"""

from __future__ import annotations

import json
from pathlib import Path

from deksdenflow_runtime.credentials import Credentials, with_userinfo, write_private


def endpoints_file(home: Path) -> Path:
    """Where a running ``deksdenflow run`` records the NATS and PostgreSQL it uses."""
    return home / "run" / "endpoints.json"


def write_endpoints(
    home: Path,
    *,
    nats_url: str,
    db_url: str,
    credentials: Path,
    nats_user: str | None,
    db_user: str | None,
    api_url: str | None = None,
) -> None:
    """Record the endpoints; ``*_user`` names the login (in ``credentials``) of an embedded server."""
    data: dict[str, str] = {"nats_url": nats_url, "db_url": db_url, "credentials": str(credentials)}
    if api_url is not None:
        data["api_url"] = api_url
    if nats_user is not None:
        data["nats_user"] = nats_user
    if db_user is not None:
        data["db_user"] = db_user
    write_private(endpoints_file(home), json.dumps(data, indent=2) + "\n")


def read_endpoints(path: Path) -> tuple[str, str]:
    """The NATS and PostgreSQL URLs of the running system, with the tools' credentials in them."""
    data = json.loads(path.read_text())
    nats_url, db_url = str(data["nats_url"]), str(data["db_url"])
    if "nats_user" in data or "db_user" in data:
        creds = Credentials.load(Path(data["credentials"]))
        if "nats_user" in data:
            nats_url = with_userinfo(nats_url, data["nats_user"], creds.nats[data["nats_user"]])
        if "db_user" in data:
            db_url = with_userinfo(db_url, data["db_user"], creds.postgres[data["db_user"]])
    return nats_url, db_url
