"""Checks of the values users pass as instances: IDs, sizes, arrays, polygon rings, frame
indices.  Each returns the value in instit's own form or raises a typed error naming it."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from instit.errors import InstancesError, InstitTypeError

MAX_ID = 2**63 - 1
"""The largest instance ID (and frame index): the largest int64, so IDs fit numpy and
supervision's ``tracker_id``."""
MAX_COORDINATE = 1e15
"""Polygon vertices with a larger magnitude are refused (no image is that large: it is a unit
error); vertices between the image and this bound are kept and clipped when rasterised."""


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


def _check_pixels(pixels: int, what: str, times: int = 1) -> None:
    """Refuse allocating masks of more than ``times`` :func:`instit.media.pixel_limit` pixels."""
    from instit.media import pixel_limit, too_large_error

    limit = pixel_limit()
    if limit is not None and pixels > times * limit:
        raise too_large_error(what, pixels=pixels, times=times, error=InstancesError)


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
