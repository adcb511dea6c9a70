"""Polygons to masks and back: the one polygon rasteriser of instit.

:func:`rasterise` fills polygon rings into a mask, of a whole image (``Instance.mask``) or of
the window of it that holds the polygon (the mark renderer's view of an instance): both give
the same pixels, since both cut far vertices at the image's margin and fill the same
fixed-point vertices.
:func:`contours` traces a mask's outlines and :func:`mask_boxes` its boxes.

OpenCV is imported on first use, not with the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from instit.instances._validate import _readonly

# OpenCV takes vertices as int32 in 1/16 pixel (shift=4)
_CV_LIMIT = (2**31 - 1) // 16 - 1


def _clip_ring(
    ring: np.ndarray, low_x: float, low_y: float, high_x: float, high_y: float
) -> np.ndarray:
    """``ring`` cut to the rectangle ``[low_x, high_x] x [low_y, high_y]`` (Sutherland-Hodgman).

    Cutting at a line keeps the winding number of every point on the kept side, so the fill
    (even-odd or nonzero) inside the rectangle is unchanged.
    """
    points = [(float(x), float(y)) for x, y in ring]
    edges = ((0, low_x, 1.0), (0, high_x, -1.0), (1, low_y, 1.0), (1, high_y, -1.0))
    for axis, limit, sign in edges:
        clipped: list[tuple[float, float]] = []
        previous = points[-1] if points else (0.0, 0.0)
        previous_in = sign * (previous[axis] - limit) >= 0
        for current in points:
            current_in = sign * (current[axis] - limit) >= 0
            if current_in != previous_in:
                t = (limit - previous[axis]) / (current[axis] - previous[axis])
                cross = [
                    previous[0] + t * (current[0] - previous[0]),
                    previous[1] + t * (current[1] - previous[1]),
                ]
                cross[axis] = limit
                clipped.append((cross[0], cross[1]))
            if current_in:
                clipped.append(current)
            previous, previous_in = current, current_in
        points = clipped
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def rasterise(
    rings: Sequence[np.ndarray],
    width: int,
    height: int,
    *,
    crop: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Fill ``rings`` into a new bool mask of the ``width`` x ``height`` image with the
    **even-odd** rule: inner rings are holes, and where a self-intersecting ring (a bowtie, a
    pentagram) crosses itself, regions covered an even number of times are outside.  Pixel
    centres sit at integer coordinates (OpenCV's convention), vertices are rounded to 1/16
    pixel, and the outline's pixels are inside.

    ``crop=(left, top, right, bottom)`` fills only that window of the image, a
    ``(bottom - top, right - left)`` mask, instead of the whole ``(height, width)`` image.  When
    the window holds every part of the rings that lies in the image (their box, as the mark
    renderer takes it, or more), it is pixel-identical to the whole image's mask there.  A
    window that cuts through the rings is not: OpenCV starts an edge's outline where the edge
    enters the canvas, so the outline pixels along the cut can differ.

    Rings reaching far beyond the image are first cut to a margin around it, so vertices up to
    :data:`~instit.instances.MAX_COORDINATE` rasterise exactly (OpenCV's fixed-point vertices
    would overflow).
    """
    import cv2

    left, top, right, bottom = (0, 0, width, height) if crop is None else crop
    margin = width + height + 16
    # the margin around the image, within what int32 vertices relative to the crop can hold
    low_x, low_y = max(-margin, left - _CV_LIMIT), max(-margin, top - _CV_LIMIT)
    high_x, high_y = min(width + margin, left + _CV_LIMIT), min(height + margin, top + _CV_LIMIT)
    canvas = np.zeros((max(0, bottom - top), max(0, right - left)), dtype=np.uint8)
    fixed = []
    for ring in rings:
        points = np.asarray(ring, dtype=np.float64)
        if (
            (points[:, 0] < low_x).any()
            or (points[:, 1] < low_y).any()
            or (points[:, 0] > high_x).any()
            or (points[:, 1] > high_y).any()
        ):
            points = _clip_ring(points, low_x, low_y, high_x, high_y)
            if len(points) < 3:
                continue
        vertices = np.rint(points * 16) - (left * 16, top * 16)
        fixed.append(vertices.astype(np.int32).reshape(-1, 1, 2))
    if fixed:
        cv2.fillPoly(canvas, fixed, 1, lineType=cv2.LINE_8, shift=4)
    return canvas.view(bool)


def contours(mask: np.ndarray, box: np.ndarray) -> list[np.ndarray]:
    """Outer and hole outlines of ``mask`` (OpenCV convention), cropped to ``box`` for speed."""
    import cv2

    x0, y0, x1, y1 = (int(v) for v in box)
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)  # 1-pixel zero border
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    found, _ = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([x0 - 1, y0 - 1], dtype=np.float64)
    return [_readonly(c.reshape(-1, 2).astype(np.float64) + offset) for c in found]


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight pixel-edge boxes of ``(N, H, W)`` masks and a "non-empty" flag per mask."""
    count, height, width = masks.shape
    rows = masks.any(axis=2)
    cols = masks.any(axis=1)
    nonempty = rows.any(axis=1)
    boxes = np.zeros((count, 4), dtype=np.float64)
    if count:
        boxes[:, 0] = cols.argmax(axis=1)
        boxes[:, 1] = rows.argmax(axis=1)
        boxes[:, 2] = width - cols[:, ::-1].argmax(axis=1)
        boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    return boxes, nonempty
