"""Instance geometry as the mark renderer needs it: cropped masks and label anchors.

Every instance becomes a :class:`Shape`: its mask cropped to its bounding box (the *ROI*; full
image masks are never copied), and its *anchor*, the point the label is centred on:

* masks and polygons: the most interior point, i.e. the maximum of the Euclidean distance
  transform of the mask.  It lies inside rings, U-shapes and thin bars, where the centroid or
  the box centre may not.  The transform runs on the ROI, downscaled so that its longer side is
  at most ``DT_MAX_SIDE`` pixels, and the result is snapped back onto a mask pixel;
* boxes: the box centre; points: the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from instit.errors import InstancesError
from instit.instances.raster import rasterise

DT_MAX_SIDE = 64
"""Longest side (pixels) of the mask crop the distance transform runs on."""


@dataclass(frozen=True)
class Shape:
    """One instance, reduced to what layout and drawing use."""

    id: int
    kind: str
    box: tuple[float, float, float, float]
    # mask crop (bool; a view of the instance mask) and its top-left corner in image pixels;
    # None for boxes and points
    roi: np.ndarray | None
    origin: tuple[int, int]
    anchor: tuple[float, float]
    # distance from the anchor to the instance border (pixels): how much room a label has
    radius: float

    def contains_point(self, x: float, y: float) -> bool:
        """Whether the image pixel that holds ``(x, y)`` belongs to the instance."""
        if self.roi is None:
            x0, y0, x1, y1 = self.box
            return x0 <= x < x1 and y0 <= y < y1
        col = math.floor(x) - self.origin[0]
        row = math.floor(y) - self.origin[1]
        height, width = self.roi.shape
        return 0 <= col < width and 0 <= row < height and bool(self.roi[row, col])

    def contains(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether each image pixel ``(xs[i], ys[i])`` belongs to the instance."""
        if self.roi is None:
            x0, y0, x1, y1 = self.box
            return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        col = np.floor(xs).astype(np.int64) - self.origin[0]
        row = np.floor(ys).astype(np.int64) - self.origin[1]
        height, width = self.roi.shape
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        # look up clamped indices, then drop the ones that were outside
        np.minimum(np.maximum(col, 0, out=col), width - 1, out=col)
        np.minimum(np.maximum(row, 0, out=row), height - 1, out=row)
        return self.roi[row, col] & inside


def shapes_from(instances: Any, size: tuple[int, int]) -> list[Shape]:
    """Build a :class:`Shape` for every instance of a validated ``Instances`` object.

    Reads the geometry arrays (``boxes()``, ``masks()``, ``polygons()``, ``points()``) rather
    than iterating :class:`~instit.instances.Instance` objects, so polygons are rasterised only
    inside their boxes and never over the whole image (by the rasteriser of ``Instance.mask``,
    so the pixels are the same).
    """
    kind = instances.kind
    ids = [int(i) for i in instances.ids]
    boxes = instances.boxes()
    if kind == "point":
        return [
            Shape(i, kind, (x, y, x, y), None, (0, 0), (x, y), 0.0)
            for i, (x, y) in zip(ids, instances.points().tolist(), strict=True)
        ]
    if kind == "box":
        return [
            Shape(
                i,
                kind,
                (x0, y0, x1, y1),
                None,
                (0, 0),
                ((x0 + x1) / 2, (y0 + y1) / 2),
                max(0.0, min(x1 - x0, y1 - y0) / 2),
            )
            for i, (x0, y0, x1, y1) in zip(ids, boxes.tolist(), strict=True)
        ]
    width, height = size
    masks = instances.masks() if kind == "mask" else None
    polygons = instances.polygons() if kind == "polygon" else None
    shapes = []
    for index, (instance_id, box) in enumerate(zip(ids, boxes.tolist(), strict=True)):
        x0, y0, x1, y1 = box
        # a crop of whole pixels that covers the box, inside the image
        left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
        right, bottom = min(width, math.ceil(x1) + 1), min(height, math.ceil(y1) + 1)
        if polygons is not None:
            roi = rasterise(polygons[index], width, height, crop=(left, top, right, bottom))
        else:
            roi = np.asarray(masks[index, top:bottom, left:right], dtype=bool)
        if not cv2.hasNonZero(roi.view(np.uint8)):
            raise InstancesError(
                f"instance {instance_id}: its {kind} covers no pixel inside its box "
                f"{tuple(box)}; drop the instance or give it a mask whose box matches it"
            )
        (ax, ay), radius = interior_point(roi)
        shapes.append(
            Shape(
                instance_id, kind, (x0, y0, x1, y1), roi, (left, top), (ax + left, ay + top), radius
            )
        )
    return shapes


def interior_point(mask: np.ndarray) -> tuple[tuple[float, float], float]:
    """The most interior pixel of a non-empty boolean ``mask`` and its distance to the border.

    Returns ``((x, y), radius)`` with ``(x, y)`` the centre of a mask pixel, in the mask's
    coordinates.  Among equally interior pixels the middle one (in raster order) wins, so a bar
    gets its label in its middle.
    """
    height, width = mask.shape
    factor = max(1, math.ceil(max(height, width) / DT_MAX_SIDE))
    pixels = mask.view(np.uint8)
    if factor == 1:
        padded = cv2.copyMakeBorder(pixels, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    else:
        # pad to whole cells (OpenCV's area averaging is much faster for integer factors) plus
        # one empty cell on every side, the border the transform needs
        cells_y, cells_x = math.ceil(height / factor), math.ceil(width / factor)
        whole = cv2.copyMakeBorder(
            pixels,
            factor,
            (cells_y + 1) * factor - height,
            factor,
            (cells_x + 1) * factor - width,
            cv2.BORDER_CONSTANT,
            value=0,
        )
        cells = (cells_x + 2, cells_y + 2)
        # area averaging of 0/1 rounds to 1 where at least half of a cell is inside
        padded = cv2.resize(whole, cells, interpolation=cv2.INTER_AREA)
        if not cv2.hasNonZero(padded):  # only thin parts: keep every cell the mask touches
            touched = cv2.resize(whole * np.uint8(255), cells, interpolation=cv2.INTER_AREA)
            padded = (touched > 0).view(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)
    peak = cv2.minMaxLoc(distance)[1]
    best = (distance == peak).ravel().nonzero()[0]
    row, col = divmod(int(best[len(best) // 2]), padded.shape[1])
    radius = float(distance[row, col]) * factor
    # centre of the low-resolution cell, back in mask pixels
    x = min(width - 1, int((col - 1 + 0.5) * factor))
    y = min(height - 1, int((row - 1 + 0.5) * factor))
    if not mask[y, x]:
        x, y = _nearest_true(mask, x, y)
    return (x + 0.5, y + 0.5), radius


def _nearest_true(mask: np.ndarray, x: int, y: int) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    nearest = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
    return int(xs[nearest]), int(ys[nearest])
