"""How marks look: :class:`MarkStyle`, the named styles and the ID colour palette.

All lengths in a :class:`MarkStyle` are pixels *at the style's reference resolution*
(``reference_size``); :meth:`MarkStyle.resolve` scales them to a concrete image by
``sqrt(width * height / (ref_w * ref_h))`` so that marks cover the same fraction of the picture
at 320 px and at 4K, with a floor (``min_font_size``) that keeps labels readable on tiny images.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any, Literal

from instit.errors import InstitTypeError, InstitValueError

RGB = tuple[int, int, int]
MaskMode = Literal["contour", "fill", "box", "point", "none"]
LabelMode = Literal["numeric", "alpha"]

MASK_MODES: tuple[str, ...] = ("contour", "fill", "box", "point", "none")
LABEL_MODES: tuple[str, ...] = ("numeric", "alpha")
FONTS: tuple[str, ...] = ("sans", "sans-light")

_GOLDEN = 0.618033988749895


@lru_cache(maxsize=1024)
def instance_color(instance_id: int) -> RGB:
    """The colour of instance ``instance_id``: the same ID gets the same colour everywhere.

    Hues follow the golden-ratio sequence, so consecutive IDs get well separated hues; the
    lightness and saturation cycle through three levels so that IDs far apart differ too.
    """
    hue = (instance_id * _GOLDEN) % 1.0
    lightness = (0.42, 0.55, 0.34)[instance_id % 3]
    saturation = (0.85, 0.75, 0.9)[(instance_id // 3) % 3]
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return (round(red * 255), round(green * 255), round(blue * 255))


def label_text(instance_id: int, labels: str) -> str:
    """The text of the label of ``instance_id``: ``"7"`` or, with ``labels="alpha"``, ``"G"``.

    Alphabetic labels count like spreadsheet columns: 1 -> A, 26 -> Z, 27 -> AA, 28 -> AB.
    """
    if labels == "numeric":
        return str(instance_id)
    if instance_id < 1:
        raise InstitValueError(
            f'instance ID {instance_id} has no alphabetic label (labels="alpha" needs IDs >= 1); '
            'renumber the instances from 1 or use labels="numeric"'
        )
    letters = []
    number = instance_id
    while number:
        number, rest = divmod(number - 1, 26)
        letters.append(chr(ord("A") + rest))
    return "".join(reversed(letters))


@dataclass(frozen=True)
class ResolvedStyle:
    """A :class:`MarkStyle` with every length turned into whole pixels for one image size."""

    font: str
    font_size: int
    antialias: bool
    pad_x: int
    pad_top: int
    pad_bottom: int
    line_width: int
    point_radius: int
    leader_width: int
    box_color: RGB | Literal["auto"]
    box_alpha: float
    text_color: RGB | Literal["auto"]
    mask: str
    fill_alpha: float
    labels: str
    leader_distance: float
    search_radius: float


@dataclass(frozen=True)
class MarkStyle:
    """Options for :func:`instit.draw_marks` and :func:`instit.layout_marks`.

    Use a named style (:meth:`image`, :meth:`video`) and change single options with
    ``dataclasses.replace`` or :meth:`with_options`, e.g. ``MarkStyle.image().with_options(
    mask="fill")``.

    Attributes:
        mask: how each instance is drawn: ``"contour"`` (outline of the mask), ``"fill"``
            (translucent fill plus outline), ``"box"`` (bounding box), ``"point"`` (a dot at the
            label anchor) or ``"none"`` (labels only).
        labels: ``"numeric"`` (``3``) or ``"alpha"`` (``C``; 27 -> ``AA``).
        font: ``"sans"`` (DejaVu Sans) or ``"sans-light"`` (DejaVu Sans ExtraLight).
        font_size: font size in pixels at ``reference_size`` (at most 1000, like the paddings
            and the line width; on any image fonts and lines stop growing at 8192 px).
        min_font_size: the smallest font size used on small images.
        antialias: smooth text edges (``False`` draws 1-bit glyphs, like OpenCV's putText).
        pad_x, pad_top, pad_bottom: space between the digits and the label box edges, in pixels
            at ``reference_size`` (``pad_bottom`` includes room for descenders).
        box_color: label box colour, or ``"auto"`` to pick dark or light from the pixels under
            the label.
        box_alpha: opacity of the label box (0 transparent .. 1 opaque).
        text_color: label text colour, or ``"auto"``: black or white, whichever contrasts more
            with the box as it appears over the actual pixels under the label.
        line_width: contour / box line width in pixels at ``reference_size``.
        fill_alpha: opacity of ``mask="fill"``.
        leader_distance: a label whose centre ends up farther than this many label heights from
            its anchor is connected to the anchor by a leader line.
        search_radius: how far (in label heights) the placement searches around the anchor
            before it falls back to the free spot nearest to the anchor anywhere in the image.
        reference_size: ``(width, height)`` at which the pixel lengths above hold.
    """

    mask: MaskMode = "contour"
    labels: LabelMode = "numeric"
    font: str = "sans"
    font_size: float = 25.0
    min_font_size: float = 10.0
    antialias: bool = True
    pad_x: float = 1.0
    pad_top: float = 2.0
    pad_bottom: float = 6.0
    box_color: RGB | Literal["auto"] = (0, 0, 0)
    box_alpha: float = 0.8
    text_color: RGB | Literal["auto"] = "auto"
    line_width: float = 1.0
    fill_alpha: float = 0.35
    leader_distance: float = 1.5
    search_radius: float = 6.0
    reference_size: tuple[int, int] = (960, 640)

    def __post_init__(self) -> None:
        _check_choice("mask", self.mask, MASK_MODES)
        _check_choice("labels", self.labels, LABEL_MODES)
        _check_choice("font", self.font, FONTS)
        if not isinstance(self.antialias, bool):
            raise InstitTypeError(
                f"MarkStyle.antialias must be True or False, got {self.antialias!r}"
            )
        for name in ("font_size", "min_font_size"):
            _check_number(name, getattr(self, name), low=1.0, high=_MAX_LENGTH)
        for name in ("pad_x", "pad_top", "pad_bottom", "line_width"):
            _check_number(name, getattr(self, name), low=0.0, high=_MAX_LENGTH)
        _check_number("leader_distance", self.leader_distance, low=0.0)
        _check_number("search_radius", self.search_radius, low=1.0)
        for name in ("box_alpha", "fill_alpha"):
            _check_number(name, getattr(self, name), low=0.0, high=1.0)
        _check_color("box_color", self.box_color)
        _check_color("text_color", self.text_color)
        size = self.reference_size
        if (
            not isinstance(size, tuple)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise InstitValueError(
                f"MarkStyle.reference_size must be a (width, height) tuple of positive ints, "
                f"got {size!r}"
            )

    @classmethod
    def image(cls) -> MarkStyle:
        """The Inst-It image look (default of :func:`instit.draw_marks`).

        White DejaVu Sans digits on a black box at 80 % opacity, thin mask contours in the
        instance colour; at 960x640 the digits are 18 px tall, as in the authors' demo image.
        """
        return cls()

    @classmethod
    def video(cls) -> MarkStyle:
        """The Inst-It video look (default of :func:`instit.draw_marks_frames`).

        Thin, un-smoothed dark digits on a white box at 75 % opacity, thin contours; at 1280x720
        the digits are 18 px tall and a one-digit box is about 20x23 px, as in the authors'
        demo frames.
        """
        return cls(
            font="sans-light",
            antialias=False,
            pad_x=2.0,
            pad_top=3.0,
            pad_bottom=2.0,
            box_color=(255, 255, 255),
            box_alpha=0.75,
            reference_size=(1280, 720),
        )

    def with_options(self, **options: Any) -> MarkStyle:
        """Return a copy with ``options`` changed; unknown names raise InstitValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InstitValueError(
                f"unknown MarkStyle option(s) {', '.join(unknown)}; "
                f"valid options are {', '.join(sorted(known))}"
            )
        return replace(self, **options)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    def resolve(self, width: int, height: int) -> ResolvedStyle:
        """Scale the style to an image of ``width`` x ``height`` pixels."""
        ref_w, ref_h = self.reference_size
        scale = math.sqrt((width * height) / (ref_w * ref_h))
        # on giant images lengths stop growing where FreeType and OpenCV stop working
        scale = min(scale, _MAX_RESOLVED / max(self.font_size, self.line_width, 1.0))
        font_size = max(self.font_size * scale, self.min_font_size)
        # padding follows the font (which may have hit its floor); lines follow the image
        text_scale = font_size / self.font_size
        line_width = max(1, round(self.line_width * scale))
        return ResolvedStyle(
            font=self.font,
            font_size=round(font_size),
            antialias=self.antialias,
            pad_x=round(self.pad_x * text_scale),
            pad_top=round(self.pad_top * text_scale),
            pad_bottom=round(self.pad_bottom * text_scale),
            line_width=line_width,
            point_radius=max(2, round(3 * scale)),
            leader_width=line_width,
            box_color=self.box_color,
            box_alpha=self.box_alpha,
            text_color=self.text_color,
            mask=self.mask,
            fill_alpha=self.fill_alpha,
            labels=self.labels,
            leader_distance=self.leader_distance,
            search_radius=self.search_radius,
        )


_MAX_LENGTH = 1000.0  # font size, paddings and line width at reference_size, in pixels
_MAX_RESOLVED = 8192.0  # font size and line width on any image (FreeType / OpenCV limits)


def coerce_style(style: MarkStyle | str | None, default: str) -> MarkStyle:
    """Turn ``style`` (a MarkStyle, a named style ``"image"`` / ``"video"`` or None) into a
    :class:`MarkStyle`."""
    if style is None:
        style = default
    if isinstance(style, MarkStyle):
        return style
    if isinstance(style, str):
        if style in ("image", "video"):
            return _named_style(style)
        raise InstitValueError(
            f'unknown mark style {style!r}; use "image", "video" or a MarkStyle instance'
        )
    raise InstitTypeError(
        f'style must be a MarkStyle, "image", "video" or None, got {type(style).__name__}'
    )


@lru_cache(maxsize=2)
def _named_style(name: str) -> MarkStyle:
    """The named style, made (and validated) once: a MarkStyle is immutable."""
    return MarkStyle.image() if name == "image" else MarkStyle.video()


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InstitValueError(
            f"MarkStyle.{name}={value!r} is not supported; use one of "
            + ", ".join(repr(c) for c in choices)
        )


def _check_number(name: str, value: object, low: float, high: float | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InstitValueError(f"MarkStyle.{name} must be a number {bounds}, got {value!r}")


def _check_color(name: str, value: object) -> None:
    if value == "auto":
        return
    if (
        not isinstance(value, tuple)
        or len(value) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        raise InstitValueError(
            f'MarkStyle.{name} must be "auto" or an (r, g, b) tuple of ints in 0..255, '
            f"got {value!r}"
        )
