"""Per-project webhook secrets, derived rather than stored.

``secret = "dfw_" + HMAC-SHA256(global secret, "deksdenflow/webhook/<project id>/<generation>")``. The log
keeps only the generation (``project.webhook_secret_rotated``), so a secret is never written anywhere,
survives a rebuild of the read model, and rotating it (a new generation) revokes the previous one. Whoever
holds the global secret can authenticate any project's deliveries anyway, so deriving from it gives
nothing away.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "dfw_"


def project_webhook_secret(master: str, project_id: str, generation: int) -> str:
    message = f"deksdenflow/webhook/{project_id}/{generation}".encode()
    return PREFIX + hmac.new(master.encode(), message, hashlib.sha256).hexdigest()
