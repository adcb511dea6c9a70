"""Label text: font loading, text measurement and cached glyph coverage masks.

Text is rendered once per ``(font, size, antialias, text)`` into an 8-bit coverage mask and
kept in a small LRU cache; drawing a label is then a numpy blend of that mask into the image.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from io import BytesIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FONT_FILES = {
    "sans": "DejaVuSans-subset.ttf",
    "sans-light": "DejaVuSans-ExtraLight-subset.ttf",
}
# every label gets the height of this glyph (digits and capitals share it in DejaVu Sans)
_METRIC_REFERENCE = "0"


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    data = resources.files("instit").joinpath("assets", _FONT_FILES[name]).read_bytes()
    return ImageFont.truetype(BytesIO(data), size)


@lru_cache(maxsize=64)
def _vertical_metrics(name: str, size: int) -> tuple[int, int]:
    """``(top, bottom)`` of a digit below the drawing origin: all labels share one height."""
    _, top, _, bottom = _font(name, size).getbbox(_METRIC_REFERENCE)
    return int(top), int(bottom)


@lru_cache(maxsize=4096)
def text_size(name: str, size: int, text: str) -> tuple[int, int]:
    """``(width, height)`` of ``text``: its advance width and the digit height."""
    top, bottom = _vertical_metrics(name, size)
    return max(1, round(_font(name, size).getlength(text))), bottom - top


@lru_cache(maxsize=4096)
def text_mask(name: str, size: int, antialias: bool, text: str) -> np.ndarray:
    """Coverage mask (``uint8`` 0..255, shape ``(height, width)`` of :func:`text_size`)."""
    width, height = text_size(name, size, text)
    top, _ = _vertical_metrics(name, size)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "L" if antialias else "1"
    draw.text((0, -top), text, fill=255, font=_font(name, size))
    mask = np.asarray(canvas, dtype=np.uint8).copy()
    mask.flags.writeable = False
    return mask
