"""Notebook views of a :class:`~instit.video.Video`: an HTML filmstrip and a PNG contact sheet."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from instit.video.core import Video

_STRIP_HEIGHT = 120  # px, thumbnails in the HTML filmstrip
_SHEET_WIDTH = 192  # px, thumbnails in the PNG contact sheet
_LABEL_HEIGHT = 16  # px, caption band under each contact-sheet thumbnail


def _caption(video: Video, position: int) -> str:
    return f"<{position + 1}> {video.timestamps[position]:.2f}s"


def _thumbnail(
    image: Image.Image, *, width: int | None = None, height: int | None = None
) -> Image.Image:
    w, h = image.size
    if height is not None:
        size = (max(1, round(w * height / h)), height)
    else:
        assert width is not None
        size = (width, max(1, round(h * width / w)))
    return image.convert("RGB").resize(size)


def filmstrip_html(video: Video) -> str:
    """One scrollable row of JPEG thumbnails, each captioned ``<t> seconds`` (source frame)."""
    figures = []
    for position, frame in enumerate(video.frames):
        buffer = io.BytesIO()
        _thumbnail(frame, height=_STRIP_HEIGHT).save(buffer, format="JPEG", quality=85)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        caption = html.escape(_caption(video, position))
        figures.append(
            "<figure style='display:inline-block;margin:2px;text-align:center'>"
            f"<img src='data:image/jpeg;base64,{data}' alt='{caption}' "
            f"title='source frame {video.indices[position]}'/>"
            f"<figcaption style='font:12px monospace'>{caption}</figcaption></figure>"
        )
    width, height = video.size
    facts = [f"{len(video)} frames", f"{width}x{height}"]
    if video.num_source_frames is not None:
        facts.append(f"of {video.num_source_frames} source frames")
    if video.fps is not None:
        facts.append(f"{video.fps:.3g} fps")
    if video.duration is not None:
        facts.append(f"{video.duration:.2f} s")
    title = html.escape(video.source or "in-memory frames")
    return (
        "<div class='instit-video'>"
        f"<div style='font:12px monospace'><b>{title}</b>: {html.escape(', '.join(facts))}</div>"
        f"<div style='overflow-x:auto;white-space:nowrap'>{''.join(figures)}</div></div>"
    )


def contact_sheet_png(video: Video) -> bytes:
    """A grid of thumbnails (4 per row up to 8 frames, then 8), each captioned ``<t> seconds``."""
    from PIL import Image, ImageDraw

    thumbs = [_thumbnail(frame, width=_SHEET_WIDTH) for frame in video.frames]
    columns = min(len(thumbs), 4 if len(thumbs) <= 8 else 8)
    rows = -(-len(thumbs) // columns)
    cell_h = max(t.size[1] for t in thumbs) + _LABEL_HEIGHT
    sheet = Image.new("RGB", (columns * _SHEET_WIDTH, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for position, thumb in enumerate(thumbs):
        x = (position % columns) * _SHEET_WIDTH
        y = (position // columns) * cell_h
        sheet.paste(thumb, (x, y))
        draw.text((x + 3, y + thumb.size[1] + 2), _caption(video, position), fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
