"""Variants: what an evaluation compares (engine x model x prompt versions), read from
``evals/variants.toml``; a bad file is refused with the file and the field."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from deksdenflow_core.assets import PROMPT_NAMES, prompt_text, version_of

EVALS = Path(__file__).resolve().parent
VARIANTS = EVALS / "variants.toml"
# the engines with cassettes: the Responses API (the Codex CLI's) and the Messages API (Claude Code's)
ENGINES = ("codex", "claude-code")


@dataclass(frozen=True)
class Variant:
    id: str
    engine: str
    model: str
    # prompt name -> the override file's text (the project's .deksdenflow/prompts/<name>.md)
    prompts: dict[str, str] = field(default_factory=dict)
    expect_regression: bool = False
    stored_label: str = ""  # a variant read back from the log says what it was

    @property
    def prompt_versions(self) -> dict[str, str]:
        """The version of every prompt the variant's calls use (overrides and built-in alike)."""
        return {
            name: version_of(self.prompts[name] if name in self.prompts else prompt_text(name))
            for name in PROMPT_NAMES
        }

    @property
    def label(self) -> str:
        """Engine, model and the overridden prompts' versions: what sets the variant apart."""
        if self.stored_label:
            return self.stored_label
        versions = self.prompt_versions
        own = ",".join(f"{n}@{versions[n]}" for n in sorted(self.prompts)) or "built-in prompts"
        return f"{self.engine}:{self.model} {own}"


@dataclass(frozen=True)
class Matrix:
    baseline: str
    variants: tuple[Variant, ...]

    def get(self, variant_id: str) -> Variant:
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise KeyError(f"no variant {variant_id!r}; known: {', '.join(v.id for v in self.variants)}")

    def only(self, ids: list[str]) -> Matrix:
        """The variants named (the baseline always kept: everything is compared with it)."""
        keep = [v for v in self.variants if v.id in ids or v.id == self.baseline]
        for wanted in ids:
            self.get(wanted)
        return Matrix(self.baseline, tuple(keep))


def load(path: Path = VARIANTS) -> Matrix:
    spec = tomllib.loads(path.read_text())
    variants = []
    for i, raw in enumerate(spec.get("variants", ())):
        where = f"{path}: variants[{i}]"
        for key in ("id", "engine", "model"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"{where}.{key}: a non-empty string is required")
        if raw["engine"] not in ENGINES:
            raise ValueError(
                f"{where}.engine: {raw['engine']!r} has no cassettes; known: {', '.join(ENGINES)}"
            )
        prompts = {}
        for name, file in dict(raw.get("prompts", {})).items():
            if name not in PROMPT_NAMES:
                raise ValueError(f"{where}.prompts.{name}: not a prompt; known: {', '.join(PROMPT_NAMES)}")
            source = path.parent / str(file)
            if not source.is_file():
                raise ValueError(f"{where}.prompts.{name}: {source} does not exist")
            prompts[name] = source.read_text()
        expect = raw.get("expect", "")
        if expect not in ("", "regression"):
            raise ValueError(f'{where}.expect: only "regression" is known, not {expect!r}')
        variants.append(Variant(raw["id"], raw["engine"], raw["model"], prompts, expect == "regression"))
    ids = [v.id for v in variants]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: variant ids must be unique, got {ids}")
    baseline = str(spec.get("baseline", ""))
    if baseline not in ids:
        raise ValueError(f"{path}: baseline {baseline!r} is not one of the variants {ids}")
    return Matrix(baseline, tuple(variants))
