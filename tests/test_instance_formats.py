"""Inputs people already have: JSON boxes, COCO annotations, supervision sinks, string keys,
dict-keyed constructors; and tracks whose frames were not sampled (Tracks.sampled)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from instit import UnsampledFramesWarning
from instit.errors import InstancesError, InstitTypeError
from instit.examples_data import example_image
from instit.instances import GeometryWarning, Instances, Tracks, encode_rle

ASSET = Path(__file__).resolve().parents[1] / "src" / "instit" / "assets"
W, H = 12, 10


def square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# -- dict id -> geometry, everywhere ---------------------------------------------------------


def test_every_constructor_takes_a_dict_of_id_to_geometry() -> None:
    boxes = Instances.from_boxes({4: [0, 0, 2, 2], 2: [1, 1, 3, 3]})
    assert boxes.ids == (4, 2) and boxes.boxes().tolist() == [[0, 0, 2, 2], [1, 1, 3, 3]]
    assert boxes == Instances.from_boxes([[0, 0, 2, 2], [1, 1, 3, 3]], [4, 2])
    points = Instances.from_points({5: (1.5, 2.0)})
    assert points.ids == (5,) and points.points().tolist() == [[1.5, 2.0]]
    assert Instances.from_masks({3: square(1, 1, 4, 4)}).ids == (3,)
    ring = [[1, 1], [6, 1], [6, 6]]
    assert Instances.from_polygons({9: ring}, image_size=(W, H)).ids == (9,)
    rle = encode_rle(square(1, 1, 4, 4))
    assert Instances.from_rle({8: rle}).ids == (8,)
    for constructor in (Instances.from_boxes, Instances.from_points):
        with pytest.raises(InstitTypeError, match="either as dict keys or as ids="):
            constructor({1: [0, 0, 1, 1][: 4 if constructor is Instances.from_boxes else 2]}, [1])


def test_json_keys_are_ids() -> None:
    from_json = Instances.from_json(json.dumps({"1": [0, 0, 5, 4], "3": [2, 2, 8, 9]}))
    assert from_json.kind == "box" and from_json.ids == (1, 3)
    assert from_json == Instances.from_boxes({1: [0, 0, 5, 4], 3: [2, 2, 8, 9]})
    assert Instances.from_boxes({"7": [0, 0, 1, 1]}).ids == (7,)
    rle = encode_rle(square(0, 0, 3, 3))
    assert Instances.coerce({"2": rle}).ids == (2,)
    assert Instances.from_masks({"6": square(0, 0, 3, 3)}).ids == (6,)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"a": [0, 0, 1, 1]}, InstitTypeError, "instance id 'a' is not a number"),
        ({"0": [0, 0, 1, 1]}, InstancesError, "instance id 0 is not positive"),
        ({"1" * 25: [0, 0, 1, 1]}, InstancesError, "has 25 digits"),
        ({"1": [0, 0, 1, 1], "01": [0, 0, 2, 2]}, InstancesError, "appears more than once"),
        ({"1": [3, 0, 1, 1]}, InstancesError, "x1 < x0"),
    ],
)
def test_json_boxes_errors(data: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Instances.coerce(data)


def test_a_list_of_boxes_gets_ids_in_order() -> None:
    instances = Instances.coerce([[0, 0, 5, 4], [2, 2, 8, 9.5]], image_size=(W, H))
    assert instances.kind == "box" and instances.ids == (1, 2)
    assert instances.image_size == (W, H)
    assert instances.boxes()[1].tolist() == [2, 2, 8, 9.5]
    with pytest.warns(GeometryWarning, match="clipped"):  # as from_boxes does
        assert Instances.coerce([[0, 0, 50, 4]], image_size=(W, H)).boxes()[0, 2] == W
    with pytest.raises(InstitTypeError, match="COCO annotations"):
        Instances.coerce([[0, 0, 5, 4], [1, 2, 3]])  # not all boxes: the formats are listed


# -- COCO --------------------------------------------------------------------------------------


def test_coco_boxes_are_xywh_and_ids_are_the_annotation_ids() -> None:
    annotations = [
        {"id": 41, "bbox": [1, 2, 3, 4], "category_id": 18, "score": 0.9},
        {"id": 7, "bbox": [0, 0, 5, 5], "category_id": 1, "score": 0.5},
    ]
    instances = Instances.coerce(annotations)
    assert instances.kind == "box" and instances.ids == (41, 7)
    assert instances.boxes().tolist() == [[1, 2, 4, 6], [0, 0, 5, 5]]
    without_ids = [{k: v for k, v in a.items() if k != "id"} for a in annotations]
    assert Instances.coerce(without_ids).ids == (1, 2)


def test_coco_polygons_and_rles() -> None:
    polygon = {"segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]], "bbox": [1, 1, 5, 5], "id": 3}
    with pytest.raises(InstancesError, match="need the image size"):
        Instances.coerce([polygon])
    instances = Instances.coerce([polygon], image_size=(W, H))
    assert instances.kind == "polygon" and instances.ids == (3,)
    expected = Instances.from_polygons([[[1, 1], [6, 1], [6, 6], [1, 6]]], [3], image_size=(W, H))
    assert np.array_equal(instances.masks(), expected.masks())
    two_parts = {"segmentation": [[0, 0, 2, 0, 2, 2], [8, 8, 11, 8, 11, 9]], "id": 5}
    assert Instances.coerce([two_parts], image_size=(W, H)).masks()[0, 8, 10]

    mask = square(2, 3, 7, 8)
    rle = {"segmentation": encode_rle(mask), "bbox": [2, 3, 5, 5], "id": 4}
    by_rle = Instances.coerce([rle])  # the RLE carries the size
    assert by_rle.kind == "mask" and by_rle.image_size == (W, H)
    assert np.array_equal(by_rle.masks()[0], mask)
    uncompressed = {"segmentation": encode_rle(mask, compressed=False), "id": 4}
    assert Instances.coerce([uncompressed]) == by_rle

    mixed = Instances.coerce([polygon, rle])  # polygons rasterised at the RLE's size
    assert mixed.kind == "mask" and mixed.ids == (3, 4)
    assert np.array_equal(mixed.masks()[0], expected.masks()[0])
    assert np.array_equal(mixed.masks()[1], mask)


def test_coco_files_and_the_bundled_example() -> None:
    image, instances = example_image()
    bundled = json.loads((ASSET / "astronaut_instances.json").read_text())
    names = tuple(item["label"] for item in bundled["instances"])
    assert len(set(names)) == len(names) > 1
    labelled = instances.with_labels(names)  # the file's "label" texts are kept
    assert Instances.from_dict(bundled) == labelled
    assert Instances.coerce(bundled, image_size=image.size) == labelled
    assert Instances.from_dict(bundled).labels == names

    coco = {
        "images": [{"id": 9, "width": W, "height": H, "file_name": "a.png"}],
        "annotations": [
            {"id": 1, "image_id": 9, "segmentation": [[1, 1, 6, 1, 6, 6]], "category_id": 2},
        ],
        "categories": [{"id": 2, "name": "cat"}],
    }
    assert Instances.from_dict(coco).image_size == (W, H)
    coco["images"].append({"id": 10, "width": W, "height": H})
    coco["annotations"].append({**coco["annotations"][0], "id": 2, "image_id": 10})
    with pytest.raises(InstancesError, match="describes 2 images"):
        Instances.from_dict(coco)


def coco_file() -> dict:
    """A COCO file of one image: a polygon and an RLE, with categories and result scores."""
    return {
        "images": [{"id": 9, "width": W, "height": H, "file_name": "a.png"}],
        "annotations": [
            {
                "id": 5,
                "image_id": 9,
                "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]],
                "bbox": [1, 1, 5, 5],
                "category_id": 18,
                "score": 0.9,
            },
            {
                "id": 2,
                "image_id": 9,
                "segmentation": encode_rle(square(7, 2, 11, 9)),
                "bbox": [7, 2, 4, 7],
                "category_id": 1,
                "score": 0.25,
            },
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 3, "name": "car"},
        ],
    }


def test_coco_categories_name_the_labels_and_scores_are_kept() -> None:
    coco = coco_file()
    instances = Instances.from_dict(coco)
    assert instances.ids == (5, 2) and instances.kind == "mask"
    assert instances.labels == ("dog", "person")
    assert instances.scores.tolist() == [0.9, 0.25]
    assert [(i.id, i.label, i.score) for i in instances] == [(5, "dog", 0.9), (2, "person", 0.25)]
    assert np.array_equal(instances[2].mask, square(7, 2, 11, 9))
    assert Instances.coerce(coco, image_size=(W, H)) == instances
    assert Instances.from_json(json.dumps(coco)) == instances
    assert Instances.from_dict(instances.to_dict()) == instances  # labels survive to_dict
    # without "categories" the category ids name nothing: no labels, the scores stay
    del coco["categories"]
    bare = Instances.from_dict(coco)
    assert bare.labels is None and bare.scores.tolist() == [0.9, 0.25]
    # annotations without category_id: no labels, even with categories
    coco = coco_file()
    for annotation in coco["annotations"]:
        del annotation["category_id"]
    assert Instances.from_dict(coco).labels is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["annotations"][1].update(category_id=7),
            r"annotation 1: category_id 7 is not in the file's \"categories\" \(ids 1, 18, 3\)",
        ),
        (
            lambda c: c["annotations"][1].pop("category_id"),
            r"annotation 1 has no 'category_id' but others do; .*\(its class\) or none \(no labels",
        ),
        (
            lambda c: c.update(categories={"1": "person"}),
            r'"categories" is a dict; COCO categories',
        ),
        (lambda c: c["categories"][2].pop("name"), r"category 2 is \{'id': 3\}; COCO categories"),
        (lambda c: c["categories"][2].update(id=[3]), r"category 2 has the id \[3\]"),
        (lambda c: c["categories"][2].update(id=18), r"category id 18 appears twice"),
        (lambda c: c["annotations"][0].update(category_id=[18]), r"category_id \[18\] is not in"),
    ],
)
def test_coco_categories_that_do_not_fit_are_refused(edit, message: str) -> None:
    coco = coco_file()
    edit(coco)
    with pytest.raises(InstancesError, match=message):
        Instances.from_dict(coco)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ([{"bbox": [0, 0, 1, 1], "id": 1}, {"bbox": [0, 0, 2, 2]}], "annotation 1 has no 'id'"),
        ([{"bbox": [0, 0, 1]}], r'"bbox" is \[0, 0, 1\]; COCO boxes are \[x, y, width'),
        ([{"bbox": [0, 0, -1, 1]}], "negative width"),
        ([{"bbox": [0, 0, "x", 1]}], "expected a number"),
        (
            [{"segmentation": [[0, 0, 2, 0, 2, 2]]}, {"bbox": [0, 0, 1, 1]}],
            "annotation 1 has no segmentation",
        ),
        ([{"bbox": [0, 0, 1, 1]}, {"label": "dog"}], "annotation 1 has neither"),
        ([{"bbox": [0, 0, 1, 1], "id": 0}], "not positive"),
    ],
)
def test_coco_errors(annotations: list, message: str) -> None:
    with pytest.raises(InstancesError, match=message):
        Instances.coerce(annotations, image_size=(W, H))


# -- supervision sinks -------------------------------------------------------------------------


def detections(tracker: bool = True) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[1.0, 2.0, 5.0, 6.0], [0.0, 0.0, 3.0, 3.0]]),
        confidence=np.array([0.9, 0.4]),
        class_id=np.array([0, 2]),
        tracker_id=np.array([12, 5]) if tracker else None,
    )


def test_supervision_json_sink_rows(tmp_path: Path) -> None:
    path = tmp_path / "detections.json"
    with sv.JSONSink(str(path)) as sink:
        sink.append(detections())
    rows = json.loads(path.read_text())
    instances = Instances.coerce(rows)
    assert instances == Instances.from_supervision(detections())  # IDs are the tracker IDs
    assert instances.ids == (12, 5)
    with sv.JSONSink(str(path)) as sink:
        sink.append(detections(tracker=False))
    assert Instances.coerce(json.loads(path.read_text())).ids == (1, 2)


def test_supervision_rows_of_a_video_are_tracks(tmp_path: Path) -> None:
    path = tmp_path / "video.json"
    with sv.JSONSink(str(path)) as sink:
        for frame in (0, 4):
            sink.append(detections(), custom_data={"frame_index": frame})
    rows = json.loads(path.read_text())
    tracks = Tracks.coerce(rows)
    assert tracks.frame_indices == (0, 4) and tracks.ids == (5, 12)
    assert tracks.at(4) == Instances.from_supervision(detections())
    with pytest.raises(InstancesError, match=r"hold 2 frames.*load them as Tracks"):
        Instances.coerce(rows)
    with sv.JSONSink(str(path)) as sink:
        sink.append(detections(tracker=False), custom_data={"frame_index": 0})
    with pytest.raises(InstancesError, match=r"no tracker_id.*run a tracker"):
        Tracks.coerce(json.loads(path.read_text()))
    with pytest.raises(InstancesError, match="row 0 has no frame_index"):
        Tracks.coerce([{k: v for k, v in row.items() if k != "frame_index"} for row in rows])


def test_csv_sink_cells_are_text() -> None:
    row = {"x_min": "1.5", "y_min": "2", "x_max": "4", "y_max": "6", "tracker_id": "3"}
    assert Instances.coerce([row]).boxes().tolist() == [[1.5, 2, 4, 6]]
    assert Instances.coerce([row]).ids == (3,)
    with pytest.raises(InstancesError, match="row 0: x_max is 'wide'; expected a number"):
        Instances.coerce([{**row, "x_max": "wide"}])


# -- tracks on frames that were not sampled ---------------------------------------------------


def box(x: int) -> Instances:
    return Instances.from_boxes([[x, 0, x + 2, 2]], [1])


def test_sampled_warns_about_tracked_frames_that_were_not_sampled() -> None:
    tracks = Tracks({0: box(0), 5: box(5), 9: box(9), 256: box(1)})
    with pytest.warns(UnsampledFramesWarning, match="2 of 4 tracked frames") as caught:
        sampled = tracks.sampled([0, 4, 9])
    assert sampled.frame_indices == (0, 2)  # positions
    assert sampled.at(2) == box(9)
    warning = caught[0].message
    assert isinstance(warning, UnsampledFramesWarning)
    assert warning.dropped == (5, 256) and warning.marked == 2
    assert "source frames 5, 256" in str(warning) and "snap=True" in str(warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tracks.sampled([0, 5, 9, 256]).frame_indices == (0, 1, 2, 3)  # nothing lost


def test_snap_moves_frames_to_the_nearest_sampled_frame() -> None:
    tracks = Tracks({3: box(3), 5: box(5), 7: box(7), 12: box(1), 30: box(4)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        snapped = tracks.sampled([0, 5, 10, 20], snap=True)
    # 5 keeps its own entry (3 and 7 lose to it); 12 -> 10; 30 -> 20 (nearest)
    assert snapped == Tracks({1: box(5), 2: box(1), 3: box(4)})
    (warning,) = [w.message for w in caught]
    assert isinstance(warning, UnsampledFramesWarning) and warning.dropped == (3, 7)
    assert "nearer to their sampled frames" in str(warning)
    # a tie goes to the earlier sampled frame; two frames competing: the nearest wins
    assert Tracks({5: box(5)}).sampled([0, 10], snap=True) == Tracks({0: box(5)})
    with pytest.warns(UnsampledFramesWarning) as caught_tie:
        tied = Tracks({11: box(1), 13: box(3)}).sampled([0, 12], snap=True)
    assert tied == Tracks({1: box(1)}) and caught_tie[0].message.dropped == (13,)
    # repeated positions (duplicates=True sampling) repeat the entry
    assert Tracks({2: box(2)}).sampled([1, 1], snap=True) == Tracks({0: box(2), 1: box(2)})


def test_labels_and_scores_come_along() -> None:
    """supervision rows keep class_name and confidence, COCO results their score, as
    Instances.from_supervision does; a column only some rows have is left out."""
    rows = [
        {"x_min": 1, "y_min": 2, "x_max": 5, "y_max": 6, "confidence": 0.9, "class_name": "cat"},
        {"x_min": 0, "y_min": 0, "x_max": 3, "y_max": 3, "confidence": "0.4", "class_name": "dog"},
    ]
    instances = Instances.coerce(rows)
    assert instances.labels == ("cat", "dog") and list(instances.scores) == [0.9, 0.4]
    rows[1].pop("class_name")
    assert Instances.coerce(rows).labels is None
    coco = [
        {"id": 3, "bbox": [0, 0, 2, 2], "category_id": 1, "score": 0.75},
        {"id": 4, "bbox": [1, 1, 2, 2], "category_id": 1, "score": 0.5},
    ]
    found = Instances.coerce(coco)
    assert found.ids == (3, 4) and list(found.scores) == [0.75, 0.5] and found.labels is None
