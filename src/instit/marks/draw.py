"""Drawing Set-of-Marks: :func:`draw_marks`, :func:`draw_marks_frames`, :func:`layout_marks`.

Drawing happens on a new ``HxWx3`` uint8 buffer (the caller's image is never touched) by a
short pipeline of annotators, one small class per drawing job, each with one verb
``annotate(canvas, shapes, layout)`` that draws in place.  Every annotator reads the same
:func:`layout_marks` result, so what ``layout_marks`` returns is exactly what gets drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image

from instit.errors import InstancesError
from instit.marks.geometry import Shape, shapes_from
from instit.marks.layout import Placement, layout
from instit.marks.style import MarkStyle, ResolvedStyle, coerce_style
from instit.marks.text import text_mask
from instit.media import Channels


class ContourAnnotator:
    """Outlines every mask / polygon instance (outer borders and holes) in its colour; boxes
    get their box, points a dot."""

    def __init__(self, width: int, radius: int) -> None:
        self.width = width
        self.radius = radius

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        for shape in shapes:
            color = placements[shape.id].color
            if shape.kind == "point":
                _draw_dot(canvas, shape.anchor, color, self.radius)
                continue
            if shape.roi is None:
                _draw_box(canvas, shape.box, color, self.width)
                continue
            contours, _ = cv2.findContours(
                shape.roi.view(np.uint8),
                cv2.RETR_LIST,
                cv2.CHAIN_APPROX_SIMPLE,
                offset=shape.origin,
            )
            cv2.drawContours(canvas, contours, -1, color, self.width, cv2.LINE_AA)


class FillAnnotator:
    """Fills every instance with its colour at ``alpha`` opacity."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        weight = round(self.alpha * 256)
        for shape in shapes:
            color = np.asarray(placements[shape.id].color, dtype=np.uint32) * weight
            if shape.roi is None:
                x0, y0, x1, y1 = _pixel_box(shape.box, canvas.shape)
                region = canvas[y0:y1, x0:x1]
                region[...] = (region * np.uint32(256 - weight) + color) >> 8
                continue
            left, top = shape.origin
            height, width = shape.roi.shape
            region = canvas[top : top + height, left : left + width]
            pixels = region[shape.roi].astype(np.uint32)
            region[shape.roi] = (pixels * np.uint32(256 - weight) + color) >> 8


class BoxAnnotator:
    """Draws the bounding box of every instance (a dot for points, which have no box)."""

    def __init__(self, width: int, radius: int) -> None:
        self.width = width
        self.radius = radius

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        for shape in shapes:
            color = placements[shape.id].color
            if shape.kind == "point":
                _draw_dot(canvas, shape.anchor, color, self.radius)
            else:
                _draw_box(canvas, shape.box, color, self.width)


class PointAnnotator:
    """Draws a dot in the instance colour at every label anchor."""

    def __init__(self, radius: int) -> None:
        self.radius = radius

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        del shapes
        for placement in placements.values():
            _draw_dot(canvas, placement.anchor, placement.color, self.radius)


class LeaderAnnotator:
    """Connects labels that were moved far from their instance to their anchor."""

    def __init__(self, width: int, radius: int) -> None:
        self.width = width
        self.radius = radius

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        del shapes
        for placement in placements.values():
            if placement.leader is None:
                continue
            start, end = (_int_point(p) for p in placement.leader)
            cv2.line(canvas, start, end, placement.color, self.width, cv2.LINE_AA)
            cv2.circle(canvas, start, self.radius, placement.color, -1, cv2.LINE_AA)


class LabelAnnotator:
    """Draws each label: a translucent box and the ID text.

    A label is one fixed-point blend ``out = (under * scale + offset) >> 16`` per pixel, with
    ``scale`` and ``offset`` precomputed (and cached) from the glyph coverage, the box and text
    colours and the box opacity.
    """

    def __init__(self, style: ResolvedStyle) -> None:
        self.style = style

    def annotate(
        self, canvas: np.ndarray, shapes: list[Shape], placements: dict[int, Placement]
    ) -> None:
        del shapes
        style = self.style
        for placement in placements.values():
            x0, y0, x1, y1 = placement.box
            region = canvas[y0:y1, x0:x1]
            scale, offset = _label_tile(
                style, placement.text, placement.box_color, placement.text_color
            )
            height, width = region.shape[:2]  # smaller than the tile only on tiny images
            blended = region * scale[:height, :width] + offset[:height, :width]
            region[...] = blended >> 16


