"""Which things are in an image, and which numeric ID each one carries.

:class:`Instances` holds the instances of one image (all of one *kind*: masks, boxes, polygons
or points) with their IDs -- the numbers that Set-of-Marks prompts show on the image and that
the text refers to as ``[1]``, ``[3]``.  :class:`Tracks` holds one :class:`Instances` per video
frame, sharing IDs across frames.

Coordinates are pixels, ``x`` to the right and ``y`` down.  Boxes are ``(x0, y0, x1, y1)``
corners; the box derived from a mask covers whole pixels, so a mask whose pixels span columns
3..5 has ``x0 = 3, x1 = 6`` (COCO's convention, ``x1 = x + w``).  Polygon vertices use OpenCV's
convention (pixel centres at integer coordinates), and the box of a polygon is the extent of its
vertices.

Geometry that leaves the image is clipped with a :class:`GeometryWarning` (boxes, polygon
boxes) or refused (points); everything else that is wrong raises
:class:`~instit.errors.InstancesError` (or :class:`~instit.errors.InstitTypeError` for a wrong
type) naming the instance ID.  Inputs are always copied; arrays handed out are read-only.
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from instit._annotation_formats import (
    FORMATS,
    from_annotations,
    from_wrapper,
    is_annotation,
    is_box,
    is_sink_rows,
    parse_key,
    split_mapping,
    tracks_from_sink_rows,
)
from instit.errors import DependencyError, InstancesError, InstitTypeError

if TYPE_CHECKING:
    import supervision as sv

Kind = Literal["mask", "box", "polygon", "point"]
KINDS: tuple[str, ...] = ("mask", "box", "polygon", "point")
_FORMAT_VERSION = 1
MAX_ID = 2**63 - 1
"""The largest instance ID (and frame index): the largest int64, so IDs fit numpy and
supervision's ``tracker_id``."""
MAX_COORDINATE = 1e15
"""Polygon vertices with a larger magnitude are refused (no image is that large: it is a unit
error); vertices between the image and this bound are kept and clipped when rasterised."""
# the masks of one Instances decoded from RLE: at most this many times the pixel limit together
_MAX_MASK_LIMITS = 8
# a COCO RLE count of a 64-bit value takes at most 13 five-bit groups
_MAX_RLE_GROUPS = 13


class GeometryWarning(UserWarning):
    """Geometry was changed to fit the image (for example a box clipped at the image border)."""


class UnsampledFramesWarning(UserWarning):
    """Tracks have instances on source frames the video did not sample, so they are not drawn.

    ``dropped`` holds those source frame indices, ``marked`` the number of sampled frames that
    show instances.  Pass ``snap=True`` to move them to the nearest sampled frame instead.
    """

    def __init__(self, message: str, dropped: tuple[int, ...] = (), marked: int = 0) -> None:
        super().__init__(message)
        self.dropped = dropped
        self.marked = marked


class UnknownIdError(InstancesError, KeyError):
    """An instance ID that is not present was asked for (also a :class:`KeyError`)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


# -- small validators ------------------------------------------------------------------------


def _parse_id(value: object, what: str = "instance id") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InstitTypeError(
            f"{what} {value!r} is a {type(value).__name__}; IDs must be positive integers "
            "such as 1, 2, 3 (the numbers shown on the marks)"
        )
    number = int(value)
    if number <= 0:
        raise InstancesError(
            f"{what} {number} is not positive; IDs must be positive integers such as 1, 2, 3"
        )
    if number > MAX_ID:
        raise InstancesError(
            f"{what} {number} is larger than {MAX_ID} (the largest int64); IDs must fit a "
            "64-bit integer: renumber the instances, e.g. with relabel() or 1, 2, 3 ..."
        )
    return number


def _parse_ids(ids: object, count: int, what: str) -> tuple[int, ...]:
    """Validate ``ids`` for ``count`` geometries (default ``1..count``)."""
    if ids is None:
        return tuple(range(1, count + 1))
    ids = _as_array_if_array_like(ids)
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise InstancesError(f"ids must be one-dimensional, got shape {ids.shape}")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InstitTypeError(
            f"ids must be a sequence of positive integers, got {type(ids).__name__}"
        )
    values = list(ids)
    if len(values) != count:
        raise InstancesError(
            f"got {len(values)} ids for {count} {what}; pass exactly one ID per "
            + ("box" if what == "boxes" else what[:-1])
        )
    parsed: list[int] = []
    seen: set[int] = set()
    for value in values:
        number = _parse_id(value)
        if number in seen:
            raise InstancesError(
                f"instance id {number} appears more than once; IDs must be unique per image"
            )
        seen.add(number)
        parsed.append(number)
    return tuple(parsed)


def _as_array_if_array_like(value: object) -> object:
    """numpy arrays for array-likes such as torch tensors; anything else unchanged."""
    if isinstance(value, np.ndarray) or not hasattr(value, "__array__"):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return value
    try:
        return np.asarray(value)
    except (TypeError, RuntimeError) as exc:  # e.g. a CUDA tensor
        raise InstitTypeError(
            f"cannot read a {type(value).__name__} as an array ({exc}); move it to the CPU "
            "and convert it with .cpu().numpy() first"
        ) from exc


def _parse_image_size(size: object, *, required: bool = False) -> tuple[int, int] | None:
    if size is None:
        if required:
            raise InstitTypeError("image_size is required: pass (width, height) of the image")
        return None
    if isinstance(size, np.ndarray):
        size = size.tolist()
    if not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2:
        raise InstitTypeError(f"image_size must be a (width, height) pair, got {size!r}")
    width, height = size
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InstitTypeError(f"image_size must hold two integers, got {size!r}")
    if width <= 0 or height <= 0:
        raise InstancesError(f"image_size {tuple(size)} must be positive (width, height)")
    return int(width), int(height)


def _ndim(value: object) -> int:
    """``np.ndim(value)``, or -1 for values numpy cannot read as an array (ragged lists)."""
    try:
        return int(np.ndim(value))
    except (TypeError, ValueError):
        return -1


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _fmt(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _float_rows(data: object, width: int, what: str) -> np.ndarray:
    """``data`` as a new ``(N, width)`` float64 array (an empty sequence gives ``(0, width)``)."""
    try:
        array = np.asarray(data).astype(np.float64)  # always a copy
    except (TypeError, ValueError) as exc:
        raise InstitTypeError(
            f"{what} must be a (N, {width}) array of numbers, could not convert: {exc}"
        ) from exc
    if array.size == 0:
        return np.zeros((0, width), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != width:
        raise InstancesError(f"{what} must have shape (N, {width}), got {array.shape}")
    return array


# -- COCO run-length encoding ----------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[int]:
    """Column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = mask.ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _counts_to_string(counts: Sequence[int]) -> str:
    """COCO's compressed counts: deltas (from the 3rd run) in 5-bit groups, ASCII 48..111."""
    chars: list[str] = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
    return "".join(chars)


def _string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    position = 0
    while position < len(text):
        value = 0
        shift = 0
        more = True
        while more:
            if position >= len(text):
                raise ValueError("the string ends in the middle of a number")
            if shift >= 5 * _MAX_RLE_GROUPS:
                raise ValueError(
                    f"a number at character {position} has more than {_MAX_RLE_GROUPS} "
                    "characters, beyond any 64-bit run length"
                )
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {text[position]!r} is not a COCO RLE character")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def encode_rle(mask: np.ndarray, *, compressed: bool = True) -> dict[str, Any]:
    """Encode an ``HxW`` mask as a COCO RLE dict ``{"size": [h, w], "counts": ...}``.

    ``counts`` is COCO's compressed string when ``compressed`` (what pycocotools writes to
    JSON), else the list of column-major run lengths, starting with a run of zeros.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InstancesError(f"an RLE mask must be two-dimensional (HxW), got {array.shape}")
    runs = _runs(array.astype(bool, copy=False))
    counts: str | list[int] = _counts_to_string(runs) if compressed else runs
    return {"size": [int(array.shape[0]), int(array.shape[1])], "counts": counts}


def _check_pixels(pixels: int, what: str, times: int = 1) -> None:
    """Refuse allocating masks of more than ``times`` :func:`instit.media.pixel_limit` pixels."""
    from instit.media import pixel_limit, too_large_error

    limit = pixel_limit()
    if limit is not None and pixels > times * limit:
        raise too_large_error(what, pixels=pixels, times=times, error=InstancesError)


def _declared_pixels(rle: object) -> int:
    """Pixels of an RLE's declared ``"size"`` (0 when it is malformed: decoding says why)."""
    size = rle.get("size") if isinstance(rle, Mapping) else None
    if (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(v, numbers.Integral) and v >= 0 for v in size)
    ):
        return int(size[0]) * int(size[1])
    return 0


