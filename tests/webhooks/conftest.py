"""The running API (with its projector) from the API tests' fixture."""

from tests.api.conftest import api_overrides, system  # noqa: F401 - the fixtures
