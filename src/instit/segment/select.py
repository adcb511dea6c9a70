"""Choose the instances a Set-of-Marks prompt can show from automatic masks (pure numpy).

Automatic mask generation returns many overlapping candidates: the same object several times,
parts inside wholes, specks.  :func:`select_masks` keeps a readable set, in four steps:

1. **small**: masks with fewer than ``min_area`` pixels are dropped;
2. **duplicates**: in order of score (highest first; ties: larger area, then earlier), a mask
   whose IoU with an already kept mask is at least ``duplicate_iou`` is dropped;
3. **swallowed**: a mask with at least ``contained`` of its pixels inside one larger kept mask
   is dropped (the larger one already marks that object);
4. **count**: the ``max_instances`` highest-scoring masks stay (same tie rule).

Unless ``overlap`` is true, a pixel claimed by several kept masks then goes to the *smallest*
of them (small objects stay visible on large ones), and masks left with fewer than
``min_area`` pixels are dropped.  The result is numbered **largest first** (ties: the topmost,
then leftmost pixel first): ID 1 is the biggest instance.
"""

from __future__ import annotations

import numbers

import numpy as np

from instit.errors import InstitTypeError, InstitValueError

__all__ = ["select_masks"]


def threshold(value: object, name: str) -> float:
    """``value`` as a float when it is a number in [0, 1] (a score threshold), else a typed
    error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InstitValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise InstitValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def _count(value: object, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InstitValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _ranking(scores: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Indices by score (high first), then area (large first), then position."""
    return np.lexsort((np.arange(len(scores)), -areas, -scores))


def select_masks(
    masks: np.ndarray,
    scores: np.ndarray,
    *,
    min_area: int = 100,
    max_instances: int | None = 50,
    duplicate_iou: float = 0.8,
    contained: float = 0.9,
    overlap: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The chosen masks and their scores, in ID order (see the module documentation).

    Args:
        masks: ``(N, H, W)`` bool candidate masks.
        scores: ``(N,)`` confidence per mask (predicted IoU for SAM models).
        min_area: smallest mask kept, in pixels (also after overlaps are resolved).
        max_instances: most masks kept (``None``: no limit).
        duplicate_iou: IoU at which two masks count as the same object.
        contained: share of a mask inside a larger kept mask at which it is dropped.
        overlap: keep overlapping pixels in every mask instead of giving each to one mask.

    Returns:
        ``(masks, scores)``: ``(K, H, W)`` bool and ``(K,)`` float, K <= ``max_instances``.
    """
    stack = np.asarray(masks)
    if stack.ndim != 3:
        raise InstitValueError(f"masks must be a (N, H, W) array, got shape {stack.shape}")
    if stack.dtype != np.bool_:
        raise InstitTypeError(f"masks must be bool, got {stack.dtype}")
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) != len(stack):
        raise InstitValueError(f"got {len(values)} scores for {len(stack)} masks")
    smallest = _count(min_area, "min_area")
    limit = _count(max_instances, "max_instances", allow_none=True)
    same = _fraction(duplicate_iou, "duplicate_iou")
    inside = _fraction(contained, "contained")
    assert smallest is not None

    flat = stack.reshape(len(stack), stack.shape[1] * stack.shape[2])
    areas = flat.sum(axis=1)
    kept: list[int] = []
    for index in _ranking(values, areas):
        if areas[index] < max(smallest, 1):
            continue
        if kept:
            shared = (flat[kept] & flat[index]).sum(axis=1)
            union = areas[kept] + areas[index] - shared
            if (shared / union >= same).any():
                continue
        kept.append(int(index))
    survivors = []
    for index in kept:
        larger = [k for k in kept if areas[k] > areas[index]]
        if larger and ((flat[larger] & flat[index]).sum(axis=1) >= inside * areas[index]).any():
            continue
        survivors.append(index)
    chosen = np.asarray(survivors, dtype=np.intp)
    if limit is not None:
        chosen = chosen[_ranking(values[chosen], areas[chosen])][:limit]
    result = stack[chosen].copy()
    if not overlap and len(chosen) > 1:
        owner_order = np.argsort(areas[chosen], kind="stable")  # smallest first claims pixels
        taken = np.zeros(stack.shape[1:], dtype=bool)
        for position in owner_order:
            result[position] &= ~taken
            taken |= result[position]
    remaining = result.reshape(len(result), flat.shape[1]).sum(axis=1)
    big_enough = remaining >= max(smallest, 1)
    result, chosen, remaining = result[big_enough], chosen[big_enough], remaining[big_enough]
    first_pixel = np.array([int(np.flatnonzero(m.ravel())[0]) for m in result], dtype=np.int64)
    order = np.lexsort((first_pixel, -remaining))
    return result[order], values[chosen][order]
