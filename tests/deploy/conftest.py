"""``tests/deploy``: the image test runs only when asked for (``DEKSDENFLOW_IMAGE_TEST=1``, which ``make
test`` and ``make image-test`` set): it builds both images and needs buildah as root; everything else here
is offline and takes seconds."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DEKSDENFLOW_IMAGE_TEST") == "1":
        return
    image = [item for item in items if item.get_closest_marker("image")]
    if image:
        config.hook.pytest_deselected(items=image)
        items[:] = [item for item in items if not item.get_closest_marker("image")]
