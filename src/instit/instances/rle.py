"""COCO run-length encoding (RLE) of masks: :func:`encode_rle` and :func:`decode_rle`, the
format pycocotools reads and writes (compressed ``counts`` strings or lists of run lengths)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instit.errors import InstancesError
from instit.instances._validate import _check_pixels, _parse_image_size

# a COCO RLE count of a 64-bit value takes at most 13 five-bit groups
_MAX_RLE_GROUPS = 13


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
