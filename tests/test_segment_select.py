"""select_masks: the Set-of-Marks selection of automatic masks (property tests, pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from instit.errors import InstitTypeError, InstitValueError
from instit.segment import select_masks

H, W = 24, 32


@st.composite
def candidates(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    count = draw(st.integers(0, 8))
    masks = np.zeros((count, H, W), dtype=bool)
    for index in range(count):
        y0, x0 = draw(st.integers(0, H - 1)), draw(st.integers(0, W - 1))
        y1, x1 = draw(st.integers(y0 + 1, H)), draw(st.integers(x0 + 1, W))
        masks[index, y0:y1, x0:x1] = True
    scores = np.array(draw(st.lists(st.floats(0, 1), min_size=count, max_size=count)))
    return masks, scores


@settings(max_examples=150, deadline=None)
@given(candidates(), st.integers(1, 40), st.one_of(st.none(), st.integers(0, 5)))
def test_selection_properties(data, min_area, max_instances):
    masks, scores = data
    chosen, kept_scores = select_masks(
        masks, scores, min_area=min_area, max_instances=max_instances
    )
    assert chosen.dtype == np.bool_ and chosen.shape[1:] == (H, W)
    assert len(chosen) == len(kept_scores) <= len(masks)
    if max_instances is not None:
        assert len(chosen) <= max_instances
    areas = chosen.sum(axis=(1, 2))
    assert (areas >= min_area).all()
    assert (chosen.sum(axis=0) <= 1).all()  # every pixel in at most one instance
    assert list(areas) == sorted(areas, reverse=True)  # ID 1 is the largest
    for mask, score in zip(chosen, kept_scores, strict=True):  # each is part of one candidate
        assert any((mask <= m).all() and s == score for m, s in zip(masks, scores, strict=True))


@settings(max_examples=100, deadline=None)
@given(candidates())
def test_with_overlap_kept_masks_are_whole_candidates_without_duplicates(data):
    masks, scores = data
    chosen, _ = select_masks(masks, scores, min_area=1, max_instances=None, overlap=True)
    flat = chosen.reshape(len(chosen), H * W)
    for i in range(len(chosen)):
        assert any(np.array_equal(chosen[i], m) for m in masks)
        for j in range(i + 1, len(chosen)):
            shared = (flat[i] & flat[j]).sum()
            union = (flat[i] | flat[j]).sum()
            assert shared / union < 0.8
            smaller = min(flat[i].sum(), flat[j].sum())
            assert shared < 0.9 * smaller or flat[i].sum() == flat[j].sum()


def test_duplicates_and_swallowed_masks_are_dropped_and_smaller_masks_win_pixels():
    masks = np.zeros((4, H, W), dtype=bool)
    masks[0, 0:20, 0:20] = True  # big
    masks[1, 0:20, 0:19] = True  # near duplicate of 0, lower score
    masks[2, 2:6, 2:6] = True  # swallowed by 0
    masks[3, 10:24, 15:32] = True  # overlaps 0 partly
    chosen, scores = select_masks(masks, np.array([0.9, 0.8, 0.95, 0.7]), min_area=1)
    assert len(chosen) == 2
    assert scores.tolist() == [0.9, 0.7]
    assert not chosen[0, 10:20, 15:20].any() and chosen[1, 10:20, 15:20].all()
    same, _ = select_masks(masks, np.array([0.9, 0.8, 0.95, 0.7]), min_area=1)
    assert np.array_equal(same, chosen)  # deterministic


def test_bad_arguments_are_refused():
    masks = np.zeros((1, H, W), dtype=bool)
    with pytest.raises(InstitValueError, match="scores"):
        select_masks(masks, np.array([0.1, 0.2]))
    with pytest.raises(InstitTypeError, match="bool"):
        select_masks(masks.astype(np.uint8), np.array([0.1]))
    with pytest.raises(InstitValueError, match="duplicate_iou"):
        select_masks(masks, np.array([0.1]), duplicate_iou=0)
    with pytest.raises(InstitValueError, match="max_instances"):
        select_masks(masks, np.array([0.1]), max_instances=-1)
