"""How deksdenflow's own replies to reviews are marked on a PR/MR, named once for the two sides that use it.

The git/CI worker posts a reply when a review fix is done; the forge then sends that reply back as a
webhook (a GitLab note on the MR, a comment on GitHub). Unmarked, it would read as a reviewer's comment and
ask for another fix of the fix — a loop. So every reply carries an HTML comment (invisible on the page)
naming the review it answers, the webhook dialects ignore any comment that carries it, and the worker reads
it back to tell whether a reply was already posted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["REVIEW_REPLY_MARKER", "is_review_reply", "replied_to", "review_reply_marker"]

# The marker's fixed part; a reply's marker adds the id of the review it answers.
REVIEW_REPLY_MARKER: Final = "<!-- deksdenflow:review-reply -->"
_MARKER: Final = re.compile(r"<!--\s*deksdenflow:review-reply\b(?P<fields>[^>]*?)\s*-->")
_REVIEW_ID: Final = re.compile(r"\breview_id=(?P<id>\S+)")


def review_reply_marker(review_id: str) -> str:
    """The marker of the reply to review ``review_id`` (``<!-- deksdenflow:review-reply review_id=… -->``).

    Forge review ids are numbers; spaces and angle brackets (which could end the comment early) are
    dropped, so the marker stays one HTML comment whatever the id.
    """
    safe = "".join(ch for ch in review_id if ch.isprintable() and not ch.isspace() and ch not in "<>")
    if not safe:
        return REVIEW_REPLY_MARKER
    return f"<!-- deksdenflow:review-reply review_id={safe} -->"


def is_review_reply(text: str) -> bool:
    """Whether ``text`` (a comment or note body) is one of deksdenflow's own replies."""
    return _MARKER.search(text) is not None


def replied_to(bodies: Iterable[str], review_id: str) -> bool:
    """Whether one of ``bodies`` is deksdenflow's reply to review ``review_id``."""
    wanted = review_reply_marker(review_id)
    if wanted == REVIEW_REPLY_MARKER:
        return False  # a review without an id cannot be told apart from any other
    for body in bodies:
        for marker in _MARKER.finditer(body):
            found = _REVIEW_ID.search(marker["fields"])
            if found is not None and review_reply_marker(found["id"]) == wanted:
                return True
    return False
