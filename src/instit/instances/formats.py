"""Instances from the annotation formats people already have.

:meth:`instit.Instances.coerce` / :meth:`~instit.Instances.from_dict` (and ``Tracks.coerce``)
hand the plain Python values of a JSON or CSV file here when they are not instit's own
``to_dict()`` format:

* ``{"1": [x0, y0, x1, y1], ...}`` -- IDs are the keys (JSON keys are strings of digits);
* ``[[x0, y0, x1, y1], ...]`` -- IDs ``1..N`` in list order;
* COCO annotations, a list of ``{"bbox": [x, y, w, h], "segmentation": ..., "category_id": ...}``
  (alone, as the ``"annotations"`` of a COCO file of one image, or as the ``"instances"`` of
  instit's bundled ``astronaut_instances.json``) -- IDs are the annotations' ``"id"`` when every
  annotation has one, else ``1..N``; a COCO file's ``"categories"`` name the ``category_id``s
  (the labels; without them an annotation's own ``"label"`` text), results' ``"score"`` are the
  scores;
* rows of supervision's ``JSONSink`` / ``CSVSink`` (``x_min``, ``y_min``, ``x_max``, ``y_max``,
  ``tracker_id``, ...) -- IDs are ``tracker_id`` when every row has one, else ``1..N``; rows
  with a ``frame_index`` column become :class:`~instit.Tracks` keyed by it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from instit.errors import InstancesError, InstitTypeError
from instit.instances._validate import _parse_frame_index, _parse_image_size

if TYPE_CHECKING:  # pragma: no cover
    from instit.instances.core import Instances
    from instit.instances.tracks import Tracks

FORMATS = (
    'instit\'s to_dict() output, {"<id>": [x0, y0, x1, y1]} boxes, {"<id>": mask or COCO RLE}, '
    '[[x0, y0, x1, y1], ...] boxes, COCO annotations (a list of {"bbox", "segmentation", '
    "...}, or a COCO file of one image), or the rows of supervision's JSONSink/CSVSink"
)
"""The formats :meth:`Instances.coerce` reads from JSON-like values, for error messages."""

_SINK_BOX = ("x_min", "y_min", "x_max", "y_max")
_DIGITS_MAX = 20  # a decimal string of more digits cannot be an ID <= MAX_ID


def parse_key(key: object, what: str = "instance id") -> object:
    """A dict key as an ID: strings of ASCII digits (JSON keys) become ints, the rest stays."""
    if isinstance(key, str) and key.isascii() and key.isdigit():
        if len(key) > _DIGITS_MAX:
            raise InstancesError(
                f"{what} {key[:30]}... has {len(key)} digits; IDs must fit a 64-bit integer: "
                "renumber the instances 1, 2, 3 ..."
            )
        return int(key)
    if isinstance(key, str):
        formats = f" Accepted formats: {FORMATS}" if what == "instance id" else ""
        raise InstitTypeError(
            f"{what} {key[:50]!r} is not a number; dict keys must be numbers (1, 2, 3, or "
            f'"1", "2", "3" in JSON).{formats}'
        )
    return key


def split_mapping(geometry: object, ids: object) -> tuple[object, object]:
    """``({id: geometry}, None)`` -> ``(geometries, ids)``; anything else unchanged."""
    if not isinstance(geometry, Mapping):
        return geometry, ids
    if ids is not None:
        raise InstitTypeError("pass the IDs either as dict keys or as ids=, not both")
    return list(geometry.values()), [parse_key(key) for key in geometry]


def is_box(value: object) -> bool:
    """Whether ``value`` is one ``[x0, y0, x1, y1]`` (four numbers, not a mask row)."""
    if isinstance(value, np.ndarray):
        return value.shape == (4,) and value.dtype != np.bool_
    return (
        isinstance(value, (list, tuple)) and len(value) == 4 and all(_is_number(v) for v in value)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_annotation(item: object) -> bool:
    """A COCO annotation or a supervision sink row."""
    return isinstance(item, Mapping) and (
        "bbox" in item or "segmentation" in item or "x_min" in item
    )


def from_wrapper(data: Mapping[str, Any], size: tuple[int, int] | None) -> Instances | None:
    """A COCO file of one image or an ``{"instances": [annotations]}`` file; ``None`` when
    ``data`` is neither."""
    if isinstance(data.get("annotations"), list):
        size = size or _coco_image_size(data)
        return from_annotations(data["annotations"], size, _categories(data))
    if isinstance(data.get("instances"), list) and "kind" not in data:
        own = _parse_image_size(data.get("image_size")) if "image_size" in data else None
        return from_annotations(data["instances"], size or own)
    return None


def _coco_image_size(data: Mapping[str, Any]) -> tuple[int, int] | None:
    images = data.get("images")
    if not isinstance(images, list) or not images:
        return None
    ids = {ann.get("image_id") for ann in data["annotations"] if isinstance(ann, Mapping)}
    if len(images) > 1 or len(ids) > 1:
        raise InstancesError(
            f"the COCO file describes {max(len(images), len(ids))} images; Instances are the "
            "instances of one image: keep the annotations whose image_id is that image's"
        )
    image = images[0]
    if not isinstance(image, Mapping) or "width" not in image or "height" not in image:
        return None
    return _parse_image_size((image["width"], image["height"]))


def _categories(data: Mapping[str, Any]) -> dict[object, str] | None:
    """``{category id: name}`` of a COCO file's ``"categories"`` (``None`` without them)."""
    categories = data.get("categories")
    if categories is None:
        return None
    fix = 'COCO categories are [{"id": 1, "name": "person"}, ...]: fix the file or drop them'
    if not isinstance(categories, list):
        raise InstancesError(f'"categories" is a {type(categories).__name__}; {fix}')
    names: dict[object, str] = {}
    for position, category in enumerate(categories):
        if (
            not isinstance(category, Mapping)
            or category.get("id") in (None, "")
            or not isinstance(category.get("name"), str)
        ):
            raise InstancesError(f"category {position} is {category!r:.100}; {fix}")
        key = _integer(category["id"], f"category {position}: id")
        if not _is_id(key):
            raise InstancesError(f"category {position} has the id {key!r}; {fix}")
        if key in names:
            raise InstancesError(f'category id {key!r} appears twice in "categories"; {fix}')
        names[key] = category["name"]
    return names


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def from_annotations(
    items: Sequence[object],
    size: tuple[int, int] | None,
    categories: Mapping[object, str] | None = None,
) -> Instances:
    """Instances from COCO annotations or supervision sink rows (one image); ``categories``
    (``{category id: name}``) names the COCO annotations' ``category_id``s as labels."""
    from instit.instances.core import Instances

    if not items:
        return Instances.empty(size)
    bad = next((i for i, item in enumerate(items) if not is_annotation(item)), None)
    if bad is not None:
        raise InstancesError(
            f'annotation {bad} has neither "bbox"/"segmentation" (COCO) nor '
            f'"x_min".. (supervision sink); accepted formats: {FORMATS}'
        )
    records: list[Mapping[str, Any]] = list(items)  # type: ignore[arg-type]
    if all("x_min" in item for item in records):
        frames = {_frame_of(item, i) for i, item in enumerate(records)}
        if len(frames) > 1:
            raise InstancesError(
                f"the supervision rows hold {len(frames)} frames (frame_index "
                f"{sorted(frames, key=str)[:3]}...); load them as Tracks (instit.Tracks.coerce, "
                "or pass them as a video's tracks) or keep the rows of one frame"
            )
        return _from_sink_rows(records, size)
    return _from_coco(records, size, categories)


