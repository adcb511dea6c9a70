"""Notebook views of :class:`~instit.instances.Instances` and :class:`~instit.instances.Tracks`.

Instances are drawn with :func:`~instit.marks.draw_marks` (masks filled, IDs on their marks) on
the image when one is given, else on a neutral grey canvas of the image's size, so the geometry
and the IDs can be checked without the pixels.  Tracks become a strip of such marked frames.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from instit.instances import Instances, Tracks

__all__ = ["instances_view", "png_bytes", "strip_html", "tracks_view"]

NEUTRAL_GREY = (128, 128, 128)
_STRIP_HEIGHT = 120  # px, thumbnails in the HTML strip


def _canvas(instances: Instances) -> Image.Image:
    from PIL import Image

    if instances.image_size is not None:
        width, height = instances.image_size
    else:  # boxes or points without an image: a canvas that holds them
        boxes = instances.boxes()
        width = max(1, int(np.ceil(boxes[:, 2].max(initial=0.0))) + 1)
        height = max(1, int(np.ceil(boxes[:, 3].max(initial=0.0))) + 1)
    return Image.new("RGB", (width, height), NEUTRAL_GREY)


def instances_view(instances: Instances, image: object = None) -> Image.Image:
    """``instances`` marked on ``image`` (any image :func:`~instit.media.load_image` reads),
    or on a neutral grey canvas of their image size when ``image`` is ``None``."""
    from instit.marks.draw import draw_marks

    if image is None:
        return draw_marks(_canvas(instances), instances, mask="fill")
    return draw_marks(image, instances)


def _frames_to_show(tracks: Tracks, max_frames: int) -> list[int]:
    keys = list(tracks.frame_indices)
    if len(keys) <= max_frames:
        return keys
    positions = np.linspace(0, len(keys) - 1, max_frames).round().astype(int)
    return [keys[p] for p in positions]


def tracks_view(tracks: Tracks, video: object = None, *, max_frames: int = 8) -> list[Image.Image]:
    """Marked frames of ``tracks`` (at most ``max_frames``, spread evenly over the frames with
    entries).  ``video`` is a :class:`~instit.video.Video` (keys are its source frame numbers) or
    a list of frames (keys are positions); without it the marks go on grey canvases."""
    from instit.errors import InstitTypeError, InstitValueError

    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise InstitValueError(f"max_frames must be a positive integer, got {max_frames!r}")
    from instit.video import Video

    frames: dict[int, Any] = {}
    if isinstance(video, Video):
        frames = dict(zip(video.indices, video.frames, strict=True))
    elif video is not None:
        if isinstance(video, (str, bytes)) or not hasattr(video, "__len__"):
            raise InstitTypeError(
                f"video must be a Video or a list of frames, got {type(video).__name__}"
            )
        frames = dict(enumerate(video))
    shown = []
    for key in _frames_to_show(tracks, max_frames):
        if video is not None and key not in frames:
            raise InstitValueError(
                f"the tracks have frame {key} but the video has no frame {key}; pass the video "
                "(or frame list) these tracks were made for"
            )
        shown.append(instances_view(tracks[key], frames.get(key)))
    return shown


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def strip_html(tracks: Tracks, video: object = None, *, max_frames: int = 8) -> str:
    """One scrollable row of marked frames, each captioned with its frame index."""
    figures = []
    for key, image in zip(
        _frames_to_show(tracks, max_frames),
        tracks_view(tracks, video, max_frames=max_frames),
        strict=True,
    ):
        width, height = image.size
        thumb = image.resize((max(1, round(width * _STRIP_HEIGHT / height)), _STRIP_HEIGHT))
        data = base64.b64encode(png_bytes(thumb)).decode("ascii")
        ids = ", ".join(str(i) for i in tracks[key].ids) or "none"
        caption = html.escape(f"frame {key}: [{ids}]")
        figures.append(
            "<figure style='display:inline-block;margin:2px;text-align:center'>"
            f"<img src='data:image/png;base64,{data}' alt='{caption}'/>"
            f"<figcaption style='font:12px monospace'>{caption}</figcaption></figure>"
        )
    title = html.escape(repr(tracks))
    return (
        "<div class='instit-tracks'>"
        f"<div style='font:12px monospace'><b>{title}</b></div>"
        f"<div style='overflow-x:auto;white-space:nowrap'>{''.join(figures)}</div></div>"
    )
