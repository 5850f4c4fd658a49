"""The running API (with its projector) from the API tests' fixture."""

from tests.api.conftest import system  # noqa: F401 - the fixture