def _ids_from(
    records: Sequence[Mapping[str, Any]],
    key: str,
    what: str,
    *,
    meaning: str = "the instance ID",
    otherwise: str = "IDs 1..N in order",
) -> list[object] | None:
    """Every record's ``key`` (``None`` when no record has one); mixing is an error."""
    present = [record.get(key) not in (None, "") for record in records]
    if not any(present):
        return None
    if not all(present):
        missing = present.index(False)
        raise InstancesError(
            f"{what} {missing} has no {key!r} but others do; give every {what} its {key!r} "
            f"({meaning}) or none ({otherwise})"
        )
    return [_integer(record[key], f"{what} {i}: {key}") for i, record in enumerate(records)]


def _integer(value: object, what: str) -> object:
    """Integers, and digit strings (CSV cells) as integers; anything else for the ID checks."""
    if isinstance(value, str):
        return parse_key(value.strip(), what)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif _is_number(value):
        return float(value)  # type: ignore[arg-type]
    raise InstancesError(f"{what} is {value!r}; expected a number")


def _frame_of(row: Mapping[str, Any], position: int) -> object:
    if "frame_index" not in row:
        return None
    return _integer(row["frame_index"], f"row {position}: frame_index")


def _from_sink_rows(rows: Sequence[Mapping[str, Any]], size: tuple[int, int] | None) -> Instances:
    from instit.instances.core import Instances

    boxes = [
        [_number(row[key], f"row {i}: {key}") for key in _SINK_BOX] for i, row in enumerate(rows)
    ]
    found = Instances.from_boxes(boxes, _ids_from(rows, "tracker_id", "row"), image_size=size)
    return _labelled(found, rows, label="class_name", score="confidence")