@lru_cache(maxsize=1024)
def _label_tile(
    style: ResolvedStyle,
    text: str,
    box_color: tuple[int, int, int],
    text_color: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` uint32 arrays of a label box, in 1/65536 units.

    With glyph coverage ``g`` and box opacity ``a``, a pixel ``v`` under the label becomes
    ``v * (1 - a) * (1 - g) + box * a * (1 - g) + text * g``.
    """
    glyphs = text_mask(style.font, style.font_size, style.antialias, text)
    glyph_h, glyph_w = glyphs.shape
    coverage = np.zeros(
        (glyph_h + style.pad_top + style.pad_bottom, glyph_w + 2 * style.pad_x), dtype=np.float64
    )
    coverage[style.pad_top : style.pad_top + glyph_h, style.pad_x : style.pad_x + glyph_w] = (
        glyphs / 255
    )
    coverage = coverage[:, :, None]
    alpha = style.box_alpha
    scale = (1 - alpha) * (1 - coverage) * 65536
    offset = (
        np.asarray(box_color) * alpha * (1 - coverage) + np.asarray(text_color) * coverage
    ) * 65536 + 32768
    scale = np.broadcast_to(np.rint(scale).astype(np.uint32), offset.shape).copy()
    offset = np.rint(offset).astype(np.uint32)
    scale.flags.writeable = offset.flags.writeable = False
    return scale, offset


def annotators(style: ResolvedStyle) -> list[Any]:
    """The annotator pipeline for ``style``, in drawing order."""
    pipeline: list[Any] = []
    if style.mask == "contour":
        pipeline.append(ContourAnnotator(style.line_width, style.point_radius))
    elif style.mask == "fill":
        pipeline += [
            FillAnnotator(style.fill_alpha),
            ContourAnnotator(style.line_width, style.point_radius),
        ]
    elif style.mask == "box":
        pipeline.append(BoxAnnotator(style.line_width, style.point_radius))
    elif style.mask == "point":
        pipeline.append(PointAnnotator(style.point_radius))
    pipeline += [LeaderAnnotator(style.leader_width, style.point_radius), LabelAnnotator(style)]
    return pipeline


def layout_marks(
    image: Any,
    instances: Any,
    style: MarkStyle | str | None = None,
    *,
    channels: Channels = "rgb",
    **options: Any,
) -> dict[int, Placement]:
    """Where :func:`draw_marks` puts each label, as ``{instance_id: Placement}``.

    Takes the same arguments as :func:`draw_marks` and returns exactly the placement it draws.
    """
    pixels = _pixels(image, channels)
    shapes, resolved = _prepare(image, pixels, instances, style, options, "image")
    return layout(pixels, shapes, resolved)


def draw_marks(
    image: Any,
    instances: Any,
    style: MarkStyle | str | None = None,
    *,
    channels: Channels = "rgb",
    **options: Any,
) -> Image.Image:
    """Draw Set-of-Marks visual prompts (ID labels and instance outlines) on ``image``.

    Args:
        image: anything :func:`instit.media.load_image` accepts (PIL image of any mode, numpy
            array -- RGB unless ``channels="bgr"`` --, file path). It is not modified.
        instances: anything ``Instances.coerce`` accepts (``Instances``, ``sv.Detections``,
            ``{id: mask}``, a list of masks, None).
        style: a :class:`MarkStyle`, ``"image"`` (default) or ``"video"``.
        channels: ``"bgr"`` when ``image`` is a BGR array (OpenCV, supervision); the result
            is RGB either way.
        **options: :class:`MarkStyle` fields overriding ``style`` (e.g. ``mask="fill"``,
            ``labels="alpha"``).

    Returns:
        A new RGB :class:`PIL.Image.Image` the size of ``image``.

    Raises:
        InstancesError: an instance does not fit the image (its mask has another size, its box
            lies outside ...); the message names the instance ID.
        InstitValueError: an unknown or invalid style option.
        MediaError / InstitTypeError: ``image`` cannot be read.
    """
    pixels = _pixels(image, channels)
    shapes, resolved = _prepare(image, pixels, instances, style, options, "image")
    return _render(pixels, shapes, resolved)


def draw_marks_frames(
    frames: Iterable[Any],
    tracks: Any,
    style: MarkStyle | str | None = None,
    progress: bool = True,
    *,
    channels: Channels = "rgb",
    **options: Any,
) -> list[Image.Image]:
    """Draw marks on every frame; frame ``i`` (0-based) shows the instances ``tracks.at(i)``.

    Args:
        frames: images (anything :func:`instit.media.load_image` accepts) or a ``TxHxWx3``
            array, RGB unless ``channels="bgr"``.
        tracks: anything ``Tracks.coerce`` accepts: ``Tracks``, a dict
            ``{frame_index: instances}`` (missing frames have no instances) or a list with one
            entry per frame.
        style: a :class:`MarkStyle`, ``"video"`` (default) or ``"image"``.
        progress: show a tqdm progress bar.
        channels: ``"bgr"`` when the frames are BGR arrays (OpenCV, supervision).
        **options: :class:`MarkStyle` fields overriding ``style``.

    Returns:
        One new RGB image per frame. A given ID has the same colour in every frame.
    """
    from tqdm.auto import tqdm

    from instit.instances import Tracks

    frame_list = list(frames)
    coerced = Tracks.coerce(tracks)
    beyond = [i for i in coerced.frame_indices if i >= len(frame_list)]
    if beyond:
        raise InstancesError(
            f"tracks have instances for frame {beyond[0]} but there are only "
            f"{len(frame_list)} frames; pass the frames the tracks belong to "
            "(frame indices are 0-based positions in frames)"
        )
    marked = []
    for index, frame in enumerate(tqdm(frame_list, desc="marks", disable=not progress)):
        pixels = _pixels(frame, channels)
        shapes, resolved = _prepare(frame, pixels, coerced.at(index), style, options, "video")
        marked.append(_render(pixels, shapes, resolved))
    return marked


def _pixels(image: Any, channels: Channels) -> np.ndarray:
    from instit.media import to_numpy_rgb

    return np.ascontiguousarray(to_numpy_rgb(image, channels=channels))


def _prepare(
    image: Any,
    pixels: np.ndarray,
    instances: Any,
    style: MarkStyle | str | None,
    options: dict[str, Any],
    default: str,
) -> tuple[list[Shape], ResolvedStyle]:
    from instit.instances import Instances
    from instit.media import orientation_hint

    chosen = coerce_style(style, default)
    if options:
        chosen = chosen.with_options(**options)
    height, width = pixels.shape[:2]
    with orientation_hint(image):
        coerced = Instances.coerce(instances, image_size=(width, height))  # also validates
    return shapes_from(coerced, (width, height)), _resolve(chosen, width, height)


@lru_cache(maxsize=64)
def _resolve(style: MarkStyle, width: int, height: int) -> ResolvedStyle:
    """``style.resolve``, once per style and frame size (frames of a video share it)."""
    return style.resolve(width, height)


def _render(pixels: np.ndarray, shapes: list[Shape], style: ResolvedStyle) -> Image.Image:
    placements = layout(pixels, shapes, style)
    for annotator in annotators(style):
        annotator.annotate(pixels, shapes, placements)
    # one pass from the buffer into Pillow's storage; an image made with no fill colour skips
    # the zeroing that Image.fromarray does first
    height, width = pixels.shape[:2]
    result = Image.new("RGB", (width, height), None)
    result.frombytes(pixels)
    return result


def _pixel_box(
    box: tuple[float, float, float, float], shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    return (
        max(0, int(np.floor(x0))),
        max(0, int(np.floor(y0))),
        min(width, int(np.ceil(x1))),
        min(height, int(np.ceil(y1))),
    )


def _draw_box(
    canvas: np.ndarray,
    box: tuple[float, float, float, float],
    color: tuple[int, int, int],
    width: int,
) -> None:
    x0, y0, x1, y1 = _pixel_box(box, canvas.shape)
    cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), color, width)


def _draw_dot(
    canvas: np.ndarray, point: tuple[float, float], color: tuple[int, int, int], radius: int
) -> None:
    """A filled dot with a one-pixel dark rim, visible on light and dark backgrounds."""
    centre = _int_point(point)
    cv2.circle(canvas, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
    cv2.circle(canvas, centre, radius, color, -1, cv2.LINE_AA)


def _int_point(point: tuple[float, float]) -> tuple[int, int]:
    return (round(point[0]), round(point[1]))