def decode_rle(rle: Mapping[str, Any], *, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string, bytes, or list counts) to an ``HxW`` bool mask.

    The declared ``"size"`` is checked before anything is decoded: it must equal
    ``image_size`` (``(width, height)``) when given, and masks above
    :func:`instit.media.pixel_limit` pixels are refused (raise ``PIL.Image.MAX_IMAGE_PIXELS``
    for larger ones).  Every run length must fit the mask.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InstancesError(
            'an RLE must be a dict with "size": [height, width] and "counts"; '
            f"got {type(rle).__name__}"
        )
    size = rle["size"]
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(v, numbers.Integral) and v >= 0 for v in size)
    ):
        raise InstancesError(f'RLE "size" must be [height, width] integers, got {size!r}')
    height, width = int(size[0]), int(size[1])
    expected = _parse_image_size(image_size)
    if expected is not None and expected != (width, height):
        raise InstancesError(
            f'RLE "size" [{height}, {width}] (height, width) is a {width}x{height} mask but '
            f"the image is {expected[0]}x{expected[1]}; pass the RLEs made for this image"
        )
    _check_pixels(width * height, f"an RLE mask of {width}x{height}")
    raw = rle["counts"]
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if isinstance(raw, str):
        try:
            counts = _string_to_counts(raw)
        except ValueError as exc:
            raise InstancesError(f'RLE "counts" string is corrupt: {exc}') from exc
    elif isinstance(raw, Sequence):
        if not all(isinstance(v, numbers.Integral) for v in raw):
            raise InstancesError('RLE "counts" list must hold integers')
        counts = [int(v) for v in raw]
    else:
        raise InstancesError(f'RLE "counts" must be a string or a list, got {type(raw).__name__}')
    total = height * width
    if any(count < 0 for count in counts):
        raise InstancesError('RLE "counts" holds a negative run length; the RLE is corrupt')
    covered = sum(counts)
    if covered != total:
        raise InstancesError(
            f'RLE "counts" cover {covered} pixels but "size" {height}x{width} has '
            f"{total}; the RLE does not belong to this size"
        )
    runs = np.asarray(counts, dtype=np.int64)  # each run fits: 0 <= run <= total
    values = (np.arange(runs.size) % 2).astype(bool)
    flat = np.repeat(values, runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)


# -- polygons --------------------------------------------------------------------------------


def _parse_ring(data: object, instance_id: int) -> np.ndarray:
    try:
        ring = np.array(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InstitTypeError(
            f"instance {instance_id}: polygon ring is not an array of numbers ({exc})"
        ) from exc
    if ring.ndim == 1 and ring.size % 2 == 0:  # COCO flat [x0, y0, x1, y1, ...]
        ring = ring.reshape(-1, 2)
    if ring.ndim != 2 or ring.shape[1] != 2:
        raise InstancesError(
            f"instance {instance_id}: polygon ring has shape {ring.shape}; pass (K, 2) "
            "points or a flat [x0, y0, x1, y1, ...] list"
        )
    if ring.shape[0] < 3:
        raise InstancesError(
            f"instance {instance_id}: polygon ring has {ring.shape[0]} points; a polygon "
            "needs at least 3 (use from_points for single points)"
        )
    if not np.isfinite(ring).all():
        raise InstancesError(f"instance {instance_id}: polygon contains NaN or infinity")
    if (np.abs(ring) > MAX_COORDINATE).any():
        raise InstancesError(
            f"instance {instance_id}: polygon has a vertex beyond +-{MAX_COORDINATE:g} pixels "
            f"({_fmt(ring[np.abs(ring).max(axis=1).argmax()])}); pass pixel coordinates "
            "(normalised or projected coordinates must be converted first)"
        )
    # all points on one line (not a zero signed area: a bowtie's two lobes cancel out)
    spread = ring - ring[0]
    far = spread[int(np.argmax(np.abs(spread).sum(axis=1)))]
    if not (spread[:, 0] * far[1] - spread[:, 1] * far[0]).any():
        raise InstancesError(
            f"instance {instance_id}: polygon ring has zero area (all points on a line); "
            "drop it or pass a real outline"
        )
    return ring


def _parse_polygon(data: object, instance_id: int) -> list[np.ndarray]:
    """One polygon: a single ring ((K, 2) or flat) or a list of rings."""
    try:
        array = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        array = None  # ragged: a list of rings of different lengths
    if array is not None and (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 2)):
        return [_parse_ring(array, instance_id)]
    if array is not None and array.ndim == 2 and array.shape[1] % 2:
        raise InstancesError(
            f"instance {instance_id}: polygon has shape {array.shape}; pass (K, 2) points, a "
            "flat [x0, y0, x1, y1, ...] list or a list of such rings"
        )
    if isinstance(data, np.ndarray) and data.ndim == 3:
        return [_parse_ring(ring, instance_id) for ring in data]
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InstitTypeError(
            f"instance {instance_id}: a polygon must be a (K, 2) array or a list of rings, "
            f"got {type(data).__name__}"
        )
    rings = [_parse_ring(ring, instance_id) for ring in data]
    if not rings:
        raise InstancesError(f"instance {instance_id}: polygon has no rings")
    return rings


# OpenCV takes vertices as int32 in 1/16 pixel (shift=4)
_CV_LIMIT = (2**31 - 1) // 16 - 1


def _clip_ring(ring: np.ndarray, low: float, high_x: float, high_y: float) -> np.ndarray:
    """``ring`` cut to the rectangle ``[low, high_x] x [low, high_y]`` (Sutherland-Hodgman).

    Cutting at a line keeps the winding number of every point on the kept side, so the fill
    (even-odd or nonzero) inside the rectangle is unchanged.
    """
    points = [(float(x), float(y)) for x, y in ring]
    for axis, limit, sign in ((0, low, 1.0), (0, high_x, -1.0), (1, low, 1.0), (1, high_y, -1.0)):
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