def _labelled(
    instances: Instances,
    records: Sequence[Mapping[str, Any]],
    *,
    label: str | None,
    score: str,
) -> Instances:
    """``instances`` with the records' ``label`` texts and ``score`` numbers (as
    ``Instances.from_supervision`` keeps them), each only when every record has one."""
    labels = [r.get(label) if label else None for r in records]
    scores = [r.get(score) for r in records]
    return instances.with_labels(
        [str(x) for x in labels] if all(x not in (None, "") for x in labels) else None,
        scores=(
            [_number(x, f"{score} of record {i}") for i, x in enumerate(scores)]
            if records and all(x not in (None, "") for x in scores)
            else None
        ),
    )


def _is_rle(value: object) -> bool:
    return isinstance(value, Mapping) and "counts" in value and "size" in value


def _from_coco(
    annotations: Sequence[Mapping[str, Any]],
    size: tuple[int, int] | None,
    categories: Mapping[object, str] | None,
) -> Instances:
    found = _coco_geometry(annotations, size)
    # a "label" text per annotation (instit's own files, {"instances": [...]}) and COCO
    # results' "score"s; a file's "categories" name the labels instead when it has them
    found = _labelled(found, annotations, label="label", score="score")
    if categories is None:
        return found
    return found.with_labels(_category_names(annotations, categories))


def _category_names(
    annotations: Sequence[Mapping[str, Any]], categories: Mapping[object, str]
) -> list[str] | None:
    """The name of every annotation's ``category_id`` (``None`` when none has one)."""
    ids = _ids_from(
        annotations, "category_id", "annotation", meaning="its class", otherwise="no labels"
    )
    if ids is None:
        return None
    unknown = next(
        (i for i, key in enumerate(ids) if not _is_id(key) or key not in categories), None
    )
    if unknown is not None:
        known = ", ".join(str(key) for key in list(categories)[:10])
        raise InstancesError(
            f"annotation {unknown}: category_id {ids[unknown]!r} is not in the file's "
            f'"categories" (ids {known}); add that category or fix the annotation'
        )
    return [categories[key] for key in ids]


