"""What keeps secrets out of log lines: one structlog processor, applied to every record of a process.

Three rules, each for a way a secret gets into a line:

* a field (at any depth) **named like a secret** (token, secret, password, key, credential, signature,
  authorization, cookie) has its text replaced; ids, hashes and counts of such things stay readable
  (``token_id``, ``token_hash``, ``input_tokens``);
* in any text (the message, every string field, the traceback) the values of the **credential headers**
  (``Authorization``, ``X-Project-Token``, ``X-Gitlab-Token``, ``X-Hub-Signature-256``, GitLab's
  ``webhook-signature``, cookies), ``Bearer``/``Basic`` credentials, our own token formats (``dfp_…``,
  ``dfw_…``), query parameters named like a secret and the user part of URLs
  (``https://user:password@``) are replaced;
* the **values of the process's settings named like a secret** (``DEKSDENFLOW_API_TOKEN``,
  ``OPENAI_API_KEY``, a database password …, read from the environment) are replaced wherever they
  appear, whatever put them there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

_SECRET_NAME = re.compile(r"token|secret|passw|pwd|key|credential|signature|authorization|cookie", re.I)
# Names that contain a secret's name but hold no secret: its id, its hash, a count, a kind.
_HARMLESS_NAME = re.compile(r"(_id|_ids|_hash|_hashes|_count|_kind|_label|_at|_seconds|_name)$", re.I)
_HEADER_VALUE = re.compile(
    r"(?P<name>proxy-authorization|authorization|x-project-token|x-gitlab-token|x-hub-signature(?:-256)?"
    r"|webhook-signature|x-api-key|private-token|job-token|set-cookie|cookie)"
    # "name: value", "name=value", or a pair's repr "('name', 'value')" / "(b'name', b'value')"
    r"(?P<sep>['\"]?\s*[:=,]\s*b?)"
    # a quoted value up to its quote, else one word and, for "Bearer x" / "sha256=x", the next one
    r"(?:(?P<quote>['\"])[^'\"\r\n]*(?P=quote)|[^\s'\"]+(?:[ \t]+[^\s'\";)}\]]+)?)",
    re.I,
)
_SCHEME_CREDENTIAL = re.compile(r"\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}", re.I)
_OUR_TOKENS = re.compile(r"\b(?P<prefix>dfp_|dfw_)[A-Za-z0-9_-]{12,}")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;][^=&\s\"']*(?:token|secret|passw|key|signature|credential)[^=&\s\"']*=)[^&#\s\"']+", re.I
)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"@]+@")
# Shorter setting values (ports, flags) would blank out unrelated text.
_MIN_VALUE_LENGTH = 8


# The shell's working directories: "pwd" there is not a password, and blanking every path that contains
# the current directory would blank most of a traceback.
_NOT_SECRETS = frozenset({"PWD", "OLDPWD"})


def is_secret_name(name: str) -> bool:
    """Whether a field or setting called ``name`` holds a secret."""
    return bool(_SECRET_NAME.search(name)) and not _HARMLESS_NAME.search(name) and name not in _NOT_SECRETS


class Redactor:
    """The processor: ``Redactor(values)(logger, method, event_dict)`` returns the redacted event."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        known = sorted({v for v in values if len(v) >= _MIN_VALUE_LENGTH}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(v) for v in known)) if known else None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """Redact the values of every variable named like a secret (comma-separated lists split too), and
        the contents of the files that ``*_FILE`` variables named like a secret point at
        (``DEKSDENFLOW_GITHUB_TOKEN_FILE``)."""
        env = os.environ if environ is None else environ
        values: list[str] = []
        for name, setting in env.items():
            if not is_secret_name(name):
                continue
            value = _read_secret_file(setting) if name.upper().endswith("_FILE") else setting
            values.append(value)
            values += [part.strip() for part in value.split(",")]
        return cls(values)

    def text(self, text: str) -> str:
        """``text`` with every secret it shows replaced."""
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        text = _HEADER_VALUE.sub(
            lambda m: f"{m['name']}{m['sep']}{m['quote'] or ''}{REDACTED}{m['quote'] or ''}", text
        )
        text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
        text = _OUR_TOKENS.sub(lambda m: f"{m['prefix']}{REDACTED}", text)
        text = _QUERY_SECRET.sub(lambda m: f"{m['name']}{REDACTED}", text)
        return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)

    def value(self, value: Any, *, name: str = "") -> Any:
        if name and is_secret_name(name) and isinstance(value, str | bytes) and value:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self.value(v, name=str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            # A header pair such as ("authorization", "Bearer …"): the first item names the second.
            if len(items) == 2 and isinstance(items[0], str | bytes):
                first = items[0].decode("latin-1") if isinstance(items[0], bytes) else items[0]
                return [self.value(items[0]), self.value(items[1], name=first)]
            return [self.value(v) for v in items]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(repr(value))  # an object's repr can show anything it holds

    def __call__(self, logger: Any, method: str, event_dict: Any) -> Any:
        return {k: v if k in _STRUCTLOG_META else self.value(v, name=str(k)) for k, v in event_dict.items()}


# Keys structlog's ProcessorFormatter adds for itself (the LogRecord) and removes before rendering.
_STRUCTLOG_META = frozenset({"_record", "_from_structlog"})


def _read_secret_file(path: str) -> str:
    """The secret a ``*_FILE`` setting names ('' if it cannot be read: the setting will say so itself)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(64 * 1024).strip()
    except (OSError, UnicodeDecodeError):
        return ""
