"""instit.instances: constructors, conversions, RLE, JSON, supervision, Tracks and bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from instit.errors import DependencyError, InstancesError, InstitError, InstitTypeError
from instit.instances import (
    GeometryWarning,
    Instance,
    Instances,
    Tracks,
    UnknownIdError,
    decode_rle,
    encode_rle,
)

W, H = 8, 6


def two_masks() -> np.ndarray:
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 1:3, 2:5] = True  # rows 1-2, columns 2-4
    masks[1, 4, 7] = True  # one pixel at x=7, y=4
    return masks


def disk(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


# -- IDs -------------------------------------------------------------------------------------


def test_default_ids_are_one_to_n() -> None:
    assert Instances.from_masks(two_masks()).ids == (1, 2)
    assert Instances.from_boxes([[0, 0, 1, 1], [1, 1, 2, 2], [0, 0, 5, 5]]).ids == (1, 2, 3)
    assert Instances.from_points([[1, 1]]).ids == (1,)
    triangle = [[0, 0], [4, 0], [0, 4]]
    assert Instances.from_polygons([triangle, triangle], image_size=(W, H)).ids == (1, 2)


def test_ids_keep_the_given_order_and_accept_numpy_integers() -> None:
    instances = Instances.from_masks(two_masks(), np.array([9, 4], dtype=np.int64))
    assert instances.ids == (9, 4)
    assert all(type(i) is int for i in instances.ids)
    assert [inst.id for inst in instances] == [9, 4]
    assert Instances.from_boxes([[0, 0, 1, 1]], [np.uint8(3)]).ids == (3,)


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        ([2, 2], InstancesError, "instance id 2 appears more than once"),
        ([0, 1], InstancesError, "instance id 0 is not positive"),
        ([3, -4], InstancesError, "instance id -4 is not positive"),
        ([1, 2.0], InstitTypeError, "instance id 2.0 is a float"),
        ([1, "2"], InstitTypeError, "instance id '2' is a str"),
        ([True, 2], InstitTypeError, "instance id True is a bool"),
        ([1], InstancesError, "got 1 ids for 2 masks"),
        ([1, 2, 3], InstancesError, "got 3 ids for 2 masks"),
        ("12", InstitTypeError, "sequence of positive integers"),
        (5, InstitTypeError, "sequence of positive integers"),
        (np.array([[1, 2]]), InstancesError, "one-dimensional"),
    ],
)
def test_bad_ids(ids: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Instances.from_masks(two_masks(), ids)  # type: ignore[arg-type]


def test_bad_ids_are_checked_for_every_constructor() -> None:
    with pytest.raises(InstancesError, match="id 7 appears more than once"):
        Instances.from_boxes([[0, 0, 1, 1], [0, 0, 2, 2]], [7, 7])
    with pytest.raises(InstancesError, match="id 0 is not positive"):
        Instances.from_points([[1, 1]], [0])
    with pytest.raises(InstancesError, match=r"got 2 ids for 1 polygons; .* one ID per polygon$"):
        Instances.from_polygons([[[0, 0], [2, 0], [0, 2]]], [1, 2], image_size=(W, H))
    with pytest.raises(InstancesError, match=r"got 1 ids for 2 boxes; .* one ID per box$"):
        Instances.from_boxes([[0, 0, 1, 1], [0, 0, 2, 2]], [1])
    with pytest.raises(InstitTypeError, match="is a float"):
        Instances.from_rle([encode_rle(two_masks()[0])], [1.5])


def test_errors_are_package_errors_with_standard_bases() -> None:
    with pytest.raises(ValueError):
        Instances.from_masks(two_masks(), [1, 1])
    with pytest.raises(TypeError):
        Instances.from_masks(two_masks(), [1, "x"])
    with pytest.raises(InstitError):
        Instances.from_masks(two_masks(), [1, "x"])


# -- masks -----------------------------------------------------------------------------------


def test_from_masks_boxes_are_tight_pixel_edges() -> None:
    instances = Instances.from_masks(two_masks(), [3, 7])
    assert instances.kind == "mask"
    assert instances.image_size == (W, H)
    np.testing.assert_array_equal(instances.boxes(), [[2, 1, 5, 3], [7, 4, 8, 5]])
    assert instances[3].box == (2.0, 1.0, 5.0, 3.0)
    full = Instances.from_masks([np.ones((H, W), dtype=bool)])
    assert full[1].box == (0.0, 0.0, float(W), float(H))


def test_boxes_from_many_masks_match_a_per_mask_reference() -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((12, 30, 40)) > 0.97
    masks[:, 5, 5] = True
    boxes = Instances.from_masks(masks).boxes()
    for mask, box in zip(masks, boxes, strict=True):
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_mask_forms_list_dict_integer_float_and_pil() -> None:
    masks = two_masks()
    reference = Instances.from_masks(masks, [1, 2])
    assert Instances.from_masks(list(masks)) == reference
    assert Instances.from_masks({1: masks[0], 2: masks[1]}) == reference
    assert Instances.from_masks(masks.astype(np.uint8) * 255) == reference
    assert Instances.from_masks(masks.astype(np.float32)) == reference
    assert Instances.from_masks([m.astype(np.int64) for m in masks]) == reference
    assert Instances.from_masks([Image.fromarray(m) for m in masks]) == reference
    assert Instances.from_masks({5: masks[1]}).ids == (5,)


def test_from_masks_copies_input_and_hands_out_read_only_arrays() -> None:
    masks = two_masks()
    before = masks.copy()
    instances = Instances.from_masks(masks)
    masks[:] = True
    np.testing.assert_array_equal(instances.masks(), before)
    assert not np.shares_memory(instances.masks(), masks)
    with pytest.raises(ValueError):
        instances.masks()[0, 0, 0] = True
    with pytest.raises(ValueError):
        instances[1].mask[0, 0] = True
    with pytest.raises(ValueError):
        instances.boxes()[0, 0] = 99.0
    np.testing.assert_array_equal(instances.masks(), before)


def test_from_masks_does_not_modify_the_callers_list() -> None:
    masks = list(two_masks().astype(np.uint8))
    copies = [m.copy() for m in masks]
    Instances.from_masks(masks, [4, 5])
    assert len(masks) == 2
    for mask, copy in zip(masks, copies, strict=True):
        np.testing.assert_array_equal(mask, copy)


def test_empty_mask_is_refused_naming_the_id() -> None:
    masks = two_masks()
    masks[1] = False
    with pytest.raises(InstancesError, match=r"instance 8: mask is empty"):
        Instances.from_masks(masks, [4, 8])


def test_mask_shape_problems_name_the_id() -> None:
    masks = list(two_masks())
    masks.append(np.ones((H + 1, W), dtype=bool))
    with pytest.raises(InstancesError, match=r"instance 3: mask has shape \(7, 8\)"):
        Instances.from_masks(masks)
    with pytest.raises(InstancesError, match=r"instance 1: masks are 8x6 .* image is 10x6"):
        Instances.from_masks(two_masks(), image_size=(10, 6))
    with pytest.raises(InstancesError, match=r"instance 2: mask has shape \(8,\)"):
        Instances.from_masks([np.ones((H, W)), np.ones(8)])
    with pytest.raises(InstancesError, match=r"wrap a single mask as \[mask\]"):
        Instances.from_masks(np.ones((H, W), dtype=bool))
    with pytest.raises(InstancesError, match="masks need pixels"):
        Instances.from_masks(np.ones((1, 0, 4), dtype=bool))


def test_float_masks_must_be_binary() -> None:
    masks = two_masks().astype(np.float32)
    masks[1, 0, 0] = 0.7
    with pytest.raises(InstancesError, match=r"instance 6: float mask .* mask > 0\.5"):
        Instances.from_masks(masks, [5, 6])
    nan_mask = np.ones((H, W))
    nan_mask[0, 0] = np.nan
    with pytest.raises(InstancesError, match="instance 1: float mask"):
        Instances.from_masks([nan_mask])


def test_mask_of_unsupported_type() -> None:
    with pytest.raises(InstitTypeError, match="dtype complex"):
        Instances.from_masks(np.ones((1, 2, 2), dtype=complex))
    with pytest.raises(InstitTypeError, match="list of HxW masks"):
        Instances.from_masks(42)  # type: ignore[arg-type]
    with pytest.raises(InstitTypeError, match="not both"):
        Instances.from_masks({1: two_masks()[0]}, ids=[2])


def test_empty_instances() -> None:
    none = Instances.from_masks([])
    assert len(none) == 0 and none.ids == () and none.image_size is None
    assert none.masks().shape == (0, 0, 0)
    sized = Instances.from_masks([], image_size=(W, H))
    assert sized.masks().shape == (0, H, W) and sized.boxes().shape == (0, 4)
    assert Instances.from_masks(np.zeros((0, H, W), dtype=bool)).image_size == (W, H)
    assert Instances.empty((W, H), kind="box").masks() is None
    assert list(Instances.empty()) == []
    with pytest.raises(InstancesError, match="kind must be one of"):
        Instances.empty(kind="blob")  # type: ignore[arg-type]


# -- boxes -----------------------------------------------------------------------------------


def test_from_boxes() -> None:
    boxes = np.array([[1.5, 2, 4, 5], [0, 0, W, H]])
    instances = Instances.from_boxes(boxes, [2, 1], image_size=(W, H))
    assert instances.kind == "box"
    np.testing.assert_array_equal(instances.boxes(), boxes)
    assert instances.boxes().dtype == np.float64
    assert instances[2] == Instance(2, "box", (1.5, 2.0, 4.0, 5.0))
    assert instances.masks() is None and instances.polygons() is None
    assert instances.points() is None


def test_boxes_outside_the_image_are_clipped_with_a_warning() -> None:
    boxes = np.array([[-3.0, 1, 4, 5], [2, 2, 3, 3], [5, 4, 12, 9]])
    before = boxes.copy()
    with pytest.warns(GeometryWarning, match=r"instances \[1, 3\].*8x6 image.*clipped"):
        instances = Instances.from_boxes(boxes, image_size=(W, H))
    np.testing.assert_array_equal(instances.boxes(), [[0, 1, 4, 5], [2, 2, 3, 3], [5, 4, 8, 6]])
    np.testing.assert_array_equal(boxes, before)


def test_negative_boxes_are_clipped_without_an_image_size() -> None:
    with pytest.warns(GeometryWarning, match="negative coordinates"):
        instances = Instances.from_boxes([[-1, -2, 300, 400]])
    assert instances[1].box == (0.0, 0.0, 300.0, 400.0)


def test_clip_false_refuses_boxes_outside_the_image() -> None:
    with pytest.raises(InstancesError, match=r"instance 4: box \(5, 4, 12, 9\).*clip=True"):
        Instances.from_boxes([[5, 4, 12, 9]], [4], image_size=(W, H), clip=False)


def test_inside_boxes_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Instances.from_boxes([[0, 0, W, H]], image_size=(W, H))


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([np.nan, 0, 1, 1], r"instance 5: box \(nan, 0, 1, 1\) has NaN"),
        ([0, 0, np.inf, 1], "instance 5: .*NaN/infinity"),
        ([4, 0, 2, 3], r"instance 5: box \(4, 0, 2, 3\) has x1 < x0.*x1 = x \+ w"),
        ([0, 3, 2, 1], "instance 5: .*y1 < y0"),
        ([2, 2, 2, 4], r"instance 5: box \(2, 2, 2, 4\) has zero width or height"),
    ],
)
def test_bad_boxes(box: list[float], message: str) -> None:
    with pytest.raises(InstancesError, match=message):
        Instances.from_boxes([[0, 0, 1, 1], box], [1, 5], image_size=(W, H))


def test_box_entirely_outside_is_degenerate_after_clipping() -> None:
    with (
        pytest.warns(GeometryWarning),
        pytest.raises(InstancesError, match=r"instance 2: .*zero width or height after clipping"),
    ):
        Instances.from_boxes([[0, 0, 1, 1], [10, 10, 20, 20]], image_size=(W, H))


def test_box_array_shape_and_type() -> None:
    with pytest.raises(InstancesError, match=r"shape \(N, 4\), got \(2, 3\)"):
        Instances.from_boxes(np.zeros((2, 3)))
    with pytest.raises(InstitTypeError, match="array of numbers"):
        Instances.from_boxes([["a", 0, 1, 1]])
    assert len(Instances.from_boxes([])) == 0


# -- points ----------------------------------------------------------------------------------


def test_from_points() -> None:
    instances = Instances.from_points([[1.5, 2.5], [W, 0]], [4, 9], image_size=(W, H))
    assert instances.kind == "point"
    assert instances[4] == Instance(4, "point", (1.5, 2.5, 1.5, 2.5), point=(1.5, 2.5))
    np.testing.assert_array_equal(instances.points(), [[1.5, 2.5], [W, 0]])
    assert instances.masks() is None


@pytest.mark.parametrize(
    ("point", "size", "message"),
    [
        ([np.nan, 1], (W, H), "instance 7: point .* NaN"),
        ([9, 1], (W, H), r"instance 7: point \(9, 1\) lies outside the 8x6 image"),
        ([1, -1], None, r"instance 7: point \(1, -1\) lies outside the image"),
    ],
)
def test_bad_points(point: list[float], size: tuple[int, int] | None, message: str) -> None:
    with pytest.raises(InstancesError, match=message):
        Instances.from_points([point], [7], image_size=size)


def test_points_shape() -> None:
    with pytest.raises(InstancesError, match=r"shape \(N, 2\)"):
        Instances.from_points([[1, 2, 3]])


# -- polygons --------------------------------------------------------------------------------


def test_polygon_rasterises_like_fillpoly_including_the_outline() -> None:
    rectangle = [[1, 1], [4, 1], [4, 3], [1, 3]]
    instances = Instances.from_polygons([rectangle], [6], image_size=(W, H))
    expected = np.zeros((H, W), dtype=bool)
    expected[1:4, 1:5] = True  # vertices are pixel centres; outline pixels are inside
    np.testing.assert_array_equal(instances.masks()[0], expected)
    instance = instances[6]
    assert instance.kind == "polygon"
    assert instance.box == (1.0, 1.0, 4.0, 3.0)  # extent of the vertices
    np.testing.assert_array_equal(instance.mask, expected)
    np.testing.assert_array_equal(instance.polygon[0], rectangle)


def test_polygon_forms_flat_coco_rings_and_holes() -> None:
    outer = [[0, 0], [7, 0], [7, 5], [0, 5]]
    hole = [[2, 1], [5, 1], [5, 4], [2, 4]]
    flat = [float(v) for point in outer for v in point]
    ring_only = Instances.from_polygons([flat], image_size=(W, H))
    assert ring_only.masks()[0].all()
    with_hole = Instances.from_polygons({3: [outer, np.array(hole)]}, image_size=(W, H))
    mask = with_hole.masks()[0]
    assert with_hole.ids == (3,)
    assert not mask[2:4, 3:5].any()  # strictly inside the hole ring
    assert mask[1:5, 2].all() and mask[1, 2:6].all()  # the hole outline stays filled
    assert mask.sum() == W * H - 4  # the outer ring covers the image; 2x2 hole pixels
    coco_multi = Instances.from_polygons([[flat, [2, 1, 5, 1, 5, 4, 2, 4]]], image_size=(W, H))
    np.testing.assert_array_equal(coco_multi.masks(), with_hole.masks())
    stacked = Instances.from_polygons([np.array([outer, hole])], image_size=(W, H))
    np.testing.assert_array_equal(stacked.masks(), with_hole.masks())


def test_polygon_copies_input() -> None:
    ring = np.array([[1.0, 1.0], [4.0, 1.0], [4.0, 3.0]])
    instances = Instances.from_polygons([ring], image_size=(W, H))
    ring[:] = 0
    assert instances[1].polygon[0][1].tolist() == [4.0, 1.0]
    with pytest.raises(ValueError):
        instances.polygons()[0][0][0, 0] = 5.0


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([[0, 0], [3, 3]], "instance 4: polygon ring has 2 points; .*at least 3"),
        ([0, 0, 3, 3], "instance 4: polygon ring has 2 points"),
        ([[0, 0], [1, 1], [2, 2]], "instance 4: polygon ring has zero area"),
        ([[0, 0], [np.nan, 1], [2, 0]], "instance 4: polygon contains NaN"),
        ([[0, 0, 1], [1, 1, 1], [2, 0, 1]], r"instance 4: polygon has shape \(3, 3\)"),
        ([], "instance 4: polygon ring has 0 points"),
        (iter([]), "instance 4: polygon has no rings"),
        ([0, 0, 3], r"instance 4: polygon ring has shape \(3,\)"),
    ],
)
def test_bad_polygons(polygon: object, message: str) -> None:
    good = [[0, 0], [3, 0], [0, 3]]
    with pytest.raises(InstancesError, match=message):
        Instances.from_polygons([good, polygon], [1, 4], image_size=(W, H))


def test_polygon_type_errors() -> None:
    with pytest.raises(InstitTypeError, match="instance 1: a polygon must be"):
        Instances.from_polygons([5], image_size=(W, H))
    with pytest.raises(InstitTypeError, match="instance 1: polygon ring is not an array"):
        Instances.from_polygons([[["a", "b"], [1, 2], [3, 4]]], image_size=(W, H))
    with pytest.raises(InstitTypeError, match="image_size is required"):
        Instances.from_polygons([[[0, 0], [3, 0], [0, 3]]], image_size=None)  # type: ignore[arg-type]


def test_polygon_partly_outside_is_cut_with_a_warning() -> None:
    triangle = [[-4, -4], [6, 2], [2, 6]]
    with pytest.warns(GeometryWarning, match=r"instances \[2\]"):
        instances = Instances.from_polygons([[[0, 0], [2, 0], [0, 2]], triangle], image_size=(W, H))
    assert instances[2].box == (0.0, 0.0, 6.0, 6.0)
    assert instances[2].polygon[0].tolist() == [[-4, -4], [6, 2], [2, 6]]
    assert instances[2].mask[0, 0] and instances[2].mask.shape == (H, W)


def test_polygon_entirely_outside_is_refused() -> None:
    with pytest.raises(InstancesError, match="instance 1: polygon lies outside the 8x6 image"):
        Instances.from_polygons([[[20, 20], [30, 20], [25, 30]]], image_size=(W, H))


# -- mask <-> polygon ------------------------------------------------------------------------


def test_mask_to_polygon_square() -> None:
    mask = np.zeros((1, H, W), dtype=bool)
    mask[0, 1:4, 2:6] = True
    (rings,) = Instances.from_masks(mask).polygons()
    assert len(rings) == 1
    assert sorted(map(tuple, rings[0].tolist())) == [(2, 1), (2, 3), (5, 1), (5, 3)]


@pytest.mark.parametrize(
    "shape",
    ["rectangle", "disk", "annulus", "l-shape", "two-parts", "border"],
)
def test_mask_polygon_mask_round_trip(shape: str) -> None:
    height, width = 40, 50
    mask = np.zeros((height, width), dtype=bool)
    if shape == "rectangle":
        mask[5:20, 7:30] = True
    elif shape == "disk":
        mask = disk(height, width, 25, 20, 12)
    elif shape == "annulus":
        mask = disk(height, width, 25, 20, 15) & ~disk(height, width, 25, 20, 6)
    elif shape == "l-shape":
        mask[5:35, 5:12] = True
        mask[28:35, 5:40] = True
    elif shape == "two-parts":
        mask[2:8, 2:8] = True
        mask[20:30, 30:45] = True
    else:
        mask[:, :] = True
        mask[10:20, 10:20] = False
    instances = Instances.from_masks([mask], [3])
    polygons = instances.polygons()
    if shape in ("annulus", "border"):
        assert len(polygons[0]) == 2  # outer outline and hole outline
    if shape == "two-parts":
        assert len(polygons[0]) == 2
    back = Instances.from_polygons(polygons, [3], image_size=(width, height))
    np.testing.assert_array_equal(back.masks()[0], mask)


# -- RLE -------------------------------------------------------------------------------------


def plus_mask() -> np.ndarray:
    return np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def test_rle_hand_computed_plus() -> None:
    # column-major: 0 1 0 | 1 1 1 | 0 1 0 -> runs 1,1,1,3,1,1,1
    assert encode_rle(plus_mask(), compressed=False) == {
        "size": [3, 3],
        "counts": [1, 1, 1, 3, 1, 1, 1],
    }
    # from the 4th run on, minus the run two before: 1,1,1,(3-1)=2,(1-1)=0,
    # (1-3)=-2 -> 5-bit group 30 with the sign bit -> chr(48 + 30) = "N", (1-1)=0
    assert encode_rle(plus_mask()) == {"size": [3, 3], "counts": "11120N0"}
    np.testing.assert_array_equal(decode_rle({"size": [3, 3], "counts": "11120N0"}), plus_mask())


def test_rle_mask_starting_with_a_set_pixel_has_a_zero_first_run() -> None:
    assert encode_rle(np.ones((2, 2), dtype=bool), compressed=False)["counts"] == [0, 4]
    assert encode_rle(np.ones((2, 2), dtype=bool))["counts"] == "04"
    assert encode_rle(np.zeros((2, 3), dtype=bool), compressed=False)["counts"] == [6]


def test_rle_multi_character_numbers_and_negative_deltas() -> None:
    # runs 5, 100, 3, 50, 2 on a 16x10 mask:
    # 5 -> '5'; 100 = 4 + 3*32 -> chr(48 + 4 + 32) 'T', '3'; 3 -> '3';
    # 50 - 100 = -50 -> groups 14 (+32: '^') and -2 -> 30 ('N'); 2 - 3 = -1 -> 31 ('O')
    counts = [5, 100, 3, 50, 2]
    mask = decode_rle({"size": [16, 10], "counts": "5T33^NO"})
    flat = mask.ravel(order="F")
    assert flat[:5].sum() == 0 and flat[5:105].all() and not flat[105:108].any()
    assert flat[108:158].all() and not flat[158:].any()
    assert encode_rle(mask) == {"size": [16, 10], "counts": "5T33^NO"}
    assert encode_rle(mask, compressed=False)["counts"] == counts


@pytest.mark.parametrize(
    ("start", "stop", "counts"),
    [(0, 5, "05d00000000d?"), (5, 10, "R45d00000000b;"), (20, 25, "X`05d00000000")],
)
def test_rle_matches_pycocotools_outputs(start: int, stop: int, counts: str) -> None:
    # pycocotools.mask.encode of a 25x25 mask with mask[start:stop, start:stop] = 1
    mask = np.zeros((25, 25), dtype=bool)
    mask[start:stop, start:stop] = True
    assert encode_rle(mask) == {"size": [25, 25], "counts": counts}
    np.testing.assert_array_equal(decode_rle({"size": [25, 25], "counts": counts}), mask)
    np.testing.assert_array_equal(
        decode_rle({"size": [25, 25], "counts": counts.encode("ascii")}), mask
    )


def test_rle_round_trips_random_masks() -> None:
    rng = np.random.default_rng(7)
    for height, width, density in [(1, 1, 1.0), (5, 3, 0.5), (37, 53, 0.1), (64, 48, 0.95)]:
        for _ in range(5):
            mask = rng.random((height, width)) < density
            for compressed in (True, False):
                rle = encode_rle(mask, compressed=compressed)
                back = decode_rle(json.loads(json.dumps(rle)))
                np.testing.assert_array_equal(back, mask)
                assert back.flags.c_contiguous


def test_big_runs_round_trip() -> None:
    mask = np.zeros((720, 1280), dtype=bool)
    mask[100:600, 200:1100] = True
    mask[0, 0] = True
    np.testing.assert_array_equal(decode_rle(encode_rle(mask)), mask)


def test_from_rle_mixed_forms_and_ids() -> None:
    masks = two_masks()
    rles = [encode_rle(masks[0]), encode_rle(masks[1], compressed=False)]
    rles[0]["counts"] = rles[0]["counts"].encode("ascii")  # pycocotools gives bytes
    instances = Instances.from_rle(rles, [4, 6])
    np.testing.assert_array_equal(instances.masks(), masks)
    assert Instances.from_rle({4: rles[0], 6: rles[1]}) == instances


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [3, 3], "counts": [1, 1, 1]}, "instance 2: RLE .*cover 3 pixels .* has 9"),
        ({"size": [3, 3], "counts": "11120"}, "instance 2: RLE .*cover 7 pixels"),
        ({"size": [3, 3], "counts": "1112~0"}, "instance 2: .*corrupt.*not a COCO RLE character"),
        ({"size": [3, 3], "counts": "T"}, "instance 2: .*ends in the middle"),
        ({"size": [3, 3], "counts": [10, -1]}, "instance 2: .*negative run"),
        ({"size": [3], "counts": [9]}, r"instance 2: RLE \"size\" must be"),
        ({"counts": [9]}, 'instance 2: an RLE must be a dict with "size"'),
        ({"size": [3, 3], "counts": 9}, 'instance 2: RLE "counts" must be a string or a list'),
        ({"size": [3, 3], "counts": [4.5, 4.5]}, "instance 2: .*must hold integers"),
        ({"size": [3, 3], "counts": [9]}, "instance 2: mask is empty"),
    ],
)
def test_bad_rle(rle: dict, message: str) -> None:
    with pytest.raises(InstancesError, match=message):
        Instances.from_rle([encode_rle(plus_mask()), rle])


def test_rle_of_different_sizes() -> None:
    other = encode_rle(np.ones((4, 3), dtype=bool))
    with pytest.raises(InstancesError, match=r"instance 2: mask has shape \(4, 3\)"):
        Instances.from_rle([encode_rle(plus_mask()), other])


def test_encode_rle_needs_2d() -> None:
    with pytest.raises(InstancesError, match="two-dimensional"):
        encode_rle(np.ones((2, 2, 2)))


# -- access ----------------------------------------------------------------------------------


def test_lookup_by_id_and_unknown_id() -> None:
    instances = Instances.from_masks(two_masks(), [3, 7])
    assert instances[7].id == 7 and 7 in instances and 4 not in instances
    with pytest.raises(UnknownIdError, match=r"no instance with id 4; the IDs are \[3, 7\]"):
        instances[4]
    with pytest.raises(KeyError):
        instances[4]
    try:
        instances[4]
    except UnknownIdError as exc:
        assert str(exc) == "no instance with id 4; the IDs are [3, 7]"
    with pytest.raises(InstitTypeError, match="integer ID"):
        instances["3"]  # type: ignore[index]
    with pytest.raises(InstitTypeError, match="integer ID"):
        instances[0:1]  # type: ignore[index]


def test_instance_is_frozen_and_compares_geometry() -> None:
    first = Instances.from_masks(two_masks())[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.id = 5  # type: ignore[misc]
    again = Instances.from_masks(two_masks())[1]
    assert first == again
    other = two_masks()
    other[0, 0, 0] = True
    assert Instances.from_masks(other)[1] != first
    assert first != "not an instance"
    assert repr(first) == "Instance(id=1, kind='mask', box=(2, 1, 5, 3), mask=<8x6, 6 px>)"


def test_instances_cannot_be_built_directly() -> None:
    with pytest.raises(InstitTypeError, match="from_masks"):
        Instances()


def test_repr() -> None:
    instances = Instances.from_boxes([[0, 0, 1, 1]], [4], image_size=(W, H))
    assert repr(instances) == "Instances(kind='box', ids=[4], image_size=(8, 6))"


# -- select / relabel ------------------------------------------------------------------------


def test_select_keeps_the_requested_order() -> None:
    masks = np.stack([two_masks()[0], two_masks()[1], two_masks()[0] | two_masks()[1]])
    instances = Instances.from_masks(masks, [3, 7, 9])
    picked = instances.select([9, 3])
    assert picked.ids == (9, 3)
    np.testing.assert_array_equal(picked.masks(), masks[[2, 0]])
    np.testing.assert_array_equal(picked.boxes(), instances.boxes()[[2, 0]])
    assert instances.select(iter([7])).ids == (7,)
    assert len(instances.select([])) == 0
    with pytest.raises(UnknownIdError, match="no instance with id 5"):
        instances.select([3, 5])
    with pytest.raises(InstancesError, match="appears more than once"):
        instances.select([3, 3])


def test_relabel() -> None:
    instances = Instances.from_masks(two_masks(), [3, 7])
    renamed = instances.relabel({3: 1, 7: 2})
    assert renamed.ids == (1, 2)
    np.testing.assert_array_equal(renamed.masks(), instances.masks())
    assert instances.ids == (3, 7)
    assert instances.relabel({7: 10}).ids == (3, 10)
    assert instances.relabel({3: 7, 7: 3}).ids == (7, 3)
    with pytest.raises(InstancesError, match="id 7 appears more than once"):
        instances.relabel({3: 7})
    with pytest.raises(UnknownIdError, match="no instance with id 4"):
        instances.relabel({4: 1})
    with pytest.raises(InstancesError, match="not positive"):
        instances.relabel({3: 0})
    with pytest.raises(InstitTypeError, match="dict"):
        instances.relabel([(3, 1)])  # type: ignore[arg-type]


# -- validate_for / coerce -------------------------------------------------------------------


def test_validate_for() -> None:
    masks = Instances.from_masks(two_masks(), [3, 7])
    masks.validate_for((W, H))
    with pytest.raises(InstancesError, match=r"instance 3: instances were made for a 8x6 image"):
        masks.validate_for((16, 12))
    boxes = Instances.from_boxes([[0, 0, 4, 4], [2, 2, 30, 10]], [1, 2])
    boxes.validate_for((40, 20))
    with pytest.raises(InstancesError, match=r"instance 2: box with box \(2, 2, 30, 10\)"):
        boxes.validate_for((W, H))
    points = Instances.from_points([[7, 5]], [9])
    with pytest.raises(InstancesError, match="instance 9: point"):
        points.validate_for((5, 5))
    with pytest.raises(InstitTypeError, match=r"\(width, height\)"):
        masks.validate_for(W)  # type: ignore[arg-type]
    with pytest.raises(InstancesError, match="must be positive"):
        masks.validate_for((0, 4))


def test_coerce_accepts_the_plain_forms() -> None:
    masks = two_masks()
    reference = Instances.from_masks(masks)
    assert Instances.coerce(reference) is reference
    assert Instances.coerce(masks) == reference
    assert Instances.coerce(list(masks)) == reference
    assert Instances.coerce(tuple(masks)) == reference
    assert Instances.coerce({1: masks[0], 2: masks[1]}) == reference
    assert Instances.coerce({1: encode_rle(masks[0]), 2: encode_rle(masks[1])}) == reference
    assert Instances.coerce([encode_rle(m) for m in masks]) == reference
    assert Instances.coerce(reference.to_dict()) == reference
    assert Instances.coerce(encode_rle(masks[0])) == reference.select([1])
    assert Instances.coerce(reference.to_supervision()) == reference
    empty = Instances.coerce(None, image_size=(W, H))
    assert len(empty) == 0 and empty.image_size == (W, H)
    assert len(Instances.coerce([])) == 0


def test_coerce_with_image_size_checks_and_attaches_it() -> None:
    boxes = Instances.from_boxes([[0, 0, 4, 4]])
    assert boxes.image_size is None
    sized = Instances.coerce(boxes, image_size=(W, H))
    assert sized.image_size == (W, H) and sized.ids == boxes.ids
    assert boxes.image_size is None
    with pytest.raises(InstancesError, match=r"instance 1: masks are 8x6 .* image is 4x4"):
        Instances.coerce(two_masks(), image_size=(4, 4))
    with pytest.raises(InstancesError, match="instance 1: instances were made for a 8x6"):
        Instances.coerce(Instances.from_masks(two_masks()), image_size=(4, 4))


@pytest.mark.parametrize(
    "value",
    [np.zeros((H, W), dtype=bool), "masks.png", 3.5, [np.zeros((2, 2)), 5]],
    ids=["2d-array", "str", "float", "mixed-list"],
)
def test_coerce_refuses_ambiguous_or_unknown(value: object) -> None:
    with pytest.raises(InstitTypeError, match="from_boxes"):
        Instances.coerce(value)


# -- supervision -----------------------------------------------------------------------------


def test_supervision_round_trip_with_masks() -> None:
    instances = Instances.from_masks(two_masks(), [3, 7])
    detections = instances.to_supervision()
    assert isinstance(detections, sv.Detections)
    np.testing.assert_array_equal(detections.tracker_id, [3, 7])
    np.testing.assert_array_equal(detections.mask, two_masks())
    np.testing.assert_array_equal(detections.xyxy, [[2, 1, 5, 3], [7, 4, 8, 5]])
    detections.mask[:] = False  # handed out masks are the caller's to change
    assert instances.masks().any()
    assert Instances.from_supervision(instances.to_supervision()) == instances


def test_from_supervision_boxes_and_default_ids() -> None:
    detections = sv.Detections(xyxy=np.array([[1.0, 2.0, 5.0, 6.0], [0, 0, 3, 3]]))
    instances = Instances.from_supervision(detections)
    assert instances.kind == "box" and instances.ids == (1, 2)
    np.testing.assert_array_equal(instances.boxes(), detections.xyxy)
    assert Instances.from_supervision(detections, [8, 9]).ids == (8, 9)
    back = instances.to_supervision()
    assert back.mask is None
    np.testing.assert_array_equal(back.tracker_id, [1, 2])


def test_from_supervision_uses_tracker_ids_and_masks() -> None:
    masks = two_masks()
    detections = sv.Detections(
        xyxy=np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=float),
        mask=masks,
        tracker_id=np.array([12, 5]),
    )
    instances = Instances.from_supervision(detections)
    assert instances.ids == (12, 5) and instances.kind == "mask"
    np.testing.assert_array_equal(instances.masks(), masks)
    masks[:] = False
    assert instances.masks().any()


def test_from_supervision_bad_tracker_ids() -> None:
    detections = sv.Detections(
        xyxy=np.array([[0, 0, 1, 1], [0, 0, 2, 2]], dtype=float), tracker_id=np.array([3, -1])
    )
    with pytest.raises(InstancesError, match="instance id -1 is not positive"):
        Instances.from_supervision(detections)


def test_empty_supervision_round_trip() -> None:
    empty = Instances.from_supervision(sv.Detections.empty())
    assert len(empty) == 0
    assert len(empty.to_supervision()) == 0
    assert len(Instances.empty((W, H)).to_supervision()) == 0


def test_from_supervision_type_check() -> None:
    with pytest.raises(InstitTypeError, match=r"supervision\.Detections"):
        Instances.from_supervision(two_masks())  # type: ignore[arg-type]


def test_missing_supervision_raises_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "supervision", None)  # makes `import supervision` fail
    boxes = Instances.from_boxes([[0, 0, 2, 2]])
    with pytest.raises(DependencyError, match=r"pip install 'instit\[supervision\]'"):
        boxes.to_supervision()
    with pytest.raises(ImportError):
        Instances.from_supervision(object())  # type: ignore[arg-type]


def test_polygons_and_points_to_supervision() -> None:
    polygons = Instances.from_polygons([[[1, 1], [4, 1], [4, 3], [1, 3]]], image_size=(W, H))
    detections = polygons.to_supervision()
    np.testing.assert_array_equal(detections.mask, polygons.masks())
    points = Instances.from_points([[2, 3]], [5]).to_supervision()
    np.testing.assert_array_equal(points.xyxy, [[2, 3, 2, 3]])
    np.testing.assert_array_equal(points.tracker_id, [5])


# -- dict / JSON -----------------------------------------------------------------------------


def every_kind() -> list[Instances]:
    return [
        Instances.from_masks(two_masks(), [3, 7]),
        Instances.from_boxes([[0.25, 1, 3, 4.5], [1, 1, 2, 2]], [2, 9], image_size=(W, H)),
        Instances.from_boxes([[0.25, 1, 3, 4.5]]),
        Instances.from_polygons(
            {
                4: [[[0, 0], [7, 0], [7, 5], [0, 5]], [[2, 2], [5, 2], [5, 3]]],
                1: [0, 0, 3, 0, 0, 3],
            },
            image_size=(W, H),
        ),
        Instances.from_points([[1.5, 2.25]], [6], image_size=(W, H)),
        Instances.from_points([[1.5, 2.25]]),
        Instances.empty((W, H)),
        Instances.empty(kind="point"),
    ]


@pytest.mark.parametrize("instances", every_kind(), ids=lambda i: f"{i.kind}-{len(i)}")
def test_json_round_trip(instances: Instances) -> None:
    text = instances.to_json()
    back = Instances.from_json(text)
    assert back == instances
    assert back.kind == instances.kind and back.image_size == instances.image_size
    np.testing.assert_array_equal(back.boxes(), instances.boxes())
    assert json.loads(text)["format"] == "instit.instances"


def test_masks_are_stored_as_compressed_rle() -> None:
    data = Instances.from_masks(two_masks(), [3, 7]).to_dict()
    assert data["kind"] == "mask" and data["image_size"] == [W, H] and data["version"] == 1
    first = data["instances"][0]
    assert first["id"] == 3 and first["box"] == [2.0, 1.0, 5.0, 3.0]
    assert first["mask"] == encode_rle(two_masks()[0])
    assert isinstance(first["mask"]["counts"], str)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"format": "instit.instances", "instances": []}, InstancesError, "no 'kind' field"),
        ({"instances": [{"id": 1, "label": "cat"}]}, InstancesError, "annotation 0 has neither"),
        ({"cat": [0, 0, 1, 1]}, InstitTypeError, "instance id 'cat' is not a number"),
        ({"kind": "mask"}, InstancesError, "no 'instances' field"),
        ({"kind": "blob", "instances": []}, InstancesError, "kind 'blob'"),
        ({"kind": "box", "instances": [{"id": 4}]}, InstancesError, "instance 4: missing 'box'"),
        ({"kind": "box", "instances": [{"box": [0, 0, 1, 1]}]}, InstancesError, "missing 'id'"),
        ({"kind": "box", "instances": 5}, InstancesError, "must be a list"),
        (
            {"kind": "polygon", "instances": [{"id": 1, "polygon": [[0, 0], [2, 0], [0, 2]]}]},
            InstancesError,
            "needs an 'image_size'",
        ),
        ([1, 2], InstitTypeError, "needs a dict"),
    ],
)
def test_from_dict_errors(data: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Instances.from_dict(data)  # type: ignore[arg-type]


def test_from_dict_checks_masks_against_the_image_size() -> None:
    data = Instances.from_masks(two_masks()).to_dict()
    data["image_size"] = [16, 12]
    with pytest.raises(InstancesError, match="8x6 mask but the image is 16x12"):
        Instances.from_dict(data)


# -- Tracks ----------------------------------------------------------------------------------


def video_tracks() -> Tracks:
    masks = two_masks()
    return Tracks(
        {
            0: Instances.from_masks(masks, [3, 7]),
            2: Instances.from_masks(masks[:1], [7]),  # 3 vanishes
            5: Instances.from_masks(masks, [7, 3]),  # ... and comes back
        }
    )


def test_tracks_ids_frames_and_at() -> None:
    tracks = video_tracks()
    assert tracks.ids == (3, 7)
    assert tracks.frame_indices == (0, 2, 5)
    assert tracks.image_size == (W, H)
    assert len(tracks) == 3 and list(tracks) == [0, 2, 5] and 2 in tracks
    assert tracks.at(2).ids == (7,)
    assert tracks[5].ids == (7, 3)
    gap = tracks.at(1)
    assert len(gap) == 0 and gap.image_size == (W, H)
    with pytest.raises(KeyError):
        tracks[1]


def test_track_follows_one_id_through_gaps() -> None:
    tracks = video_tracks()
    track = tracks.track(3)
    assert list(track) == [0, 5]
    assert track[5].box == (7.0, 4.0, 8.0, 5.0)
    assert list(tracks.track(7)) == [0, 2, 5]
    with pytest.raises(UnknownIdError, match=r"no instance with id 4 in any frame.*\[3, 7\]"):
        tracks.track(4)


def test_select_frames_rekeys_to_positions() -> None:
    tracks = video_tracks()
    clip = tracks.select_frames([5, 1, 0, 5])
    assert clip.frame_indices == (0, 2, 3)  # position 1 (source frame 1) has no instances
    assert clip[0] == tracks[5] and clip[2] == tracks[0] and clip[3] == tracks[5]
    with pytest.raises(InstancesError, match="frame index -1 is negative"):
        tracks.select_frames([-1])


def test_tracks_json_round_trip() -> None:
    tracks = video_tracks()
    data = json.loads(tracks.to_json())
    assert data["format"] == "instit.tracks" and set(data["frames"]) == {"0", "2", "5"}
    assert Tracks.from_json(tracks.to_json()) == tracks
    assert Tracks.coerce(data) == tracks


def test_tracks_accept_plain_forms() -> None:
    masks = two_masks()
    from_list = Tracks.from_list([{1: masks[0]}, None, masks])
    assert from_list.frame_indices == (0, 2)
    assert from_list[2].ids == (1, 2)
    assert Tracks.coerce([None, {4: masks[1]}]).frame_indices == (1,)
    assert Tracks.coerce({3: masks}).ids == (1, 2)
    tracks = video_tracks()
    assert Tracks.coerce(tracks) is tracks


def test_tracks_bad_input() -> None:
    masks = two_masks()
    with pytest.raises(InstancesError, match="frame 2 is 8x6 but frame 4 is 8x7"):
        Tracks({2: masks, 4: np.ones((1, 7, 8), dtype=bool)})
    with pytest.raises(InstancesError, match="frame index -1 is negative"):
        Tracks({-1: masks})
    with pytest.raises(InstitTypeError, match="frame index 'first' is not a number"):
        Tracks({"first": masks})
    assert Tracks({"0": masks}) == Tracks({0: masks})  # JSON keys are strings
    with pytest.raises(InstancesError, match="frame 3: instance 2: mask is empty"):
        Tracks({3: [masks[0], np.zeros((H, W), dtype=bool)]})
    with pytest.raises(InstitTypeError, match="frame 1: cannot use a int as instances"):
        Tracks({1: 5})
    with pytest.raises(InstitTypeError, match=r"Tracks\.from_list"):
        Tracks([masks])  # type: ignore[arg-type]
    with pytest.raises(InstitTypeError, match="as tracks"):
        Tracks.coerce(5)
    with pytest.raises(InstancesError, match='needs a "frames" dict'):
        Tracks.from_dict({"format": "instit.tracks"})
    with pytest.raises(InstancesError, match="frame key 'x' is not an integer"):
        Tracks.from_dict({"frames": {"x": Instances.empty().to_dict()}})


def test_tracks_do_not_change_the_callers_dict() -> None:
    frames = {5: two_masks(), 1: None}
    Tracks(frames)
    assert list(frames) == [5, 1] and frames[1] is None


# -- import cost -----------------------------------------------------------------------------


def test_import_does_not_load_opencv() -> None:
    import subprocess

    code = "import sys, instit.instances; print('cv2' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["False", "False"]


def test_tracks_with_an_image_size() -> None:
    boxes = Instances.from_boxes([[0, 0, 2, 2]], [4])
    tracks = Tracks({3: boxes}, image_size=(W, H))
    assert tracks.image_size == (W, H) and tracks[3].image_size == (W, H)
    empty_clip = tracks.select_frames([0, 1])
    assert len(empty_clip) == 0 and empty_clip.at(0).image_size == (W, H)
    assert Tracks.from_json(tracks.to_json()) == tracks
    assert Tracks.from_list([None, boxes], image_size=(W, H))[1].image_size == (W, H)
    with pytest.raises(InstancesError, match="frame 0: instance 1: instances were made for a 8x6"):
        Tracks({0: Instances.from_masks(two_masks())}, image_size=(16, 12))
    with pytest.raises(InstancesError, match=r"frame 2: instance 4: box with box \(0, 0, 2, 2\)"):
        Tracks({2: boxes}, image_size=(1, 1))


# -- pickling and array-likes ----------------------------------------------------------------


@pytest.mark.parametrize("instances", every_kind(), ids=lambda i: f"{i.kind}-{len(i)}")
def test_pickle_round_trip_keeps_arrays_read_only(instances: Instances) -> None:
    import pickle

    back = pickle.loads(pickle.dumps(instances))
    assert back == instances
    assert not back.boxes().flags.writeable
    if back.masks() is not None and len(back):
        with pytest.raises(ValueError):
            back.masks()[0, 0, 0] = True
    if back.kind == "polygon":
        assert not back.polygons()[0][0].flags.writeable
    tracks = Tracks({0: instances}) if instances.image_size else Tracks({})
    assert pickle.loads(pickle.dumps(tracks)) == tracks


# Instances (ID 3, a box, label "cat", score 0.5) and Tracks {0: it, 2: it}, pickled (protocol 4)
# by instit before instit.instances became a package
_PICKLED_BEFORE_THE_SPLIT = (
    "gASVWAEAAAAAAACMEGluc3RpdC5pbnN0YW5jZXOUjBJfcmVidWlsZF9pbnN0YW5jZXOUk5QojANib3iUSwOFlEsI"
    "SwaGlIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZGFycmF5lJOU"
    "SwCFlEMBYpSHlFKUKEsBSwFLBIaUaAmMBWR0eXBllJOUjAJmOJSJiIeUUpQoSwOMATyUTk5OSv////9K/////0sA"
    "dJRiiUMgAAAAAAAA8D8AAAAAAAAAQAAAAAAAABRAAAAAAAAAGECUdJRiTk5OjANjYXSUhZRoCGgLSwCFlGgNh5RS"
    "lChLAUsBhZRoFYlDCAAAAAAAAOA/lHSUYnSUUpRoAIwGVHJhY2tzlJOUKYGUfZQojAdfZnJhbWVzlH2UKEsAaCNL"
    "AmgjdYwLX2ltYWdlX3NpemWUaAV1YoaULg=="
)


def test_pickles_from_before_the_package_split_still_load() -> None:
    import base64
    import pickle

    data = base64.b64decode(_PICKLED_BEFORE_THE_SPLIT)
    assert b"instit.instances" in data and b"instit.instances.core" not in data
    instances, tracks = pickle.loads(data)
    expected = Instances.from_boxes({3: [1, 2, 5, 6]}, image_size=(8, 6))
    assert instances == expected.with_labels(["cat"], scores=[0.5])
    assert tracks == Tracks({0: instances, 2: instances})
    assert not instances.boxes().flags.writeable
    # and what is pickled now names the same public path, so older instit versions read it
    assert b"instit.instances.core" not in pickle.dumps((instances, tracks), protocol=4)
    assert Instances.__module__ == Tracks.__module__ == "instit.instances"


def test_torch_tensors_are_read_as_arrays() -> None:
    import torch

    masks = torch.from_numpy(two_masks())
    instances = Instances.from_masks(masks, torch.tensor([5, 6]))
    assert instances.ids == (5, 6)
    np.testing.assert_array_equal(instances.masks(), two_masks())
    masks[:] = False
    assert instances.masks().any()
    boxes = Instances.from_boxes(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(boxes.boxes(), [[0, 0, 2, 3]])


# -- hardening: ID bounds, hostile RLEs, huge and self-intersecting polygons, bad JSON ----------


def test_ids_are_bounded_by_int64() -> None:
    from instit.instances import MAX_ID

    assert MAX_ID == 2**63 - 1
    biggest = Instances.from_boxes([[0, 0, 2, 2]], [MAX_ID])
    assert biggest.to_supervision().tracker_id.tolist() == [MAX_ID]
    for too_big in (2**63, 10**30):
        with pytest.raises(InstancesError, match="larger than 9223372036854775807"):
            Instances.from_boxes([[0, 0, 2, 2]], [too_big])
        with pytest.raises(InstancesError, match="larger than"):
            biggest.relabel({MAX_ID: too_big})
        with pytest.raises(InstancesError, match=r"frame index .* larger than"):
            Tracks({too_big: biggest})
        with pytest.raises(InstancesError, match=r"frame index .* larger than"):
            Tracks.from_dict({"frames": {str(too_big): biggest.to_dict()}})


def test_rle_with_huge_runs_or_endless_numbers_is_corrupt_not_an_overflow() -> None:
    for counts in ([2**63], [0, 2**64, 1], [-(2**63) - 1, 1]):
        with pytest.raises(InstancesError, match="RLE"):
            decode_rle({"size": [2, 2], "counts": counts})
    endless = "o" * 5000 + "0"  # one number continued for 5000 characters
    with pytest.raises(InstancesError, match="more than 13 characters"):
        decode_rle({"size": [2, 2], "counts": endless})
    # the largest 13-character number still parses (then fails the pixel count, cleanly)
    with pytest.raises(InstancesError, match="cover"):
        decode_rle({"size": [2, 2], "counts": "o" * 12 + "?"})


def test_rle_declaring_a_huge_mask_is_refused_before_decoding() -> None:
    import tracemalloc

    huge = encode_rle(np.zeros((1, 1), dtype=bool))
    huge["size"] = [30000, 30000]
    huge["counts"] = "0" + "o" * 6 + "3" + "0"  # runs 0, ~9e8, 0: a few bytes declaring 9e8 px
    tracemalloc.start()
    try:
        with pytest.raises(InstancesError, match="MAX_IMAGE_PIXELS"):
            decode_rle(huge)
        with pytest.raises(InstancesError, match=r"instance 7: .*30000x30000 mask but the image"):
            Instances.from_rle([huge], [7], image_size=(W, H))
        data = {"kind": "mask", "image_size": [W, H], "instances": [{"id": 1, "mask": huge}]}
        with pytest.raises(InstancesError, match="the image is 8x6"):
            Instances.from_dict(data)
        with pytest.raises(InstancesError, match="the image is 8x6"):
            Instances.coerce([huge], image_size=(W, H))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_the_mask_pixel_limit_follows_pillows_setting(monkeypatch) -> None:
    rle = encode_rle(np.ones((10, 10), dtype=bool))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(InstancesError, match="limit of 80 pixels"):
        decode_rle(rle)
    with pytest.raises(InstancesError, match="limit of 80 pixels"):
        Instances.from_polygons([[[0, 0], [5, 0], [0, 5]]], image_size=(10, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert decode_rle(rle).all()


def _signed_depth(points: np.ndarray, corners: list[tuple[float, float]]) -> np.ndarray:
    """How far each point lies inside a convex polygon (negative: outside), in pixels."""
    xs, ys = zip(*corners, strict=True)
    turn = np.sign(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
    depth = np.full(len(points), np.inf)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        nx, ny = turn * (y0 - y1), turn * (x1 - x0)  # inward normal
        distance = ((points[:, 0] - x0) * nx + (points[:, 1] - y0) * ny) / np.hypot(nx, ny)
        depth = np.minimum(depth, distance)
    return depth


@pytest.mark.parametrize("far", [1.4e8, 1e9, 3e12, 9e14])
def test_polygons_with_far_away_vertices_rasterise_exactly(far: float) -> None:
    size = 40
    # a thin wedge from (2, 3) whose far vertices set the slopes of its edges in the image
    corners = [(2.0, 3.0), (2.0 + far, 3.0 + 0.25 * far), (2.0 + far, 3.0 + 0.75 * far)]
    with pytest.warns(GeometryWarning):
        wedge = Instances.from_polygons([corners], image_size=(size, size))
    mask = wedge.masks()[0]
    ys, xs = np.mgrid[0:size, 0:size]
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    depth = _signed_depth(centres, corners).reshape(size, size)
    assert (depth >= 1).sum() > 100
    assert mask[depth >= 1].all() and not mask[depth <= -1].any()
    assert wedge.boxes()[0].tolist() == [2.0, 3.0, size, size]
    # a square far beyond every side covers the whole image
    with pytest.warns(GeometryWarning):
        square = Instances.from_polygons(
            [[[-far, -far], [far, -far], [far, far], [-far, far]]], image_size=(8, 6)
        )
    assert square.masks()[0].all()


def test_a_crop_of_the_rasteriser_is_the_same_pixels_as_the_whole_image() -> None:
    """The mark renderer rasterises each polygon only inside its box (``crop=``); that window
    must hold the pixels of ``Instance.mask`` exactly, far vertices included."""
    from instit.instances.raster import rasterise

    rng = np.random.default_rng(11)
    width, height = 60, 45
    for trial in range(200):
        scale = [70.0, 1e5, 1e9, 1e14][trial % 4]  # inside, and far beyond the margin
        rings = [rng.uniform(-scale, scale, (int(rng.integers(3, 9)), 2)) for _ in range(2)]
        rings[0][0] = rng.uniform(0, 40, 2)  # one vertex in the image
        whole = rasterise(rings, width, height)
        assert whole.shape == (height, width) and whole.dtype == bool
        # the rings' box inside the image, as the renderer takes it, and sometimes a wider one
        points = np.concatenate(rings)
        x0, y0 = np.clip(points.min(axis=0), 0, [width, height])
        x1, y1 = np.clip(points.max(axis=0), 0, [width, height])
        pad = rng.integers(0, 4, 4) * (trial % 2)
        left, top = max(0, math.floor(x0) - pad[0]), max(0, math.floor(y0) - pad[1])
        right = min(width, math.ceil(x1) + 1 + pad[2])
        bottom = min(height, math.ceil(y1) + 1 + pad[3])
        crop = rasterise(rings, width, height, crop=(left, top, right, bottom))
        assert np.array_equal(crop, whole[top:bottom, left:right]), trial


def test_polygon_vertices_beyond_the_coordinate_bound_are_refused() -> None:
    from instit.instances import MAX_COORDINATE

    with pytest.raises(InstancesError, match=r"instance 1: polygon has a vertex beyond"):
        Instances.from_polygons([[[0, 0], [MAX_COORDINATE * 2, 0], [0, 5]]], image_size=(W, H))


def test_self_intersecting_polygons_fill_even_odd() -> None:
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]  # signed area 0: the lobes cancel out
    mask = Instances.from_polygons([bowtie], image_size=(12, 12)).masks()[0]
    assert mask[5, 2] and mask[5, 8]  # inside the left and the right lobe
    assert not mask[1, 5] and not mask[9, 5]  # above and below the crossing
    assert mask[:, 11].sum() == 0
    star = [(50, 5), (79, 95), (2, 35), (98, 35), (21, 95)]  # a pentagram, drawn in one stroke
    star_mask = Instances.from_polygons([star], image_size=(100, 100)).masks()[0]
    assert not star_mask[50, 50]  # the centre is covered twice: outside with even-odd
    assert star_mask[15, 50] and star_mask[40, 10]  # the points of the star are inside


def test_from_json_errors_are_typed() -> None:
    good = Instances.from_boxes([[0, 0, 2, 2]]).to_json()
    bad_inputs = [
        "{not json",
        good + "]",
        "[" * 100_000 + "]" * 100_000,
        '{"kind": "box", "instances": [{"id": 1' + "0" * 5000 + ', "box": [0, 0, 1, 1]}]}',
        b"\xff\xfe\x00{",
    ]
    for text in bad_inputs:
        for reader, what in ((Instances.from_json, "instances"), (Tracks.from_json, "tracks")):
            with pytest.raises(
                InstancesError,
                match=rf"the {what} text(:| is not valid JSON).*pass the text to_json\(\) wrote",
            ):
                reader(text)
    for reader in (Instances.from_json, Tracks.from_json):
        with pytest.raises(InstitTypeError, match="str or bytes"):
            reader(42)  # type: ignore[arg-type]
    assert Instances.from_json(good.encode()) == Instances.from_json(good)


def test_many_rle_masks_declaring_a_huge_total_are_refused_before_decoding() -> None:
    import tracemalloc

    big = {"size": [10000, 10000], "counts": [100_000_000]}  # 1e8 px each, under the limit
    tracemalloc.start()
    try:
        with pytest.raises(InstancesError, match=r"20 RLE masks together .* 8 x Pillow's"):
            Instances.from_rle([big] * 20)  # 2e9 px: a 2 GB stack from a few hundred bytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    small = encode_rle(np.ones((3, 4), dtype=bool))
    assert len(Instances.from_rle([small] * 20)) == 20