def _rasterise(rings: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """Fill ``rings`` into a new ``HxW`` bool mask with the **even-odd** rule: inner rings are
    holes, and where a self-intersecting ring (a bowtie, a pentagram) crosses itself, regions
    covered an even number of times are outside.

    Rings reaching far beyond the image are first cut to a margin around it, so vertices up to
    :data:`MAX_COORDINATE` rasterise exactly (OpenCV's fixed-point vertices would overflow).
    """
    import cv2

    margin = width + height + 16
    low, high_x, high_y = (
        max(-margin, -_CV_LIMIT),
        min(width + margin, _CV_LIMIT),
        min(height + margin, _CV_LIMIT),
    )
    canvas = np.zeros((height, width), dtype=np.uint8)
    fixed = []
    for ring in rings:
        if (ring < low).any() or (ring[:, 0] > high_x).any() or (ring[:, 1] > high_y).any():
            ring = _clip_ring(ring, low, high_x, high_y)
            if len(ring) < 3:
                continue
        fixed.append(np.rint(ring * 16).astype(np.int32).reshape(-1, 1, 2))
    if fixed:
        cv2.fillPoly(canvas, fixed, 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _contours(mask: np.ndarray, box: np.ndarray) -> list[np.ndarray]:
    """Outer and hole outlines of ``mask`` (OpenCV convention), cropped to ``box`` for speed."""
    import cv2

    x0, y0, x1, y1 = (int(v) for v in box)
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)  # 1-pixel zero border
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    found, _ = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    offset = np.array([x0 - 1, y0 - 1], dtype=np.float64)
    return [_readonly(c.reshape(-1, 2).astype(np.float64) + offset) for c in found]


def _mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _mask_to_bool(masks: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    """A new bool copy of ``(N, H, W)`` masks (or one ``HxW`` mask, ``ids`` of length 1).

    bool is used as it is, integers count non-zero as inside, floats must be exactly 0 or 1.
    """
    if masks.dtype == np.bool_:
        return masks.copy()
    if np.issubdtype(masks.dtype, np.integer):
        return masks != 0
    if np.issubdtype(masks.dtype, np.floating):
        invalid = (masks != 0) & (masks != 1)
        if invalid.any():
            per_mask = invalid.reshape(len(ids), -1).any(axis=1) if masks.ndim == 3 else [True]
            bad = ids[int(np.flatnonzero(per_mask)[0])]
            raise InstancesError(
                f"instance {bad}: float mask holds values other than 0 and 1 "
                "(probabilities or logits?); threshold it first, e.g. mask > 0.5"
            )
        return masks == 1
    raise InstitTypeError(
        f"instance {ids[0] if ids else '?'}: mask has dtype {masks.dtype}; pass bool or 0/1 numbers"
    )


def _import_supervision() -> Any:
    try:
        import supervision
    except ImportError as exc:
        raise DependencyError(
            "this needs the optional 'supervision' package; install it with "
            "pip install 'instit[supervision]'"
        ) from exc
    return supervision


def _is_supervision_detections(obj: object) -> bool:
    cls = type(obj)
    return cls.__name__ == "Detections" and cls.__module__.startswith("supervision")


# -- one instance ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Instance:
    """One instance of an image: its ID, kind and geometry (read-only arrays).

    ``box`` is always present (derived for masks, polygons and points); ``mask`` is set for
    masks and polygons (rasterised); ``polygon`` for polygons; ``point`` for points.
    ``label`` (the phrase a detector matched) and ``score`` (its confidence) are set when the
    instances came from a detector or segmenter (see :meth:`Instances.with_labels`).
    """

    id: int
    kind: Kind
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    polygon: list[np.ndarray] | None = None
    point: tuple[float, float] | None = None
    label: str | None = None
    score: float | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instance):
            return NotImplemented
        if (self.id, self.kind, self.box, self.point, self.label, self.score) != (
            other.id,
            other.kind,
            other.box,
            other.point,
            other.label,
            other.score,
        ):
            return False
        if (self.mask is None) != (other.mask is None) or (
            self.mask is not None and not np.array_equal(self.mask, other.mask)
        ):
            return False
        if self.polygon is None or other.polygon is None:
            return self.polygon is other.polygon
        return len(self.polygon) == len(other.polygon) and all(
            np.array_equal(a, b) for a, b in zip(self.polygon, other.polygon, strict=True)
        )

    def __repr__(self) -> str:
        parts = [f"id={self.id}", f"kind={self.kind!r}", f"box={_fmt(self.box)}"]
        if self.mask is not None:
            height, width = self.mask.shape
            parts.append(f"mask=<{width}x{height}, {int(self.mask.sum())} px>")
        if self.polygon is not None:
            parts.append(f"polygon=<{len(self.polygon)} ring(s)>")
        if self.point is not None:
            parts.append(f"point={_fmt(self.point)}")
        if self.label is not None:
            parts.append(f"label={self.label!r}")
        if self.score is not None:
            parts.append(f"score={self.score:.3g}")
        return "Instance(" + ", ".join(parts) + ")"


# -- the instances of one image --------------------------------------------------------------


class Instances:
    """The instances of one image, all of one kind, each with a unique positive ID.

    Build with :meth:`from_masks`, :meth:`from_boxes`, :meth:`from_polygons`,
    :meth:`from_points`, :meth:`from_rle`, :meth:`from_supervision`, :meth:`from_dict` or
    :meth:`coerce`.  Immutable: ``len()`` counts instances, iteration yields
    :class:`Instance` in the order the IDs were given, ``instances[id]`` looks one up by ID.
    """

    __slots__ = (
        "_boxes",
        "_ids",
        "_image_size",
        "_kind",
        "_labels",
        "_masks",
        "_points",
        "_polygons",
        "_scores",
    )

    def __init__(self) -> None:
        raise InstitTypeError(
            "build Instances with a constructor such as Instances.from_masks(masks), "
            "from_boxes, from_polygons, from_points, from_rle or Instances.coerce(obj)"
        )

    @classmethod
    def _make(
        cls,
        kind: str,
        ids: tuple[int, ...],
        image_size: tuple[int, int] | None,
        boxes: np.ndarray,
        *,
        masks: np.ndarray | None = None,
        polygons: list[list[np.ndarray]] | None = None,
        points: np.ndarray | None = None,
        labels: tuple[str, ...] | None = None,
        scores: np.ndarray | None = None,
    ) -> Instances:
        self = object.__new__(cls)
        self._kind = kind
        self._ids = ids
        self._image_size = image_size
        self._boxes = _readonly(boxes)
        self._masks = None if masks is None else _readonly(masks)
        self._polygons = (
            None if polygons is None else [[_readonly(r) for r in rings] for rings in polygons]
        )
        self._points = None if points is None else _readonly(points)
        self._labels = labels
        self._scores = None if scores is None else _readonly(scores)
        return self

    @classmethod
    def _from_bool_masks(cls, masks: np.ndarray, ids: tuple[int, ...]) -> Instances:
        """Instances that take ``(N, H, W)`` bool ``masks`` as they are: no copy, no checks.

        Only for instit's own producers (``instit.segment``), which pass masks they made and no
        longer write to, none of them empty, with parsed, unique ``ids``.
        """
        boxes, _ = _mask_boxes(masks)
        return cls._make("mask", ids, (masks.shape[2], masks.shape[1]), boxes, masks=masks)

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None, kind: Kind = "mask") -> Instances:
        """No instances (of ``kind``), for an image of ``image_size`` when known."""
        if kind not in KINDS:
            raise InstancesError(f"kind must be one of {KINDS}, got {kind!r}")
        size = _parse_image_size(image_size)
        masks = None
        if kind == "mask":
            height, width = (size[1], size[0]) if size else (0, 0)
            masks = np.zeros((0, height, width), dtype=bool)
        return cls._make(
            kind,
            (),
            size,
            np.zeros((0, 4)),
            masks=masks,
            polygons=[] if kind == "polygon" else None,
            points=np.zeros((0, 2)) if kind == "point" else None,
        )

    @classmethod
    def from_masks(
        cls,
        masks: object,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> Instances:
        """Instances from binary masks.

        Args:
            masks: a ``(N, H, W)`` array, a sequence of ``HxW`` arrays, or a dict
                ``{id: HxW mask}``.  bool masks are used as they are, integer masks count
                non-zero pixels as inside, float masks must hold only 0 and 1.
            ids: one positive, unique ID per mask (default ``1..N``; dict keys for a dict).
            image_size: ``(width, height)`` of the image; must match the masks when given.

        Raises:
            InstancesError: empty masks, masks of different shapes or not matching
                ``image_size``, bad IDs.
        """
        masks, ids = split_mapping(masks, ids)  # type: ignore[assignment]
        size = _parse_image_size(image_size)
        masks = _as_array_if_array_like(masks)
        if isinstance(masks, np.ndarray):
            if masks.ndim != 3:
                raise InstancesError(
                    f"masks has shape {masks.shape}; pass a (N, H, W) array or a list of HxW "
                    "masks (wrap a single mask as [mask])"
                )
            items: Sequence[Any] = masks
        elif isinstance(masks, (str, bytes)) or not isinstance(masks, Iterable):
            raise InstitTypeError(
                f"masks must be a (N, H, W) array, a list of HxW masks or a dict id -> mask, "
                f"got {type(masks).__name__}"
            )
        else:
            items = list(masks)
        id_tuple = _parse_ids(ids, len(items), "masks")
        if isinstance(masks, np.ndarray):
            stack = _mask_to_bool(masks, id_tuple)
            shape = masks.shape[1:]
        else:
            arrays = []
            shape = None
            for item, instance_id in zip(items, id_tuple, strict=True):
                try:
                    array = np.asarray(item)
                except (TypeError, ValueError) as exc:  # ragged nested lists
                    raise InstitTypeError(
                        f"instance {instance_id}: mask is not an array ({exc}); pass an HxW "
                        "array of bool or 0/1 numbers"
                    ) from exc
                if array.ndim != 2:
                    raise InstancesError(
                        f"instance {instance_id}: mask has shape {array.shape}; each mask must "
                        "be two-dimensional (HxW)"
                    )
                if shape is None:
                    shape = array.shape
                elif array.shape != shape:
                    raise InstancesError(
                        f"instance {instance_id}: mask has shape {array.shape} but the first "
                        f"mask has {shape}; all masks of an image must have the image's size"
                    )
                arrays.append(_mask_to_bool(array, (instance_id,)))
            if arrays:
                stack = np.stack(arrays)
            elif size is not None:
                stack = np.zeros((0, size[1], size[0]), dtype=bool)
            else:
                stack = np.zeros((0, 0, 0), dtype=bool)
            shape = stack.shape[1:]
        height, width = shape
        if len(id_tuple) and (height == 0 or width == 0):
            raise InstancesError(f"masks have shape {shape}; masks need pixels")
        if size is not None and len(id_tuple) and size != (width, height):
            raise InstancesError(
                f"instance {id_tuple[0]}: masks are {width}x{height} (WxH) but the image is "
                f"{size[0]}x{size[1]}; make masks for this image (resize them with "
                "nearest-neighbour interpolation)"
            )
        if size is None and height and width:
            size = (width, height)
        boxes, nonempty = _mask_boxes(stack)
        if not nonempty.all():
            bad = id_tuple[int(np.flatnonzero(~nonempty)[0])]
            raise InstancesError(
                f"instance {bad}: mask is empty (no pixel set); drop this instance or pass "
                "its real mask"
            )
        return cls._make("mask", id_tuple, size, boxes, masks=stack)

    @classmethod
    def from_boxes(
        cls,
        boxes: object,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int] | None = None,
        clip: bool = True,
    ) -> Instances:
        """Instances from ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels, or a dict
        ``{id: (x0, y0, x1, y1)}`` (IDs: ``ids``, else the dict keys, else ``1..N``).

        Boxes reaching outside the image (below 0 always, beyond ``image_size`` when known)
        are clipped with a :class:`GeometryWarning` when ``clip`` is true, else refused.

        Raises:
            InstancesError: NaN/infinite values, ``x1 < x0`` or ``y1 < y0``, boxes of zero
                width or height (also after clipping), out-of-image boxes with
                ``clip=False``, bad IDs.
        """
        boxes, ids = split_mapping(boxes, ids)  # type: ignore[assignment]
        size = _parse_image_size(image_size)
        array = _float_rows(boxes, 4, "boxes")
        id_tuple = _parse_ids(ids, len(array), "boxes")
        for row, instance_id in zip(array, id_tuple, strict=True):
            if not np.isfinite(row).all():
                raise InstancesError(f"instance {instance_id}: box {_fmt(row)} has NaN/infinity")
            if row[2] < row[0] or row[3] < row[1]:
                raise InstancesError(
                    f"instance {instance_id}: box {_fmt(row)} has x1 < x0 or y1 < y0; boxes "
                    "are (x0, y0, x1, y1) corners (for (x, y, w, h) use x1 = x + w, y1 = y + h)"
                )
        upper = np.array([np.inf, np.inf]) if size is None else np.array(size, dtype=float)
        low = np.array([0.0, 0.0, 0.0, 0.0])
        high = np.concatenate([upper, upper])
        outside = ((array < low) | (array > high)).any(axis=1)
        if outside.any():
            names = [id_tuple[i] for i in np.flatnonzero(outside)]
            where = "negative coordinates" if size is None else f"the {size[0]}x{size[1]} image"
            if not clip:
                raise InstancesError(
                    f"instance {names[0]}: box {_fmt(array[outside][0])} reaches outside "
                    f"{where}; fix the box or pass clip=True"
                )
            warnings.warn(
                f"boxes of instances {names} reach outside {where} and were clipped to it",
                GeometryWarning,
                stacklevel=2,
            )
            array = np.clip(array, low, high)
        degenerate = (array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1])
        if degenerate.any():
            index = int(np.flatnonzero(degenerate)[0])
            note = " after clipping to the image" if outside[index] else ""
            raise InstancesError(
                f"instance {id_tuple[index]}: box {_fmt(array[index])} has zero width or "
                f"height{note}; drop it or pass a box that covers part of the image"
            )
        return cls._make("box", id_tuple, size, array)

    @classmethod
    def from_polygons(
        cls,
        polygons: object,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int],
    ) -> Instances:
        """Instances from polygons (rasterised to masks on demand, so ``image_size`` is needed).

        Each polygon is a ``(K, 2)`` array/list of ``(x, y)`` vertices, a flat COCO list
        ``[x0, y0, x1, y1, ...]``, or a list of such rings, filled with the even-odd rule:
        inner rings cut holes, and self-intersecting rings (a bowtie) are filled where they
        are covered an odd number of times.  ``polygons`` may also be a dict
        ``{id: polygon}``.  Vertices outside the image are kept (the mask is cut at the
        border) and the box is clipped, with a :class:`GeometryWarning`.

        Raises:
            InstancesError: rings with fewer than 3 points, all points on one line, NaN or a
                vertex beyond :data:`MAX_COORDINATE`, polygons that do not cover any pixel of
                the image, an image above :func:`instit.media.pixel_limit` pixels, bad IDs.
        """
        polygons, ids = split_mapping(polygons, ids)  # type: ignore[assignment]
        size = _parse_image_size(image_size, required=True)
        assert size is not None
        if isinstance(polygons, (str, bytes)) or not isinstance(polygons, Iterable):
            raise InstitTypeError(
                f"polygons must be a list of polygons, got {type(polygons).__name__}"
            )
        items = list(polygons)
        id_tuple = _parse_ids(ids, len(items), "polygons")
        parsed = [_parse_polygon(item, i) for item, i in zip(items, id_tuple, strict=True)]
        width, height = size
        _check_pixels(width * height, f"the polygon masks of {width}x{height}")
        boxes = np.zeros((len(parsed), 4), dtype=np.float64)
        outside: list[int] = []
        for index, (rings, instance_id) in enumerate(zip(parsed, id_tuple, strict=True)):
            points = np.concatenate(rings)
            box = np.concatenate([points.min(axis=0), points.max(axis=0)])
            if (box[:2] < 0).any() or box[2] > width or box[3] > height:
                if not _rasterise(rings, width, height).any():
                    raise InstancesError(
                        f"instance {instance_id}: polygon lies outside the {width}x{height} "
                        "image; drop it or pass coordinates of this image"
                    )
                outside.append(instance_id)
                box = np.clip(box, 0, [width, height, width, height])
            boxes[index] = box
        if outside:
            warnings.warn(
                f"polygons of instances {outside} reach outside the {width}x{height} image; "
                "their boxes were clipped and their masks are cut at the border",
                GeometryWarning,
                stacklevel=2,
            )
        return cls._make("polygon", id_tuple, size, boxes, polygons=parsed)

    @classmethod
    def from_points(
        cls,
        points: object,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> Instances:
        """Instances from ``(N, 2)`` points ``(x, y)`` (for example clicks on objects), or a
        dict ``{id: (x, y)}``.

        Raises:
            InstancesError: NaN/infinite coordinates, points outside the image (negative, or
                beyond ``image_size`` when known), bad IDs.
        """
        points, ids = split_mapping(points, ids)  # type: ignore[assignment]
        size = _parse_image_size(image_size)
        array = _float_rows(points, 2, "points")
        id_tuple = _parse_ids(ids, len(array), "points")
        for (x, y), instance_id in zip(array, id_tuple, strict=True):
            if not (np.isfinite(x) and np.isfinite(y)):
                raise InstancesError(f"instance {instance_id}: point {_fmt((x, y))} has NaN")
            beyond = size is not None and (x > size[0] or y > size[1])
            if x < 0 or y < 0 or beyond:
                where = "the image" if size is None else f"the {size[0]}x{size[1]} image"
                raise InstancesError(
                    f"instance {instance_id}: point {_fmt((x, y))} lies outside {where}; "
                    "pass pixel coordinates of this image"
                )
        boxes = np.concatenate([array, array], axis=1)
        return cls._make("point", id_tuple, size, boxes, points=array)

    @classmethod
    def from_rle(
        cls,
        rles: object,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> Instances:
        """Instances from COCO RLE dicts ``{"size": [h, w], "counts": str | bytes | list}``.

        ``rles`` is a sequence of RLE dicts or a dict ``{id: rle}``.  Each RLE's declared size
        is checked before it is decoded: against ``image_size`` (``(width, height)``) when
        given, and against :func:`instit.media.pixel_limit` (see :func:`decode_rle`); all of
        them together may declare at most 8 times that limit (1.4 billion pixels by default).
        """
        if isinstance(rles, Mapping) and not ("counts" in rles and "size" in rles):
            rles, ids = split_mapping(rles, ids)  # type: ignore[assignment]
        if isinstance(rles, (str, bytes, Mapping)) or not isinstance(rles, Iterable):
            raise InstitTypeError(
                "rles must be a list of COCO RLE dicts (wrap a single one as [rle]), "
                f"got {type(rles).__name__}"
            )
        items = list(rles)
        id_tuple = _parse_ids(ids, len(items), "RLEs")
        size = _parse_image_size(image_size)
        total = sum(_declared_pixels(rle) for rle in items)
        _check_pixels(total, f"{len(items)} RLE masks together", times=_MAX_MASK_LIMITS)
        masks = []
        for rle, instance_id in zip(items, id_tuple, strict=True):
            try:
                masks.append(decode_rle(rle, image_size=size))
            except InstancesError as exc:
                raise InstancesError(f"instance {instance_id}: {exc}") from exc
        return cls.from_masks(masks, id_tuple, image_size=size)

    @classmethod
    def from_supervision(
        cls,
        detections: sv.Detections,
        ids: Iterable[int] | None = None,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> Instances:
        """Instances from ``supervision.Detections``.

        Uses ``detections.mask`` when present, else ``detections.xyxy``.  IDs default to
        ``detections.tracker_id`` when set, else ``1..N``.
        """
        supervision = _import_supervision()
        if not isinstance(detections, supervision.Detections):
            raise InstitTypeError(
                f"from_supervision needs supervision.Detections, got {type(detections).__name__}"
            )
        if ids is None and detections.tracker_id is not None:
            ids = np.asarray(detections.tracker_id).tolist()
        if detections.mask is not None:
            result = cls.from_masks(np.asarray(detections.mask), ids, image_size=image_size)
        else:
            result = cls.from_boxes(np.asarray(detections.xyxy), ids, image_size=image_size)
        names = detections.data.get("class_name") if detections.data else None
        confidence = detections.confidence
        if names is None and confidence is None:
            return result
        return result.with_labels(
            None if names is None else [str(n) for n in names],
            scores=None if confidence is None else np.asarray(confidence, dtype=np.float64),
        )

    @classmethod
    def coerce(cls, obj: object, image_size: tuple[int, int] | None = None) -> Instances:
        """Turn whatever a user passed as "the instances" into :class:`Instances`.

        Accepts ``None`` (no instances), :class:`Instances`, ``supervision.Detections``, a
        dict ``{id: HxW mask}``, ``{id: COCO RLE}`` or ``{id: [x0, y0, x1, y1]}`` (keys may be
        digit strings, as in JSON), a ``to_dict()`` dict, a ``(N, H, W)`` array, a list of
        ``HxW`` masks, of RLE dicts or of ``[x0, y0, x1, y1]`` boxes (IDs ``1..N``), COCO
        annotations (a list, a COCO file of one image or ``{"instances": [...]}``; IDs: their
        ``"id"``, else ``1..N``) and supervision ``JSONSink``/``CSVSink`` rows (IDs:
        ``tracker_id``, else ``1..N``).  With ``image_size`` the result is checked with
        :meth:`validate_for` and carries that size.
        """
        size = _parse_image_size(image_size)
        result = cls._coerce(obj, size)
        if size is not None:
            result.validate_for(size)
            if result._image_size is None:
                result = result._with_image_size(size)
        return result

    @classmethod
    def _coerce(cls, obj: object, size: tuple[int, int] | None) -> Instances:
        if obj is None:
            return cls.empty(size)
        if isinstance(obj, Instances):
            return obj
        if _is_supervision_detections(obj):
            return cls.from_supervision(obj, image_size=size)  # type: ignore[arg-type]
        if isinstance(obj, Mapping):
            if "instances" in obj and "kind" in obj:
                return cls.from_dict(obj)
            return cls._from_mapping(obj, size)
        if isinstance(obj, np.ndarray):
            if obj.ndim == 3:
                return cls.from_masks(obj, image_size=size)
            raise InstitTypeError(
                f"cannot tell what a {obj.shape} array means as instances; pass a (N, H, W) "
                "mask array, [mask] for one mask, or use Instances.from_boxes / from_points"
            )
        if isinstance(obj, (list, tuple)):
            if not obj:
                return cls.empty(size)
            if any(is_annotation(v) for v in obj):
                return from_annotations(obj, size)
            rle_keys = ("counts", "size")
            if all(isinstance(v, Mapping) for v in obj) and any(k in obj[0] for k in rle_keys):
                return cls.from_rle(obj, image_size=size)
            if all(is_box(v) for v in obj):
                return cls.from_boxes(obj, image_size=size)
            if all(_ndim(v) == 2 for v in obj):
                return cls.from_masks(obj, image_size=size)
        raise InstitTypeError(
            f"cannot use a {type(obj).__name__} as instances; pass Instances, "
            "supervision.Detections, a dict {id: mask}, a (N, H, W) mask array, a list of "
            "masks or of [x0, y0, x1, y1] boxes, or build them with Instances.from_boxes / "
            f"from_polygons / from_points. From JSON or CSV: {FORMATS}"
        )

    @classmethod
    def _from_mapping(cls, obj: Mapping[Any, Any], size: tuple[int, int] | None) -> Instances:
        """A dict that is not ``to_dict()`` output: one RLE, an annotation file, or
        ``{id: geometry}`` of one kind (RLEs, boxes or masks)."""
        if "counts" in obj and "size" in obj:
            return cls.from_rle([obj], image_size=size)
        wrapped = from_wrapper(obj, size)
        if wrapped is not None:
            return wrapped
        ids = [parse_key(key) for key in obj]
        values = list(obj.values())
        if values and all(isinstance(v, Mapping) for v in values):
            return cls.from_rle(values, ids, image_size=size)
        if values and all(is_box(v) for v in values):
            return cls.from_boxes(values, ids, image_size=size)
        return cls.from_masks(values, ids, image_size=size)

    # -- access ------------------------------------------------------------------------------

    @property
    def ids(self) -> tuple[int, ...]:
        """The IDs, in the order given."""
        return self._ids

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the image when known."""
        return self._image_size

    @property
    def kind(self) -> str:
        """``"mask"``, ``"box"``, ``"polygon"`` or ``"point"``."""
        return self._kind

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[Instance]:
        for index in range(len(self._ids)):
            yield self._instance(index)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._ids

    def _index(self, instance_id: object) -> int:
        if isinstance(instance_id, (bool, np.bool_)) or not isinstance(
            instance_id, numbers.Integral
        ):
            raise InstitTypeError(
                f"look instances up by integer ID, got {type(instance_id).__name__}; "
                "use .select(ids) for several"
            )
        try:
            return self._ids.index(int(instance_id))
        except ValueError:
            raise UnknownIdError(
                f"no instance with id {int(instance_id)}; the IDs are {list(self._ids)}"
            ) from None

    def __getitem__(self, instance_id: int) -> Instance:
        """The instance with ID ``instance_id`` (:class:`UnknownIdError` when absent)."""
        return self._instance(self._index(instance_id))

    def _instance(self, index: int) -> Instance:
        box = tuple(float(v) for v in self._boxes[index])
        mask = polygon = point = None
        if self._masks is not None:
            mask = self._masks[index]
        elif self._polygons is not None:
            polygon = list(self._polygons[index])
            assert self._image_size is not None
            mask = _readonly(_rasterise(polygon, *self._image_size))
        if self._points is not None:
            point = (float(self._points[index, 0]), float(self._points[index, 1]))
        label = None if self._labels is None else self._labels[index]
        score = None if self._scores is None else float(self._scores[index])
        return Instance(self._ids[index], self._kind, box, mask, polygon, point, label, score)  # type: ignore[arg-type]

    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float boxes ``(x0, y0, x1, y1)`` (read-only)."""
        return self._boxes

    def masks(self) -> np.ndarray | None:
        """``(N, H, W)`` bool masks (read-only); polygons are rasterised; ``None`` for
        boxes and points."""
        if self._masks is not None:
            return self._masks
        if self._polygons is None:
            return None
        assert self._image_size is not None
        width, height = self._image_size
        stack = np.zeros((len(self._polygons), height, width), dtype=bool)
        for index, rings in enumerate(self._polygons):
            stack[index] = _rasterise(rings, width, height)
        return _readonly(stack)

    def polygons(self) -> list[list[np.ndarray]] | None:
        """Outlines per instance: a list of ``(K, 2)`` rings (outer and hole outlines).

        Stored rings for polygons, traced with ``cv2.findContours`` for masks, ``None`` for
        boxes and points.
        """
        if self._polygons is not None:
            return [list(rings) for rings in self._polygons]
        if self._masks is None:
            return None
        return [_contours(mask, box) for mask, box in zip(self._masks, self._boxes, strict=True)]

    def points(self) -> np.ndarray | None:
        """``(N, 2)`` points for point instances (read-only), else ``None``."""
        return self._points

    # -- derived Instances -------------------------------------------------------------------

    def select(self, ids: Iterable[int]) -> Instances:
        """The instances with ``ids``, in that order (:class:`UnknownIdError` for absent IDs)."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InstitTypeError(f"select needs a list of IDs, got {type(ids).__name__}")
        requested = list(ids)
        wanted = _parse_ids(requested, len(requested), "ids")
        indices = [self._index(i) for i in wanted]
        return self._take(indices, wanted)

    def _take(self, indices: list[int], ids: tuple[int, ...]) -> Instances:
        take = np.asarray(indices, dtype=np.intp)
        return Instances._make(
            self._kind,
            ids,
            self._image_size,
            self._boxes[take],
            masks=None if self._masks is None else self._masks[take],
            polygons=None if self._polygons is None else [self._polygons[i] for i in indices],
            points=None if self._points is None else self._points[take],
            labels=None if self._labels is None else tuple(self._labels[i] for i in indices),
            scores=None if self._scores is None else self._scores[take],
        )

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The phrase each instance was found with (detectors), in ID order; ``None`` if unset."""
        return self._labels

    @property
    def scores(self) -> np.ndarray | None:
        """``(N,)`` float confidence per instance (read-only); ``None`` if unset."""
        return self._scores

    def with_labels(
        self, labels: Sequence[str] | None = None, *, scores: object = None
    ) -> Instances:
        """The same instances with per-instance ``labels`` (phrases) and/or ``scores``.

        Either may be ``None`` to keep the current value.  Both are kept through
        :meth:`select`, iteration, :meth:`to_dict` / :meth:`from_dict` and
        :meth:`to_supervision` / :meth:`from_supervision` (``data["class_name"]`` and
        ``confidence``).

        Raises:
            InstancesError: not one label / score per instance, or a non-finite score.
            InstitTypeError: a label that is not a string.
        """
        result = Instances._make(  # shares the read-only arrays: nothing is copied
            self._kind,
            self._ids,
            self._image_size,
            self._boxes,
            masks=self._masks,
            polygons=self._polygons,
            points=self._points,
            labels=self._labels,
            scores=self._scores,
        )
        if labels is not None:
            if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
                raise InstitTypeError(
                    "labels must be a list of strings, one per instance, got "
                    f"{type(labels).__name__}"
                )
            values = list(labels)
            if len(values) != len(self._ids):
                raise InstancesError(
                    f"got {len(values)} labels for {len(self._ids)} instances; pass one per "
                    "instance"
                )
            for value, instance_id in zip(values, self._ids, strict=True):
                if not isinstance(value, str):
                    raise InstitTypeError(
                        f"instance {instance_id}: label {value!r} is a {type(value).__name__}, "
                        "not a string"
                    )
            result._labels = tuple(values)
        if scores is not None:
            try:
                array = np.asarray(_as_array_if_array_like(scores), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InstitTypeError(
                    f"scores must be numbers, one per instance, could not convert: {exc}"
                ) from exc
            if len(array) != len(self._ids):
                raise InstancesError(
                    f"got {len(array)} scores for {len(self._ids)} instances; pass one per instance"
                )
            if not np.isfinite(array).all():
                bad = self._ids[int(np.flatnonzero(~np.isfinite(array))[0])]
                raise InstancesError(f"instance {bad}: score is NaN or infinite")
            result._scores = _readonly(array)
        return result

    def relabel(self, mapping: Mapping[int, int]) -> Instances:
        """The same instances with IDs renamed by ``mapping`` (``{old: new}``; others kept)."""
        if not isinstance(mapping, Mapping):
            raise InstitTypeError(f"relabel needs a dict {{old: new}}, got {type(mapping)}")
        for old in mapping:
            self._index(old)
        new_ids = [mapping.get(i, i) for i in self._ids]
        checked = _parse_ids(new_ids, len(new_ids), "ids")
        return self._take(list(range(len(self._ids))), checked)

    def _with_image_size(self, size: tuple[int, int]) -> Instances:
        result = self._take(list(range(len(self._ids))), self._ids)
        result._image_size = size
        return result

    def validate_for(self, image_size: tuple[int, int]) -> None:
        """Raise :class:`InstancesError` unless every instance fits an image of ``image_size``.

        ``image_size`` is ``(width, height)``; see :func:`instit.media.image_size`.
        """
        size = _parse_image_size(image_size, required=True)
        assert size is not None
        width, height = size
        if self._image_size is not None and self._image_size != size:
            first = f"instance {self._ids[0]}: " if self._ids else ""
            raise InstancesError(
                f"{first}instances were made for a {self._image_size[0]}x"
                f"{self._image_size[1]} image but this image is {width}x{height}; pass the "
                "image they belong to, or rescale the instances"
            )
        limits = np.array([width, height, width, height], dtype=float)
        tolerance = 1e-6
        bad = ((self._boxes < -tolerance) | (self._boxes > limits + tolerance)).any(axis=1)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise InstancesError(
                f"instance {self._ids[index]}: {self._kind} with box "
                f"{_fmt(self._boxes[index])} does not fit the {width}x{height} image; pass "
                "the image the instances belong to"
            )

    # -- interop and serialisation -----------------------------------------------------------

    def to_supervision(self) -> sv.Detections:
        """``supervision.Detections`` with ``xyxy``, ``mask`` (masks/polygons) and
        ``tracker_id`` = the IDs."""
        supervision = _import_supervision()
        masks = self.masks()
        data = {} if self._labels is None else {"class_name": np.array(self._labels, dtype=str)}
        return supervision.Detections(
            xyxy=np.array(self._boxes, dtype=np.float32).reshape(-1, 4),
            mask=None if masks is None else np.array(masks),
            tracker_id=np.array(self._ids, dtype=int),
            confidence=None if self._scores is None else np.array(self._scores),
            data=data,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; masks are stored as compressed COCO RLE."""
        items: list[dict[str, Any]] = []
        for index, instance_id in enumerate(self._ids):
            item: dict[str, Any] = {"id": instance_id, "box": self._boxes[index].tolist()}
            if self._masks is not None:
                item["mask"] = encode_rle(self._masks[index])
            if self._polygons is not None:
                item["polygon"] = [ring.tolist() for ring in self._polygons[index]]
            if self._points is not None:
                item["point"] = self._points[index].tolist()
            if self._labels is not None:
                item["label"] = self._labels[index]
            if self._scores is not None:
                item["score"] = float(self._scores[index])
            items.append(item)
        return {
            "format": "instit.instances",
            "version": _FORMAT_VERSION,
            "kind": self._kind,
            "image_size": None if self._image_size is None else list(self._image_size),
            "instances": items,
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instances:
        """Rebuild :class:`Instances` from :meth:`to_dict` output, or read another JSON-ready
        dict :meth:`coerce` accepts (``{"1": [x0, y0, x1, y1]}``, ``{"1": rle}``, a COCO
        file of one image, ``{"instances": [COCO annotations]}``)."""
        if not isinstance(data, Mapping):
            raise InstitTypeError(f"from_dict needs a dict, got {type(data).__name__}")
        if "kind" not in data and data.get("format") != "instit.instances":
            return cls._from_mapping(data, None)
        for key in ("kind", "instances"):
            if key not in data:
                raise InstancesError(f"instances dict has no {key!r} field; pass to_dict() output")
        kind = data["kind"]
        size = _parse_image_size(data.get("image_size"))
        items = data["instances"]
        if kind not in KINDS:
            raise InstancesError(f"instances dict has kind {kind!r}; expected one of {KINDS}")
        if not isinstance(items, Sequence) or not all(isinstance(i, Mapping) for i in items):
            raise InstancesError('"instances" must be a list of {"id": ..., ...} dicts')
        field = {"mask": "mask", "box": "box", "polygon": "polygon", "point": "point"}[kind]
        for position, item in enumerate(items):
            if "id" not in item or field not in item:
                name = item.get("id", f"at position {position}")
                raise InstancesError(
                    f"instance {name}: missing {'id' if 'id' not in item else field!r}"
                )
        ids = [item["id"] for item in items]
        values = [item[field] for item in items]
        if not items:
            return cls.empty(size, kind)
        if kind == "mask":
            result = cls.from_rle(values, ids, image_size=size)
        elif kind == "box":
            result = cls.from_boxes(values, ids, image_size=size, clip=False)
        elif kind == "polygon":
            if size is None:
                raise InstancesError("polygon instances dict needs an 'image_size' field")
            result = cls.from_polygons(values, ids, image_size=size)
        else:
            result = cls.from_points(values, ids, image_size=size)
        return result.with_labels(
            _optional_field(items, "label"), scores=_optional_field(items, "score")
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Instances:
        """Rebuild :class:`Instances` from :meth:`to_json` output."""
        return cls.from_dict(_parse_json(text, "instances"))

    # -- comparison and display --------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instances):
            return NotImplemented
        return (
            (self._kind, self._ids, self._image_size)
            == (other._kind, other._ids, other._image_size)
            and np.array_equal(self._boxes, other._boxes)
            and _same_arrays(self._masks, other._masks)
            and _same_arrays(self._points, other._points)
            and _same_polygons(self._polygons, other._polygons)
            and self._labels == other._labels
            and _same_arrays(self._scores, other._scores)
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # rebuild through _make so unpickled arrays are read-only again
        return (
            _rebuild_instances,
            (
                self._kind,
                self._ids,
                self._image_size,
                self._boxes,
                self._masks,
                self._polygons,
                self._points,
                self._labels,
                self._scores,
            ),
        )

    __hash__ = None  # type: ignore[assignment]

    def show(self, image: object = None) -> Any:
        """A PIL image of the marks: on ``image`` when given, else on a neutral grey canvas."""
        from instit.marks.views import instances_view

        return instances_view(self, image)

    def _repr_png_(self) -> bytes | None:
        from instit.marks.views import png_bytes

        return None if self._image_size is None and not len(self) else png_bytes(self.show())

    def __repr__(self) -> str:
        return (
            f"Instances(kind={self._kind!r}, ids={list(self._ids)}, image_size={self._image_size})"
        )


def _parse_json(text: object, what: str) -> Any:
    """``json.loads(text)`` with every failure (bad JSON, deep nesting, huge numbers) as an
    :class:`InstancesError`."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise InstitTypeError(
            f"{what} JSON must be a str or bytes, got {type(text).__name__}; for a dict use "
            "from_dict"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, digits
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InstancesError(
            f"{what} JSON cannot be read ({detail}); pass the text to_json() wrote"
        ) from exc


def _same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(a, b)


def _same_polygons(a: list[list[np.ndarray]] | None, b: list[list[np.ndarray]] | None) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(
        len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _rebuild_instances(
    kind: str,
    ids: tuple[int, ...],
    image_size: tuple[int, int] | None,
    boxes: np.ndarray,
    masks: np.ndarray | None,
    polygons: list[list[np.ndarray]] | None,
    points: np.ndarray | None,
    labels: tuple[str, ...] | None = None,
    scores: np.ndarray | None = None,
) -> Instances:
    return Instances._make(
        kind,
        ids,
        image_size,
        boxes,
        masks=masks,
        polygons=polygons,
        points=points,
        labels=labels,
        scores=scores,
    )


def _optional_field(items: Sequence[Mapping[str, Any]], key: str) -> list[Any] | None:
    """``[item[key], ...]`` when every item has ``key``, ``None`` when none has it."""
    present = [key in item for item in items]
    if not any(present):
        return None
    if not all(present):
        missing = items[present.index(False)].get("id")
        raise InstancesError(
            f"instance {missing}: has no {key!r} while other instances do; give every "
            f"instance a {key!r} or none"
        )
    return [item[key] for item in items]


# -- video -----------------------------------------------------------------------------------


def _parse_frame_index(value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InstitTypeError(
            f"frame index {value!r} is a {type(value).__name__}; frame indices are integers "
            "0, 1, 2, ... (0-based)"
        )
    if value < 0:
        raise InstancesError(f"frame index {int(value)} is negative; frame indices start at 0")
    if value > MAX_ID:
        raise InstancesError(
            f"frame index {int(value)} is larger than {MAX_ID} (the largest int64); pass the "
            "frame's position in the video"
        )
    return int(value)


class Tracks(Mapping[int, Instances]):
    """Instances of a video: one :class:`Instances` per frame, sharing IDs across frames.

    A read-only mapping ``frame_index -> Instances`` (0-based frame numbers of the source, or
    positions in a list of frames).  An ID may be absent in some frames and come back later.
    Frames without an entry have no instances (:meth:`at` returns empty Instances for them).
    Values may be anything :meth:`Instances.coerce` accepts.  With ``image_size`` every
    frame is checked against it (and carries it); without, frames that know their size must
    agree.
    """

    def __init__(
        self, frames: Mapping[int, object], *, image_size: tuple[int, int] | None = None
    ) -> None:
        if not isinstance(frames, Mapping):
            raise InstitTypeError(
                f"Tracks needs a dict {{frame_index: instances}}, got {type(frames).__name__}; "
                "use Tracks.from_list(...) for one entry per frame"
            )
        size = _parse_image_size(image_size)
        parsed: dict[int, Instances] = {}
        for key in frames:
            index = _parse_frame_index(parse_key(key, "frame index"))
            try:
                parsed[index] = Instances.coerce(frames[key], image_size=size)
            except (InstancesError, InstitTypeError) as exc:
                raise type(exc)(f"frame {index}: {exc}") from exc
        sizes = {i: f.image_size for i, f in parsed.items() if f.image_size is not None}
        if len(set(sizes.values())) > 1:
            (first, a), (second, b) = _two_different(sizes)
            raise InstancesError(
                f"frame {first} is {a[0]}x{a[1]} but frame {second} is {b[0]}x{b[1]}; all "
                "frames of a video have the same size"
            )
        self._frames = dict(sorted(parsed.items()))
        self._image_size = size if size is not None else next(iter(sizes.values()), None)

    @classmethod
    def from_list(
        cls, frames: Sequence[object], *, image_size: tuple[int, int] | None = None
    ) -> Tracks:
        """Tracks from one entry per frame position (``None`` = no instances in that frame)."""
        if isinstance(frames, (str, bytes, Mapping)) or not isinstance(frames, Sequence):
            raise InstitTypeError(f"from_list needs a list, got {type(frames).__name__}")
        return cls({i: f for i, f in enumerate(frames) if f is not None}, image_size=image_size)

    @classmethod
    def coerce(cls, obj: object) -> Tracks:
        """:class:`Tracks`, a dict ``{frame_index: instances}`` (keys may be digit strings, as
        in JSON), a per-frame list, or supervision ``JSONSink``/``CSVSink`` rows with
        ``frame_index`` and ``tracker_id`` columns (IDs: ``tracker_id``)."""
        if isinstance(obj, Tracks):
            return obj
        if is_sink_rows(obj):
            return tracks_from_sink_rows(obj)  # type: ignore[arg-type]
        if isinstance(obj, Mapping):
            if "frames" in obj and "format" in obj:
                return cls.from_dict(obj)
            return cls(obj)
        if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
            return cls.from_list(obj)
        raise InstitTypeError(
            f"cannot use a {type(obj).__name__} as tracks; pass Tracks, a dict "
            "{frame_index: instances} or a list with one entry per frame"
        )

    def __getitem__(self, frame_index: int) -> Instances:
        return self._frames[frame_index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def ids(self) -> tuple[int, ...]:
        """Every ID seen in any frame, sorted."""
        return tuple(sorted({i for frame in self._frames.values() for i in frame.ids}))

    @property
    def frame_indices(self) -> tuple[int, ...]:
        """Frames with an entry, sorted."""
        return tuple(self._frames)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the frames when any frame knows it."""
        return self._image_size

    def at(self, frame_index: int) -> Instances:
        """The instances of frame ``frame_index`` (empty Instances when it has none)."""
        index = _parse_frame_index(frame_index)
        found = self._frames.get(index)
        return found if found is not None else Instances.empty(self._image_size)

    def select_frames(self, indices: Iterable[int]) -> Tracks:
        """Tracks of the frames ``indices``, **re-keyed to positions** ``0..k-1``.

        ``tracks.select_frames([0, 15, 30])`` gives the tracks of a 3-frame clip sampled at
        those source frames: position 1 holds source frame 15.  Repeated indices are allowed.
        """
        positions = [_parse_frame_index(i) for i in indices]
        return Tracks(
            {p: self._frames[i] for p, i in enumerate(positions) if i in self._frames},
            image_size=self._image_size,
        )

    def sampled(self, indices: Iterable[int], *, snap: bool = False) -> Tracks:
        """Tracks of a video sampled at source frames ``indices``, **keyed by position**.

        Like :meth:`select_frames`, but for drawing on a sampled video: tracked frames that
        were not sampled are not silently lost.  Without ``snap`` they are dropped with one
        :class:`UnsampledFramesWarning` naming them and counting the frames that keep marks.
        With ``snap=True`` each of them moves to the nearest sampled frame (the earlier one on
        a tie); a sampled frame keeps its own entry when it has one, else takes the nearest
        tracked frame that snaps to it, and only tracked frames that lose to another are still
        dropped (with the warning).
        """
        positions = [_parse_frame_index(i) for i in indices]
        unique = sorted(set(positions))
        chosen: dict[int, int] = {i: i for i in unique if i in self._frames}  # sampled -> source
        if snap and unique:
            for source in self._frames:
                if source in chosen:
                    continue
                slot = int(np.searchsorted(unique, source))
                near = [unique[j] for j in (slot - 1, slot) if 0 <= j < len(unique)]
                target = min(near, key=lambda i: (abs(i - source), i))
                current = chosen.get(target)
                if current is None or (abs(current - target), current) > (
                    abs(source - target),
                    source,
                ):
                    chosen[target] = source
        used = set(chosen.values())
        dropped = tuple(i for i in self._frames if i not in used)
        result = Tracks(
            {p: self._frames[chosen[i]] for p, i in enumerate(positions) if i in chosen},
            image_size=self._image_size,
        )
        if dropped:
            shown = ", ".join(str(i) for i in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
            hint = (
                "other tracked frames are nearer to their sampled frames"
                if snap
                else "pass snap=True (--snap) to move them to the nearest sampled frame, or "
                "sample those frames"
            )
            warnings.warn(
                UnsampledFramesWarning(
                    f"{len(dropped)} of {len(self._frames)} tracked frames were not sampled "
                    f"(source frames {shown}) and are not drawn; {len(result)} of "
                    f"{len(positions)} sampled frames show instances; {hint}",
                    dropped,
                    len(result),
                ),
                stacklevel=2,
            )
        return result

    def track(self, instance_id: int) -> dict[int, Instance]:
        """``{frame_index: Instance}`` for every frame where ``instance_id`` appears."""
        number = _parse_id(instance_id)
        found = {i: f[number] for i, f in self._frames.items() if number in f}
        if not found:
            raise UnknownIdError(
                f"no instance with id {number} in any frame; the IDs are {list(self.ids)}"
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict ``{"frames": {"<index>": Instances.to_dict()}}``."""
        return {
            "format": "instit.tracks",
            "version": _FORMAT_VERSION,
            "image_size": None if self._image_size is None else list(self._image_size),
            "frames": {str(i): f.to_dict() for i, f in self._frames.items()},
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tracks:
        """Rebuild :class:`Tracks` from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or not isinstance(data.get("frames"), Mapping):
            raise InstancesError('a tracks dict needs a "frames" dict; pass Tracks.to_dict()')
        frames: dict[int, Instances] = {}
        for key, value in data["frames"].items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise InstancesError(f"frame key {key!r} is not an integer") from None
            index = _parse_frame_index(index)
            try:
                frames[index] = Instances.from_dict(value)
            except (InstancesError, InstitTypeError) as exc:
                raise type(exc)(f"frame {index}: {exc}") from exc
        return cls(frames, image_size=_parse_image_size(data.get("image_size")))

    @classmethod
    def from_json(cls, text: str | bytes) -> Tracks:
        """Rebuild :class:`Tracks` from :meth:`to_json` output."""
        return cls.from_dict(_parse_json(text, "tracks"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tracks):
            return NotImplemented
        return self._image_size == other._image_size and self._frames == other._frames

    __hash__ = None  # type: ignore[assignment]

    def show(self, video: object = None, *, max_frames: int = 8) -> list[Any]:
        """Marked frames (PIL images), at most ``max_frames`` spread over the frames with
        entries: drawn on the frames of ``video`` (a :class:`~instit.video.Video` or a frame
        list, indexed like these tracks) when given, else on neutral grey canvases."""
        from instit.marks.views import tracks_view

        return tracks_view(self, video, max_frames=max_frames)

    def _repr_html_(self) -> str:
        from instit.marks.views import strip_html

        return strip_html(self)

    def __repr__(self) -> str:
        return (
            f"Tracks(frames={len(self._frames)}, ids={list(self.ids)}, "
            f"image_size={self._image_size})"
        )


def _two_different(
    sizes: Mapping[int, tuple[int, int]],
) -> tuple[tuple[int, tuple[int, int]], tuple[int, tuple[int, int]]]:
    items = list(sizes.items())
    first = items[0]
    second = next(item for item in items if item[1] != first[1])
    return first, second
