"""The TUI driven by Textual's Pilot against the whole system of the API tests (API + projector + NATS +
PostgreSQL): its fixtures are reused as they are."""

from __future__ import annotations

from tests.api.conftest import api_overrides, system

__all__ = ["api_overrides", "system"]
