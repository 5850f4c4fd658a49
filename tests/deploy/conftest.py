"""``tests/deploy``: the image tests run only when asked for, and need buildah as root:
``DEKSDENFLOW_IMAGE_TEST=1`` (``make test``) builds the API image and runs its services from it; ``=all``
(``make image-test``) the workers image too, which takes twice as long. Everything else here is offline
and takes seconds."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("DEKSDENFLOW_IMAGE_TEST", "")
    if wanted == "all":
        return
    image = [
        item
        for item in items
        if item.get_closest_marker("image") and (wanted != "1" or item.get_closest_marker("image_full"))
    ]
    if image:
        config.hook.pytest_deselected(items=image)
        items[:] = [item for item in items if item not in image]
