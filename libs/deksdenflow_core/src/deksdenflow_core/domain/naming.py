"""Protocol numbering and names: ``NNNN-slug``, unique per project, chosen by the system.

The consistency boundary for numbering is the set of ``protocol_run.created`` events of one project
(the *catalog*). The event store appends a new protocol with optimistic concurrency on that set, so two
concurrent creations can never take the same number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from anyascii import anyascii

from deksdenflow_core.contracts.generated.deksdenflow.commands.v1.protocol_run import CreateProtocolRun
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import ImportedPlan
from deksdenflow_core.contracts.generated.deksdenflow.events.v1.protocol_run import ProtocolRunCreated
from deksdenflow_core.domain import run_policy
from deksdenflow_core.domain.context import DecisionContext
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.errors import InvalidCommand, NotFound

MAX_NUMBER = 9999
MAX_SLUG_LENGTH = 48
_NON_SLUG = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_GIT_REF_BAD = re.compile(r"(^[./-])|(\.\.)|([~^:?*\[\\\s])|(@\{)|(\.lock$)|([./]$)")


FALLBACK_SLUG = "task"


def slugify(task_name: str) -> str:
    """The branch-safe slug of a task name in any script; never empty for a non-blank name.

    The name is transliterated to ASCII first (``Добавить вход`` → ``dobavit-vkhod``, ``添加`` →
    ``tianjia``, an emoji → its name), then lowercased; every run of characters outside ``[a-z0-9-]``
    becomes one ``-``; trimmed and capped. A name with nothing left (punctuation only, invisible
    characters) gets ``task-<hash>``: the hash keeps two such names apart and is the same on every replay.
    """
    name = task_name.strip()
    if not name:
        return ""
    slug = _DASHES.sub("-", _NON_SLUG.sub("-", anyascii(name).lower())).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    if slug:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{FALLBACK_SLUG}-{digest[:8]}"


def protocol_name(number: int, slug: str) -> str:
    """``NNNN-slug``: the protocol's name and its branch."""
    return f"{number:04d}-{slug}"


def is_valid_branch_name(name: str) -> bool:
    """A conservative subset of ``git check-ref-format --branch``."""
    return bool(name) and len(name) <= 200 and not _GIT_REF_BAD.search(name)


@dataclass(frozen=True)
class ProtocolCatalog:
    """The protocols of one project, folded from their ``protocol_run.created`` events."""

    numbers: frozenset[int] = frozenset()

    def evolve(self, event: ProtocolRunCreated) -> ProtocolCatalog:
        return ProtocolCatalog(self.numbers | {event.number})

    @property
    def next_number(self) -> int:
        return max(self.numbers, default=0) + 1


def decide_create_protocol(
    project: ProjectState,
    catalog: ProtocolCatalog,
    command: CreateProtocolRun,
    ctx: DecisionContext,
) -> ProtocolRunCreated:
    """Number and name a new protocol of ``project``."""
    if not project.exists:
        raise NotFound(f"project {project.project_id} does not exist", project_id=project.project_id)
    slug = slugify(command.task_name)
    if not slug:
        raise InvalidCommand("task_name must not be blank", field="task_name", value=command.task_name)
    number = catalog.next_number
    if number > MAX_NUMBER:
        raise InvalidCommand(f"project has reached the maximum of {MAX_NUMBER} protocols")
    base_branch = command.base_branch or project.base_branch
    if not is_valid_branch_name(base_branch):
        raise InvalidCommand("base_branch is not a valid git branch name", field="base_branch")
    name = protocol_name(number, slug)
    return ProtocolRunCreated(
        protocol_run_id=ctx.new_id(),
        project_id=project.project_id,
        number=number,
        slug=slug,
        protocol_name=name,
        task_name=command.task_name.strip(),
        description=command.description,
        base_branch=base_branch,
        protocol_root=f".protocols/{name}",
        run_policy=run_policy.resolve(project.run_policy or run_policy.MANUAL, command.run_policy),
        imported=_imported(command.imported),
    )


def _imported(plan: ImportedPlan | None) -> ImportedPlan | None:
    """An imported plan whose steps are numbered files ``00-…md`` without gaps (as a planner's are)."""
    if plan is None:
        return None
    if not plan.steps:
        raise InvalidCommand("an imported plan has no step (every phase is done?)", field="imported.steps")
    for index, step in enumerate(plan.steps):
        if not re.fullmatch(rf"{index:02d}-[a-z0-9-]+\.md", step.filename) or not step.content.strip():
            raise InvalidCommand(
                f"imported step {index} must be a file {index:02d}-name.md with content: {step.filename!r}",
                field="imported.steps",
            )
    return plan
