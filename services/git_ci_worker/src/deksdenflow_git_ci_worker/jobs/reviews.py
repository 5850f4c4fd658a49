"""Reviews of a run's PR/MR: a review delivery as the run's ``RecordReview``, and the reply once its fix is
done.

* ``webhook.received`` of kind "review" (applied by :class:`~.ci.CiHandler`, like every delivery) →
  ``RecordReview``; the run decides what it asks for. On GitHub a review is the unit: its line comments are
  not in the ``pull_request_review`` payload, so they are read from GitHub (with this worker's token) and
  the review asks for one fix with all of its words. Without a token, or when GitHub will not say, the
  review is taken with its own text alone. A review of another PR than the run's (an older one of the same
  branch) changes nothing.
* ``protocol_run.review_reply_requested`` → a comment on the PR/MR saying what was done, mentioning the
  reviewer and carrying the reply marker (so that it does not come back as a review) →
  ``RecordReviewReplied``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from deksdenflow_core.aggregates import PROTOCOL_RUN
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import (
    ReviewComment,
    ReviewFeedback,
    ReviewState,
)
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import webhook as wev
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState
from deksdenflow_core.domain.provider import ProviderName
from deksdenflow_core.domain.review_reply import is_review_reply, replied_to, review_reply_marker
from deksdenflow_core.errors import NotFound, WorkNotCurrent
from deksdenflow_git.forges import Forge, ForgeError, ForgeUnavailable

from deksdenflow_git_ci_worker.kit import GitJobKit

log = structlog.get_logger("deksdenflow.git_ci_worker.reviews")

# Reviews whose line comments say what to change (an approval or a dismissal needs none).
_ASKING = frozenset({ReviewState.CHANGES_REQUESTED, ReviewState.COMMENTED})


@dataclass(frozen=True)
class ReviewDeliveries:
    """A review delivery as the command its run takes."""

    forge: Callable[[ProviderName, ProjectState], Forge]
    provider_of: Callable[[ProjectState], ProviderName | None]
    has_token: Callable[[ProviderName], bool]

    async def command(
        self, received: wev.WebhookReceived, run: ProtocolRunState, project: ProjectState
    ) -> cmd.RecordReview | None:
        """``RecordReview`` for the run; None when the delivery brings no review. A review of another
        PR/MR than the run's raises :class:`NotFound` (the delivery is then recorded as ignored)."""
        if received.review is None:
            return None
        if received.pr_number and run.pr_number and received.pr_number != run.pr_number:
            raise NotFound(f"the review is of PR/MR #{received.pr_number}, the run's is #{run.pr_number}")
        review = await self._with_line_comments(received.review, run.pr_number or received.pr_number, project)
        return cmd.RecordReview(provider=received.provider, review=review, delivery_id=received.delivery_id)

    async def _with_line_comments(
        self, review: ReviewFeedback, number: int, project: ProjectState
    ) -> ReviewFeedback:
        """A GitHub review with its line comments, read from GitHub; any other review as it came."""
        provider = self.provider_of(project)
        if (
            provider != "github"
            or review.state not in _ASKING
            or review.comments
            or not review.review_id
            or not number
            or not self.has_token(provider)
        ):
            return review
        forge = self.forge(provider, project)
        try:
            found = await forge.review_comments(number, review.review_id)
        except (ForgeError, ForgeUnavailable) as exc:
            # The review still counts (its verdict, its text): losing it for a comment listing is worse.
            log.warning(
                "review taken without its line comments", review_id=review.review_id, reason=exc.message
            )
            return review
        finally:
            await forge.aclose()
        comments = tuple(
            ReviewComment(path=c.path, line=c.line, body=c.body, url=c.url)
            for c in found
            if not is_review_reply(c.body)
        )
        return review.model_copy(update={"comments": comments})


@dataclass(frozen=True)
class ReviewReplies:
    """``protocol_run.review_reply_requested`` → the reply on the PR/MR → ``RecordReviewReplied``.

    Posting a comment is not idempotent, so the job reads the PR/MR's comments first and posts nothing
    when its reply (the marker with the review's id) is already there: a job that stopped between posting
    and recording, or a request delivered twice, leaves one reply. Two replicas taking the same request at
    the same moment could still both post (the log gives each request to one consumer at a time, so only
    after an ack deadline passed mid-post).
    """

    kit: GitJobKit

    async def run(self, delivery: Delivery, req: ev.ReviewReplyRequested) -> None:
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if req.review_id in run.review_replies:
            raise WorkNotCurrent(f"review {req.review_id} of {run.protocol_run_id} is already answered")
        forge, provider = await kit.pr_forge(run)
        try:
            posted = [c for c in await forge.comments(run.pr_number) if replied_to([c.body], req.review_id)]
            url = posted[0].url if posted else await forge.comment(run.pr_number, reply_body(req))
        except ForgeError:
            kit.metrics.prs.labels(provider, "error").inc()
            raise
        finally:
            await forge.aclose()
        kit.metrics.prs.labels(provider, "review_reply_found" if posted else "review_replied").inc()
        await kit.record_run(
            run.protocol_run_id, [cmd.RecordReviewReplied(review_id=req.review_id, url=url)], delivery
        )


def reply_body(req: ev.ReviewReplyRequested) -> str:
    """What the reply says: what was done, the reviewer asked to look again, and the marker."""
    mention = f"\n\n@{req.reviewer}, could you take another look?" if req.reviewer else ""
    return f"{req.body}{mention}\n\n{review_reply_marker(req.review_id)}"
