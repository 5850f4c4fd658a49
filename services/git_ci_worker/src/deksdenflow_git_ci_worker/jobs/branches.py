"""Protocol branches on the remote: deleting one (a job), and listing a project's branches (a
request/reply service on ``Subjects.branches_service``, queue group ``git_ci_worker``, whose messages
are ``deksdenflow.services.v1.ListBranchesRequest`` / ``ListBranchesReply``), so the API shows
what the remote really has; and the diffs of a protocol's work (``Subjects.diffs_service``,
``GetDiffRequest`` / ``GetDiffReply``), made from the worker's mirror, for the console."""

from __future__ import annotations

from dataclasses import dataclass

from deksdenflow_core.aggregates import PROJECT, PROTOCOL_RUN
from deksdenflow_core.consumer import Delivery
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1 import protocol_run as cmd
from deksdenflow_core.contracts.generated.deksdenflow.events.v1 import protocol_run as ev
from deksdenflow_core.contracts.generated.deksdenflow.services.v1 import branches as svc
from deksdenflow_core.contracts.generated.deksdenflow.services.v1 import diffs
from deksdenflow_core.errors import DeksdenflowError, WorkNotCurrent
from nats.aio.msg import Msg

from deksdenflow_git_ci_worker.kit import GitJobKit


@dataclass(frozen=True)
class Branches:
    """``protocol_run.branch_deletion_requested`` → ``RecordBranchDeleted``; and the branch listing."""

    kit: GitJobKit

    async def delete(self, delivery: Delivery, req: ev.BranchDeletionRequested) -> None:
        """Delete the branch on the remote; one already gone is recorded as such (``existed`` false)."""
        kit = self.kit
        run = (await kit.repo.load(PROTOCOL_RUN, delivery.event.envelope.aggregate_id)).state
        if run.branch_deleted:
            raise WorkNotCurrent(f"branch {req.branch} is already deleted")
        project = (await kit.repo.load(PROJECT, run.project_id)).state
        existed = await kit.mirrors.delete_remote_branch(project.project_id, project.git_url, req.branch)
        await kit.record_run(
            run.protocol_run_id, [cmd.RecordBranchDeleted(branch=req.branch, existed=existed)], delivery
        )

    async def list_branches(self, msg: Msg) -> None:
        """Answer a ``ListBranchesRequest`` with the remote's branches of the project, or why not."""
        try:
            project_id = svc.ListBranchesRequest.model_validate_json(msg.data).project_id
            project = (await self.kit.repo.load(PROJECT, project_id)).state
            if not project.exists:
                reply = svc.ListBranchesReply(error=f"project {project_id} does not exist")
            else:
                heads = await self.kit.mirrors.remote_heads(project.project_id, project.git_url)
                reply = svc.ListBranchesReply(heads=heads)
        except Exception as exc:  # the caller must always get an answer
            reply = svc.ListBranchesReply(
                error=exc.message if isinstance(exc, DeksdenflowError) else repr(exc)
            )
        # Zero values left out, as protobuf's JSON printer does: {"heads": {...}} or {"error": "..."}.
        await msg.respond(reply.model_dump_json(exclude_defaults=True).encode())

    async def diff(self, msg: Msg) -> None:
        """Answer a ``GetDiffRequest`` from the project's mirror (fetched first when it lacks the commit)."""
        try:
            req = diffs.GetDiffRequest.model_validate_json(msg.data)
            project = (await self.kit.repo.load(PROJECT, req.project_id)).state
            if not project.exists:
                reply = diffs.GetDiffReply(error=f"project {req.project_id} does not exist")
            else:
                patch, subject, truncated = await self.kit.mirrors.diff(
                    project.project_id,
                    project.git_url,
                    commit=req.commit or None,
                    base_branch=req.base_branch or None,
                    head=req.head or None,
                    max_bytes=req.max_bytes or 1_000_000,
                )
                reply = diffs.GetDiffReply(patch=patch, subject=subject, truncated=truncated)
        except Exception as exc:  # the caller must always get an answer
            reply = diffs.GetDiffReply(error=exc.message if isinstance(exc, DeksdenflowError) else repr(exc))
        await msg.respond(reply.model_dump_json(exclude_defaults=True).encode())
