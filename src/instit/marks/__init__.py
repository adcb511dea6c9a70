"""Set-of-Marks visual prompts: ID labels and outlines drawn on object instances.

The Inst-It models were trained on images and frames where each instance carries a numbered
mark; :func:`draw_marks` (images) and :func:`draw_marks_frames` (video frames) draw the same
marks, :func:`layout_marks` tells where every label goes.  See ``docs/marks.md``.
"""

from __future__ import annotations

from instit.marks.draw import (
    BoxAnnotator,
    ContourAnnotator,
    FillAnnotator,
    LabelAnnotator,
    LeaderAnnotator,
    PointAnnotator,
    draw_marks,
    draw_marks_frames,
    layout_marks,
)
from instit.marks.layout import Placement
from instit.marks.style import MarkStyle, instance_color, label_text

__all__ = [
    "BoxAnnotator",
    "ContourAnnotator",
    "FillAnnotator",
    "LabelAnnotator",
    "LeaderAnnotator",
    "MarkStyle",
    "Placement",
    "PointAnnotator",
    "draw_marks",
    "draw_marks_frames",
    "instance_color",
    "label_text",
    "layout_marks",
]
