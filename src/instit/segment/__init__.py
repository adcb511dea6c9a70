"""Instances from raw media: segment, detect by words, track through video.

* :class:`Segmenter` (SAM 2 / SAM 2.1 / EdgeTAM / SAM 3 tracker): ``segment`` (boxes or clicks
  -> masks), ``segment_everything`` (automatic masks chosen for a Set-of-Marks prompt) and
  ``track`` (masks through every frame, IDs kept);
* :class:`Detector` (Grounding DINO, OWLv2; SAM 3): ``detect`` (words -> boxes, or masks for
  SAM 3, with labels and scores);
* :func:`find_instances`: the one call, image -> Instances, video -> Tracks.

Needs the ``instit[segment]`` extra (torchvision; timm for EdgeTAM); ``import instit`` does
not import any of it.  Names resolve lazily (like :mod:`instit`), so the CLI can read the
defaults without numpy.  See ``docs/segment.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from instit.segment._load import DEFAULT_DETECTOR, DEFAULT_SEGMENTER

_EXPORTS: dict[str, str] = {
    "Detector": "instit.segment.detector",
    "SegmentWarning": "instit.segment.segmenter",
    "Segmenter": "instit.segment.segmenter",
    "find_instances": "instit.segment.find",
    "select_masks": "instit.segment.select",
}

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_SEGMENTER", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'instit.segment' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from instit.segment.detector import Detector as Detector
    from instit.segment.find import find_instances as find_instances
    from instit.segment.segmenter import Segmenter as Segmenter, SegmentWarning as SegmentWarning
    from instit.segment.select import select_masks as select_masks
