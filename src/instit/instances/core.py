"""The instances of one image: :class:`Instance` and :class:`Instances`.

One kind of geometry per :class:`Instances` (masks, boxes, polygons or points), each with a
unique positive ID; constructors check what they are given (:mod:`._validate`), masks travel as
COCO RLE (:mod:`.rle`), polygons become masks through :func:`.raster.rasterise`, and the
annotation files people already have are read by :mod:`.formats`.
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from instit import _json
from instit.errors import DependencyError, InstancesError, InstitTypeError
from instit.instances._validate import (
    _as_array_if_array_like,
    _check_pixels,
    _float_rows,
    _fmt,
    _mask_to_bool,
    _ndim,
    _parse_ids,
    _parse_image_size,
    _parse_polygon,
    _readonly,
)
from instit.instances.formats import (
    FORMATS,
    from_annotations,
    from_wrapper,
    is_annotation,
    is_box,
    parse_key,
    split_mapping,
)
from instit.instances.raster import contours, mask_boxes, rasterise
from instit.instances.rle import _declared_pixels, decode_rle, encode_rle

if TYPE_CHECKING:
    import supervision as sv

_FORMAT_VERSION = 1
# the masks of one Instances decoded from RLE: at most this many times the pixel limit together
_MAX_MASK_LIMITS = 8

Kind = Literal["mask", "box", "polygon", "point"]
KINDS: tuple[str, ...] = ("mask", "box", "polygon", "point")


class GeometryWarning(UserWarning):
    """Geometry was changed to fit the image (for example a box clipped at the image border)."""


class UnknownIdError(InstancesError, KeyError):
    """An instance ID that is not present was asked for (also a :class:`KeyError`)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


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
        boxes, _ = mask_boxes(masks)
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
        boxes, nonempty = mask_boxes(stack)
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
                if not rasterise(rings, width, height).any():
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
            mask = _readonly(rasterise(polygon, *self._image_size))
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
            stack[index] = rasterise(rings, width, height)
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
        return [contours(mask, box) for mask, box in zip(self._masks, self._boxes, strict=True)]

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
        return cls.from_dict(_decode(text, "instances"))

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


def _decode(text: object, what: str) -> Any:
    """The value of ``from_json``'s ``text`` (``what``: instances or tracks)."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise InstitTypeError(
            f"{what} JSON must be a str or bytes, got {type(text).__name__}; for a dict use "
            "from_dict"
        )
    return _json.loads(
        text, f"the {what} text", error=InstancesError, fix="; pass the text to_json() wrote"
    )


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
