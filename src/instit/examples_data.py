"""The example bundled with instit: a public-domain photo and four instance masks.

``instit.example_image()`` needs no download, so the examples, the docs and the tests can all
show marks and ask questions about the same picture.  See ``instit/assets/ASSETS.md`` for the
source and licence.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from instit.instances import Instances

__all__ = ["example_image", "example_labels"]


def _annotations() -> dict[str, Any]:
    text = resources.files("instit").joinpath("assets", "astronaut_instances.json").read_text()
    return json.loads(text)


def example_image() -> tuple[Image.Image, Instances]:
    """The bundled example: a 512x512 RGB photo and its instances (masks, IDs 1-4).

    The instances are 1 the astronaut, 2 the flag, 3 the helmet and 4 the space-shuttle model
    (see :func:`example_labels`).  A new image and new ``Instances`` are returned every call.

    Example:
        >>> image, instances = instit.example_image()
        >>> instit.draw_marks(image, instances)
    """
    from PIL import Image

    from instit.instances import Instances

    annotations = _annotations()
    with resources.as_file(resources.files("instit").joinpath("assets", annotations["image"])) as p:
        image = Image.open(p).convert("RGB")
    instances = Instances.from_rle(
        {item["id"]: item["segmentation"] for item in annotations["instances"]}
    )
    return image, Instances.coerce(instances, image_size=image.size)


def example_labels() -> dict[int, str]:
    """``{instance ID: what it is}`` for :func:`example_image` (for checking answers by eye)."""
    return {int(item["id"]): str(item["label"]) for item in _annotations()["instances"]}
