"""Protocols are numbered and named by the system (defect 12)."""

from __future__ import annotations

import pytest
from deksdenflow_core.contracts.generated.deksdenflow.commands.v1.protocol_run import CreateProtocolRun
from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import ImportedPlan, ImportedStepFile
from deksdenflow_core.domain.naming import (
    MAX_SLUG_LENGTH,
    ProtocolCatalog,
    decide_create_protocol,
    is_valid_branch_name,
    protocol_name,
    slugify,
)
from deksdenflow_core.domain.project import ProjectState
from deksdenflow_core.domain.protocol_run import ProtocolRunState, evolve_protocol_run
from deksdenflow_core.errors import InvalidCommand, NotFound
from hypothesis import given
from hypothesis import strategies as st

from tests.domain.builders import ctx, registered_project


@pytest.mark.parametrize(
    ("task", "slug"),
    [
        ("Add login page", "add-login-page"),
        ("  Fix: CI / lint!! ", "fix-ci-lint"),
        ("Ünïcode tâsk", "unicode-task"),
        ("already-slugged-42", "already-slugged-42"),
    ],
)
def test_slug_is_lowercase_with_dashes(task: str, slug: str) -> None:
    assert slugify(task) == slug


@pytest.mark.parametrize(
    ("task", "slug"),
    [
        ("Добавить вход", "dobavit-vkhod"),
        ("Προσθήκη σύνδεσης", "prosthiki-syndesis"),
        ("添加登录页面", "tianjiadengluyemian"),
        ("ログインを追加", "roguinozhuijia"),
        ("إضافة تسجيل الدخول", "dfh-tsjyl-ldkhwl"),
        ("🚀🔥", "rocket-fire"),
        ("Straße für Ärzte", "strasse-fur-arzte"),
    ],
)
def test_task_names_in_any_script_get_a_transliterated_slug(task: str, slug: str) -> None:
    assert slugify(task) == slug


def test_a_name_with_nothing_to_transliterate_gets_a_stable_fallback_slug() -> None:
    assert slugify("!!!").startswith("task-")
    assert slugify("!!!") == slugify(" !!! ")
    assert slugify("!!!") != slugify("???")
    assert slugify("\u200b").startswith("task-")
    created = decide_create_protocol(
        registered_project(), ProtocolCatalog(), CreateProtocolRun(task_name="¿?"), ctx()
    )
    assert created.protocol_name == f"0001-{slugify('¿?')}"


@given(st.text(min_size=1).filter(lambda text: text.strip() != ""))
def test_any_non_blank_name_gives_a_valid_branch_name(task: str) -> None:
    slug = slugify(task)
    assert slug
    assert len(slug) <= MAX_SLUG_LENGTH
    assert is_valid_branch_name(protocol_name(1, slug))
    assert is_valid_branch_name(protocol_name(9999, slug))


def test_numbers_follow_the_highest_existing_number() -> None:
    project = registered_project()
    catalog = ProtocolCatalog()
    names: list[str] = []
    for task in ("first", "second", "first"):
        created = decide_create_protocol(
            project, catalog, CreateProtocolRun(task_name=task), ctx(task + str(len(names)))
        )
        catalog = catalog.evolve(created)
        names.append(created.protocol_name)
    assert names == ["0001-first", "0002-second", "0003-first"]
    assert created.protocol_root == ".protocols/0003-first"
    assert created.base_branch == "main"


def test_a_gap_does_not_reuse_numbers() -> None:
    catalog = ProtocolCatalog(frozenset({1, 7}))
    created = decide_create_protocol(registered_project(), catalog, CreateProtocolRun(task_name="x"), ctx())
    assert created.number == 8


def test_bad_task_names_and_unknown_projects_are_refused() -> None:
    with pytest.raises(InvalidCommand):
        decide_create_protocol(
            registered_project(), ProtocolCatalog(), CreateProtocolRun(task_name=" \t "), ctx()
        )
    with pytest.raises(InvalidCommand):
        decide_create_protocol(
            registered_project(),
            ProtocolCatalog(),
            CreateProtocolRun(task_name="ok", base_branch="bad..branch"),
            ctx(),
        )
    with pytest.raises(NotFound):
        decide_create_protocol(
            ProjectState.initial("ghost"), ProtocolCatalog(), CreateProtocolRun(task_name="ok"), ctx()
        )


def test_an_imported_plan_is_carried_by_the_created_run_and_its_steps_are_checked() -> None:
    plan = ImportedPlan(
        source="spec-kit specs/001-x",
        context_md="# Context\n",
        steps=[
            ImportedStepFile(filename="00-setup.md", content="# Setup\n"),
            ImportedStepFile(filename="01-work.md", content="# Work\n"),
        ],
    )
    created = decide_create_protocol(
        registered_project(), ProtocolCatalog(), CreateProtocolRun(task_name="X", imported=plan), ctx()
    )
    assert created.imported == plan
    state = evolve_protocol_run(ProtocolRunState.initial(created.protocol_run_id), created)
    assert state.imported == plan
    for bad in (
        ImportedPlan(source="s"),
        ImportedPlan(source="s", steps=[ImportedStepFile(filename="01-first.md", content="x")]),
        ImportedPlan(source="s", steps=[ImportedStepFile(filename="00-Upper Case.md", content="x")]),
        ImportedPlan(source="s", steps=[ImportedStepFile(filename="00-empty.md", content="  ")]),
    ):
        with pytest.raises(InvalidCommand):
            decide_create_protocol(
                registered_project(), ProtocolCatalog(), CreateProtocolRun(task_name="X", imported=bad), ctx()
            )
