"""Instances from raw media: segment, detect by words, track through video.

* :class:`Segmenter` (SAM 2 / SAM 2.1 / EdgeTAM / SAM 3 tracker): ``segment`` (boxes or clicks
  -> masks), ``segment_everything`` (automatic masks chosen for a Set-of-Marks prompt) and
  ``track`` (masks through every frame, IDs kept);
* :class:`Detector` (Grounding DINO, OWLv2): ``detect`` (words -> boxes with labels and scores);
* :func:`find_instances`: the one call, image -> Instances, video -> Tracks.

Needs the ``instit[segment]`` extra (torchvision; timm for EdgeTAM); ``import instit`` does
not import any of it.  See ``docs/segment.md``.
"""

from __future__ import annotations

from instit.segment.detector import DEFAULT_DETECTOR, Detector
from instit.segment.find import find_instances
from instit.segment.segmenter import DEFAULT_SEGMENTER, Segmenter, SegmentWarning
from instit.segment.select import select_masks

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_SEGMENTER",
    "Detector",
    "SegmentWarning",
    "Segmenter",
    "find_instances",
    "select_masks",
]