def _coco_geometry(
    annotations: Sequence[Mapping[str, Any]], size: tuple[int, int] | None
) -> Instances:
    from instit.instances.core import Instances

    ids = _ids_from(annotations, "id", "annotation")
    segmentations = [ann.get("segmentation") for ann in annotations]
    has_segmentation = [bool(seg) for seg in segmentations]
    if not any(has_segmentation):
        boxes = [_coco_box(ann, i) for i, ann in enumerate(annotations)]
        return Instances.from_boxes(boxes, ids, image_size=size)
    if not all(has_segmentation):
        missing = has_segmentation.index(False)
        raise InstancesError(
            f"annotation {missing} has no segmentation but others do; one Instances holds one "
            "kind of geometry: give every annotation a segmentation, or drop the segmentations "
            "to use the bboxes"
        )
    if all(_is_rle(seg) for seg in segmentations):
        return Instances.from_rle(segmentations, ids, image_size=size)
    if size is None:
        size = next((_rle_size(seg) for seg in segmentations if _is_rle(seg)), None)
    if size is None:
        raise InstancesError(
            "COCO polygon segmentations need the image size to be rasterised; pass "
            "image_size=(width, height) (the CLI passes the image's), or use a COCO file with "
            'its "images" entry'
        )
    if not any(_is_rle(seg) for seg in segmentations):
        return Instances.from_polygons(segmentations, ids, image_size=size)
    # polygons and RLEs mixed: rasterise the polygons, one Instances of masks
    labels = ids if ids is not None else list(range(1, len(annotations) + 1))
    masks = {}
    for label, seg in zip(labels, segmentations, strict=True):
        one = (
            Instances.from_rle([seg], [label], image_size=size)  # type: ignore[list-item]
            if _is_rle(seg)
            else Instances.from_polygons([seg], [label], image_size=size)  # type: ignore[list-item]
        )
        masks[label] = one.masks()[0]  # type: ignore[index]
    return Instances.from_masks(masks, image_size=size)


def _rle_size(rle: Mapping[str, Any]) -> tuple[int, int] | None:
    declared = rle.get("size")
    if isinstance(declared, Sequence) and len(declared) == 2:
        return _parse_image_size((declared[1], declared[0]))
    return None


def _coco_box(annotation: Mapping[str, Any], position: int) -> list[float]:
    bbox = annotation.get("bbox")
    if not isinstance(bbox, Sequence) or isinstance(bbox, str) or len(bbox) != 4:
        raise InstancesError(
            f'annotation {position}: "bbox" is {bbox!r}; COCO boxes are [x, y, width, height]'
        )
    x, y, w, h = (_number(v, f"annotation {position}: bbox") for v in bbox)
    if math.isfinite(w) and math.isfinite(h) and (w < 0 or h < 0):
        raise InstancesError(
            f"annotation {position}: bbox {list(bbox)} has a negative width or height; COCO "
            "boxes are [x, y, width, height]"
        )
    return [x, y, x + w, y + h]


def is_sink_rows(value: object) -> bool:
    """A non-empty list of supervision sink rows (dicts with ``x_min``)."""
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(row, Mapping) and "x_min" in row for row in value)
    )


def tracks_from_sink_rows(rows: Sequence[Mapping[str, Any]]) -> Tracks:
    """Tracks from supervision sink rows with a ``frame_index`` column (IDs: ``tracker_id``)."""
    from instit.instances.tracks import Tracks

    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for position, row in enumerate(rows):
        if row.get("frame_index") in (None, ""):
            raise InstancesError(
                f"row {position} has no frame_index; supervision rows of a video need the "
                'frame number (sink.append(detections, custom_data={"frame_index": i}))'
            )
        grouped.setdefault(_parse_frame_index(_frame_of(row, position)), []).append(row)
    if _ids_from(rows, "tracker_id", "row") is None:
        raise InstancesError(
            "the supervision rows have no tracker_id; the instances of a video need IDs shared "
            "across frames: run a tracker (e.g. sv.ByteTrack) before saving the detections"
        )
    frames: dict[int, Instances] = {}
    for index, group in grouped.items():
        try:
            frames[index] = _from_sink_rows(group, None)
        except (InstancesError, InstitTypeError) as exc:
            raise type(exc)(f"frame {index}: {exc}") from exc
    return Tracks(frames)
