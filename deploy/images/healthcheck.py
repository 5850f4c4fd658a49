#!/usr/bin/env python3
"""The images' HEALTHCHECK: GET ``$DEKSDENFLOW_HEALTHCHECK_URL`` (the service's liveness endpoint) and exit 0
on a 200, 1 otherwise. Standard library only; Kubernetes ignores HEALTHCHECK and uses its own probes."""

import os
import sys
import urllib.request

URL = os.environ.get("DEKSDENFLOW_HEALTHCHECK_URL", "http://127.0.0.1:8010/livez")

try:
    with urllib.request.urlopen(URL, timeout=3) as response:  # noqa: S310 (a local http:// URL)
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"unhealthy: {URL}: {exc}", file=sys.stderr)
    sys.exit(1)
