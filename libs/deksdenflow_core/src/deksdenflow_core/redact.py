"""Hiding credentials inside URLs before they are shown (logs, error messages, the console).

``nats://api:s3cret@127.0.0.1:14222`` is shown as ``nats://api:***@127.0.0.1:14222``: the user name
stays (it tells which identity is used), the password never appears. A NATS URL's lone user part is a
token (``nats://<token>@host``), so it is hidden too.
"""

from __future__ import annotations

import re

_TOKEN_SCHEMES = frozenset({"nats://", "tls://", "ws://", "wss://"})
# scheme://[user[:password]@]host... ; a comma-separated list of servers is redacted server by server.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/,\s]*)(?::[^/\s,]*)?@")


def redact_url(url: str) -> str:
    """``url`` (or a comma-separated list of URLs) with any password replaced by ``***``."""

    def hide(match: re.Match[str]) -> str:
        scheme, user = match.group("scheme"), match.group("user")
        if ":" in match.group(0)[len(scheme) :]:
            return f"{scheme}{user}:***@"
        return f"{scheme}***@" if scheme.lower() in _TOKEN_SCHEMES else f"{scheme}{user}@"

    return _USERINFO.sub(hide, url)
