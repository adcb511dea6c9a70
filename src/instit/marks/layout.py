"""Label placement: where each ID label goes, in which colours.

The algorithm (see ``docs/marks.md``):

1. Every instance gets an anchor (its most interior point, see :mod:`.geometry`) and a label
   box sized from the text and the resolved style.  The label's *home* is centred on the
   anchor, or just above it when the instance is drawn as a dot (``mask="point"``, point
   instances), so that the dot stays visible.
2. Instances are placed in order of difficulty: the least interior room first (points, tiny and
   thin instances), then larger ones, ties by ID, so the instances with no alternatives get the
   spots they need.
3. For each label the candidate positions are a grid of offsets around the anchor (a third of
   a label height apart, up to ``search_radius`` label heights), sorted by distance; each
   candidate box is shifted into the image.  The candidates are ranked nearest first and taken
   in chunks; in the first chunk with a free candidate, the cheapest free one wins, where the
   cost is its distance to the anchor plus a label height when its centre is outside the
   instance.  When nothing is free within the search radius, the whole image (a grid of spots
   a third of a label height apart) is ranked the same way, nearest spot first.
   "Free" is one lookup: for each label size a map holds, per top-left corner, whether a label
   there would overlap one already placed (the same whole-pixel intersection test as comparing
   it with every placed label).  Placing a label marks the corners it blocks in each map, so
   placement is linear in the number of labels, not quadratic.
4. A label that does not cover its home is ``moved``; one farther than ``leader_distance``
   label heights from it gets a leader line from the anchor to the nearest point of its box.
5. Colours: the instance colour comes from its ID; text (and ``box_color="auto"``) colours are
   chosen from the mean colour of the actual pixels under the label box.

Layout only reads ``pixels``; it runs before anything is drawn.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from instit.marks.geometry import Shape
from instit.marks.style import RGB, ResolvedStyle, instance_color, label_text
from instit.marks.text import text_size

_CHUNK = 96
_BLACK: RGB = (0, 0, 0)
_WHITE: RGB = (255, 255, 255)


@dataclass(frozen=True)
class Placement:
    """Where and how the label of one instance is drawn.

    Attributes:
        id: the instance ID.
        text: the label text (``"3"`` or ``"C"``).
        anchor: ``(x, y)`` the point the label belongs to (the instance's most interior point,
            box centre or point), in image pixels.
        box: ``(x0, y0, x1, y1)`` the label box in whole image pixels, ``x1`` / ``y1`` exclusive;
            always inside the image (on an image smaller than one label, the label is cut).
        color: the instance colour (contours, fills, leader lines), RGB.
        box_color: the label box colour, RGB.
        text_color: the label text colour, RGB.
        moved: the label box does not cover its home (the anchor, or the spot just above the
            dot of an instance drawn as a dot): other labels pushed it away.
        leader: ``((x, y), (x, y))`` the leader line from the anchor to the label box, or None.
    """

    id: int
    text: str
    anchor: tuple[float, float]
    box: tuple[int, int, int, int]
    color: RGB
    box_color: RGB
    text_color: RGB
    moved: bool
    leader: tuple[tuple[float, float], tuple[float, float]] | None

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the label box."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """The placement as a JSON string."""
        return json.dumps(asdict(self))


def label_size(text: str, style: ResolvedStyle) -> tuple[int, int]:
    """``(width, height)`` of the label box of ``text`` in pixels."""
    width, height = text_size(style.font, style.font_size, text)
    return width + 2 * style.pad_x, height + style.pad_top + style.pad_bottom


class _Occupancy:
    """Where labels already are, as one "blocked" map per label size.

    ``blocked(size)[y0, x0]`` is true when a ``size`` label with its top-left corner at
    ``(x0, y0)`` would overlap a placed label.  Placing a box marks, in every map, the corners
    that would make a box overlap it: the same test as comparing the box with every placed
    label (``x0 < bx1 and bx0 < x1`` on whole pixels), answered by one lookup, so placing ``n``
    labels costs ``O(n)`` map updates instead of ``O(n^2)`` comparisons.
    """

    def __init__(self, image_size: tuple[int, int]) -> None:
        self._image_size = image_size
        self._boxes: list[tuple[int, int, int, int]] = []
        self._maps: dict[tuple[int, int], np.ndarray] = {}
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.full: set[tuple[int, int]] = set()  # sizes with no free spot on the image grid

    def grid(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres ``cx, cy`` and boxes of the whole-image candidates for ``size`` labels: a
        grid a third of a label height apart, row by row (a label larger than the image has
        none)."""
        found = self._grids.get(size)
        if found is None:
            width, height = self._image_size
            label_w, label_h = size
            step = max(1, label_h // 3)
            grid_x, grid_y = np.meshgrid(
                np.arange(label_w / 2, width - label_w / 2 + 1, step),
                np.arange(label_h / 2, height - label_h / 2 + 1, step),
            )
            cx, cy = grid_x.ravel(), grid_y.ravel()
            found = (cx, cy, _boxes(cx, cy, size, self._image_size))
            self._grids[size] = found
        return found

    def blocked(self, size: tuple[int, int]) -> np.ndarray:
        found = self._maps.get(size)
        if found is None:
            width, height = self._image_size
            label_w, label_h = size
            # a label's corner lies in 0..width - label_w (0 for a label wider than the image)
            found = np.zeros(
                (max(0, height - label_h) + 1, max(0, width - label_w) + 1), dtype=bool
            )
            for box in self._boxes:
                _block(found, box, size)
            self._maps[size] = found
        return found

    def add(self, box: tuple[int, int, int, int]) -> None:
        self._boxes.append(box)
        for size, blocked in self._maps.items():
            _block(blocked, box, size)


def _block(blocked: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    """Mark the corners of ``size`` labels overlapping ``box``: ``bx0 - w < x0 < bx1``."""
    bx0, by0, bx1, by1 = box
    label_w, label_h = size
    rows = slice(max(0, by0 - label_h + 1), max(0, by1))
    columns = slice(max(0, bx0 - label_w + 1), max(0, bx1))
    blocked[rows, columns] = True


def layout(pixels: np.ndarray, shapes: list[Shape], style: ResolvedStyle) -> dict[int, Placement]:
    """Place the labels of ``shapes`` on the RGB array ``pixels``; returns ``{id: Placement}``."""
    height, width = pixels.shape[:2]
    occupancy = _Occupancy((width, height))
    result: dict[int, Placement] = {}
    for shape in sorted(shapes, key=lambda s: (s.radius, s.id)):
        text = label_text(shape.id, style.labels)
        size = label_size(text, style)
        home = _home(shape, size[1], style)
        box = _place(shape, home, size, (width, height), occupancy, style)
        occupancy.add(box)
        result[shape.id] = _placement(shape, home, text, box, pixels, style)
    return {shape.id: result[shape.id] for shape in shapes}


def has_dot(shape: Shape, style: ResolvedStyle) -> bool:
    """Whether the instance is drawn as a dot at its anchor (``mask="point"``, or a point
    instance in any mode but ``"none"``)."""
    return style.mask == "point" or (shape.kind == "point" and style.mask != "none")


def _home(shape: Shape, label_h: int, style: ResolvedStyle) -> tuple[float, float]:
    """Where the label centre should go: on the anchor, or just above the dot when the
    instance is drawn as a dot, so that the dot stays visible."""
    ax, ay = shape.anchor
    if has_dot(shape, style):
        return (ax, ay - (label_h / 2 + style.point_radius + 2))
    return (ax, ay)


def _place(
    shape: Shape,
    home: tuple[float, float],
    size: tuple[int, int],
    image_size: tuple[int, int],
    occupancy: _Occupancy,
    style: ResolvedStyle,
) -> tuple[int, int, int, int]:
    label_w, label_h = size
    ax, ay = home
    blocked = occupancy.blocked(size)
    # fast path: the label centred on its home is free (the usual case)
    width, height = image_size
    x0 = min(max(round(ax - label_w / 2), 0), max(0, width - label_w))
    y0 = min(max(round(ay - label_h / 2), 0), max(0, height - label_h))
    x1, y1 = x0 + label_w, y0 + label_h
    if not blocked[y0, x0] and shape.contains_point((x0 + x1) / 2, (y0 + y1) / 2):
        return (x0, y0, x1, y1)
    offsets = _offsets(label_w, label_h, style.search_radius)
    cx, cy, distance = ax + offsets[:, 0], ay + offsets[:, 1], offsets[:, 2]
    boxes = _boxes(cx, cy, size, image_size)
    chosen = _first_free(shape, boxes, distance, blocked, label_h, ordered=True)
    if chosen is None:  # crowded around the anchor: nearest free spot anywhere in the image
        cx, cy, boxes = occupancy.grid(size)
        if len(cx) == 0:  # a label larger than the image: its home spot is all there is
            cx, cy = np.array([ax]), np.array([ay])
            boxes = _boxes(cx, cy, size, image_size)
        if size not in occupancy.full:
            distance = np.hypot(cx - ax, cy - ay)
            chosen = _first_free(shape, boxes, distance, blocked, label_h, ordered=False)
        if chosen is None:
            occupancy.full.add(size)  # spots only ever fill up: it stays full
            warnings.warn(
                f"no free spot for the label of instance {shape.id}: the image is too small "
                "for this many labels, so it overlaps another one; draw fewer instances or use "
                "a smaller font_size",
                stacklevel=4,
            )
            chosen = boxes[_nearest(cx, cy, ax, ay)]
    x0, y0, x1, y1 = chosen.tolist()
    return (x0, y0, x1, y1)


@lru_cache(maxsize=256)
def _offsets(label_w: int, label_h: int, search_radius: float) -> np.ndarray:
    """Candidate ``(dx, dy, distance)`` rows around an anchor, nearest first."""
    step = max(1.0, label_h / 3)
    reach = search_radius * label_h
    steps = np.arange(-math.floor(reach / step), math.floor(reach / step) + 1) * step
    dx, dy = np.meshgrid(steps, steps)
    dx, dy = dx.ravel(), dy.ravel()
    distance = np.hypot(dx, dy)
    keep = distance <= reach
    # ties (same distance) in a fixed order: above before below, left before right
    order = np.lexsort((dx[keep], dy[keep], distance[keep]))
    table = np.stack([dx[keep][order], dy[keep][order], distance[keep][order]], axis=1)
    table.flags.writeable = False
    return table


def _boxes(
    cx: np.ndarray, cy: np.ndarray, size: tuple[int, int], image_size: tuple[int, int]
) -> np.ndarray:
    """Label boxes centred on ``(cx, cy)``, shifted to lie inside the image."""
    label_w, label_h = size
    width, height = image_size
    x0 = np.rint(cx - label_w / 2)
    y0 = np.rint(cy - label_h / 2)
    # np.clip costs more than the two calls it stands for on arrays this small
    np.minimum(np.maximum(x0, 0, out=x0), max(0, width - label_w), out=x0)
    np.minimum(np.maximum(y0, 0, out=y0), max(0, height - label_h), out=y0)
    boxes = np.empty((len(x0), 4), dtype=np.int64)
    boxes[:, 0] = x0
    boxes[:, 1] = y0
    boxes[:, 2] = boxes[:, 0] + label_w
    boxes[:, 3] = boxes[:, 1] + label_h
    return boxes


def _nearest(cx: np.ndarray, cy: np.ndarray, ax: float, ay: float) -> int:
    """Index of the grid point nearest ``(ax, ay)`` (ties: the first), on a row-major grid:
    the nearest row and the nearest column, found separately."""
    columns = int(np.count_nonzero(cy == cy[0]))
    column = int(np.argmin(np.abs(cx[:columns] - ax)))
    row = int(np.argmin(np.abs(cy[::columns] - ay)))
    return row * columns + column


def _first_free(
    shape: Shape,
    boxes: np.ndarray,
    distance: np.ndarray,
    blocked: np.ndarray,
    label_h: int,
    *,
    ordered: bool,
) -> np.ndarray | None:
    """The best free box among the candidate ``boxes`` at ``distance`` from the home, or None.

    The candidates are ranked nearest first (ties by position in the arrays; ``ordered``
    says they already come in that order) and taken in chunks of ``_CHUNK``: in the first
    chunk holding a free box, the cheapest free one wins, where the cost is the distance plus
    a label height when the box centre is outside the instance.
    """
    free = np.flatnonzero(~blocked[boxes[:, 1], boxes[:, 0]])
    if len(free) == 0:
        return None
    if ordered:
        rank = int(free[0])
        end = min(len(distance), (rank // _CHUNK + 1) * _CHUNK)
        members = free[free < end]  # the free candidates of that chunk, in rank order
    else:
        first = int(free[np.argmin(distance[free])])  # nearest free; ties: first position
        nearest = distance[first]
        rank = int(np.count_nonzero(distance < nearest)) + int(
            np.count_nonzero(distance[:first] == nearest)
        )
        end = min(len(distance), (rank // _CHUNK + 1) * _CHUNK)
        # the end-th smallest distance splits the ranks below `end` from the others
        threshold = np.partition(distance, end - 1)[end - 1]
        below = distance[free] < threshold
        ties = np.flatnonzero(distance == threshold)[: end - np.count_nonzero(distance < threshold)]
        in_chunk = below | np.isin(free, ties)
        members = free[in_chunk]
        members = members[np.lexsort((members, distance[members]))]
    candidates = boxes[members]
    centre_x = (candidates[:, 0] + candidates[:, 2]) / 2
    centre_y = (candidates[:, 1] + candidates[:, 3]) / 2
    outside = ~shape.contains(centre_x, centre_y)
    cost = distance[members] + outside * label_h
    return candidates[int(np.argmin(cost))]


def _placement(
    shape: Shape,
    home: tuple[float, float],
    text: str,
    box: tuple[int, int, int, int],
    pixels: np.ndarray,
    style: ResolvedStyle,
) -> Placement:
    height, width = pixels.shape[:2]
    x0, y0 = box[0], box[1]
    x1, y1 = min(box[2], width), min(box[3], height)  # a label larger than the image is cut
    ax, ay = shape.anchor
    region = pixels[y0:y1, x0:x1]
    background = cv2.mean(region)[:3] if region.size else (0.0, 0.0, 0.0)
    box_color = style.box_color
    if box_color == "auto":
        box_color = _contrasting(background)
    text_color = style.text_color
    if text_color == "auto":
        # the box colour as it appears over the pixels under the label
        alpha = style.box_alpha
        text_color = _contrasting(
            (
                alpha * box_color[0] + (1 - alpha) * background[0],
                alpha * box_color[1] + (1 - alpha) * background[1],
                alpha * box_color[2] + (1 - alpha) * background[2],
            )
        )
    hx, hy = home
    moved = not (x0 <= hx <= x1 and y0 <= hy <= y1)
    leader = None
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    label_h = y1 - y0
    if moved and math.hypot(cx - hx, cy - hy) > style.leader_distance * label_h:
        end = (float(min(max(ax, x0), x1)), float(min(max(ay, y0), y1)))
        leader = ((float(ax), float(ay)), end)
    # colours are int tuples already: validated style colours, or black / white
    return Placement(
        id=shape.id,
        text=text,
        anchor=(float(ax), float(ay)),
        box=(x0, y0, x1, y1),
        color=instance_color(shape.id),
        box_color=box_color,
        text_color=text_color,
        moved=moved,
        leader=leader,
    )


def _linear(channel: float) -> float:
    """sRGB channel (0..255) -> linear light (0..1)."""
    value = channel / 255
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def _contrasting(rgb: tuple[float, ...]) -> RGB:
    """Black or white, whichever has the higher WCAG contrast ratio with ``rgb``."""
    # WCAG relative luminance
    luminance = 0.2126 * _linear(rgb[0]) + 0.7152 * _linear(rgb[1]) + 0.0722 * _linear(rgb[2])
    with_black = (luminance + 0.05) / 0.05
    with_white = 1.05 / (luminance + 0.05)
    return _BLACK if with_black > with_white else _WHITE
