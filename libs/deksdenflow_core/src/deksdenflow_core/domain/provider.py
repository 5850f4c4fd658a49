"""The forge a project lives on, named once: the contracts' ``CiProvider`` and its spelling at the edges.

``CiProvider`` is the one type of the concept (events, commands and states carry it). Where a forge is
named in text — the API's JSON (``"ci_provider": "github"``), webhook routes, settings of tokens and API
bases, metrics labels, forge clients — it is spelt as a :data:`ProviderName`. The two are converted here
and nowhere else; so are the three CI results a forge reports and the contracts' ``CiStatus``.
"""

from __future__ import annotations

from typing import Final, Literal

from deksdenflow_core.contracts.generated.deksdenflow.common.v1.common import CiProvider, CiStatus

ProviderName = Literal["github", "gitlab"]
# The CI results a forge's own words are reduced to (see the webhook dialects and the forge clients).
CiResult = Literal["running", "success", "failure"]

PROVIDER_NAMES: Final[tuple[ProviderName, ...]] = ("github", "gitlab")

_BY_NAME: Final[dict[str, CiProvider]] = {"github": CiProvider.GITHUB, "gitlab": CiProvider.GITLAB}
_NAMES: Final[dict[CiProvider, ProviderName]] = {CiProvider.GITHUB: "github", CiProvider.GITLAB: "gitlab"}
_CI_STATUS: Final[dict[str, CiStatus]] = {
    "running": CiStatus.RUNNING,
    "success": CiStatus.SUCCESS,
    "failure": CiStatus.FAILURE,
}

__all__ = [
    "PROVIDER_NAMES",
    "CiResult",
    "ProviderName",
    "ci_provider",
    "ci_status",
    "provider_name",
]


def ci_provider(name: str | None) -> CiProvider:
    """The provider spelt ``name`` (``"github"``, ``"gitlab"``); ``UNSPECIFIED`` for None or anything else."""
    return _BY_NAME.get(name or "", CiProvider.UNSPECIFIED)


def provider_name(provider: CiProvider) -> ProviderName | None:
    """How ``provider`` is spelt in text; None when it is unspecified (or unknown to this release)."""
    return _NAMES.get(provider)


def ci_status(result: str | None) -> CiStatus:
    """The contracts' status of a CI result (``"running"``, ``"success"``, ``"failure"``); else
    ``UNSPECIFIED``."""
    return _CI_STATUS.get(result or "", CiStatus.UNSPECIFIED)
