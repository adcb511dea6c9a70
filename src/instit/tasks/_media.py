"""Turn what a user passes to ``ask`` / ``describe_instances`` into what the model sees.

One media item is an image (PIL image, ``HxW[xC]`` array, image file) or a video (``Video``,
``TxHxWxC`` array, a list of frames, a video file or a folder of frames).  Arrays are RGB unless
``channels="bgr"`` (converted by :mod:`instit.media`).  With instances, the
marks are drawn first (``marks="draw"``) unless the media already shows them (``marks="as_is"``);
either way the instances' IDs are what answers are checked against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from instit.errors import InstancesError, InstitTypeError, InstitValueError, MediaError
from instit.media import is_video

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from PIL import Image

    from instit.media import Channels

MarksMode = Literal["draw", "as_is"]
IndexedBy = Literal["source", "sample"]
_MARKS_MODES = ("draw", "as_is")


@runtime_checkable
class GenerativeModel(Protocol):
    """What :func:`~instit.tasks.ask` and :func:`~instit.tasks.describe_instances` need from a
    model; :class:`instit.InstIt` implements it.

    ``media`` items are PIL images (an image), lists of PIL images (the frames of a video), or
    what ``encode_media`` returned for one of those.  ``prompts`` are the user turns; the model
    applies its conversation template.  ``generation_config`` / ``generate_kwargs`` are passed
    to ``generate`` and ``stream`` only when the caller gave them.
    """

    def generate(
        self,
        media: list[Any],
        prompts: list[str],
        *,
        max_new_tokens: int,
        temperature: float,
        progress: bool,
    ) -> list[str]:
        """One reply per ``(media[i], prompts[i])`` pair, generated as a batch."""
        ...

    def stream(
        self, media: Any, prompt: str, *, max_new_tokens: int, temperature: float
    ) -> Iterator[str]:
        """The reply to one prompt, as text chunks while it is generated."""
        ...

    def encode_media(self, media: Any) -> Any:
        """Encode one media item once, for several prompts about it."""
        ...


@dataclass
class Prepared:
    """One media item, ready for the model.

    Attributes:
        model_input: What goes to ``generate``: a PIL image, or the list of PIL frames.
        shown: What the result shows the user (the marked image, frames, or ``Video``).
        kind: ``"image"`` or ``"video"``.
        num_frames: 1 for an image.
        timestamps: Seconds of each frame, when known.
        known_ids: The instance IDs on the media (``None``: not known, nothing is checked).
        frame_ids: For a video with tracks, the IDs visible in each frame.
        frame_names: File names of the frames when the video came from files.
    """

    model_input: Any
    shown: Any
    kind: Literal["image", "video"]
    num_frames: int
    timestamps: list[float] | None
    known_ids: list[int] | None
    frame_ids: list[list[int]] | None = None
    frame_names: list[str] | None = None


def check_model(model: object) -> None:
    """Raise a clear error when ``model`` cannot generate text."""
    if not callable(getattr(model, "generate", None)):
        raise InstitTypeError(
            f"model must be an instit.InstIt (or provide generate(media, prompts, ...)); got "
            f"{type(model).__name__}; load one with instit.InstIt.from_pretrained(...)"
        )


def check_marks(marks: str) -> None:
    """Raise a clear error for an unknown ``marks`` mode."""
    if marks not in _MARKS_MODES:
        raise InstitValueError(
            f"marks={marks!r} is not a mode; pass marks='draw' (draw the instances' marks) or "
            "marks='as_is' (the media already shows them)"
        )


def prepare(
    media: Any,
    instances: Any = None,
    *,
    marks: MarksMode = "draw",
    style: Any = None,
    indexed_by: IndexedBy = "source",
    snap: bool = False,
    channels: Channels = "rgb",
) -> Prepared:
    """Load ``media``, draw the marks of ``instances`` on it (``marks="draw"``), collect IDs.

    ``indexed_by`` says how the tracks of a ``Video`` are keyed (as in ``Video.with_marks``):
    by source frame number (``"source"``) or by position in the video (``"sample"``).  Tracks
    of a list of frames are always keyed by position.  ``snap`` moves tracked frames that were
    not sampled to the nearest sampled one (``Tracks.sampled``); ``channels="bgr"`` reads
    arrays as BGR.
    """
    from instit.media import check_channels

    check_marks(marks)
    check_channels(channels)
    if indexed_by not in ("source", "sample"):
        raise InstitValueError(
            f"indexed_by={indexed_by!r} is not a mode; pass 'source' (tracks keyed by frame "
            "number in the original video) or 'sample' (keyed by position in the Video)"
        )
    if media is None:
        raise InstitTypeError(
            "media is None; pass an image (PIL image, array, file path) or a video (Video, "
            "list of frames, video file, frame folder)"
        )
    if is_video(media):
        return _prepare_video(
            media,
            instances,
            marks=marks,
            style=style,
            indexed_by=indexed_by,
            snap=snap,
            channels=channels,
        )
    return _prepare_image(media, instances, marks=marks, style=style, channels=channels)


def _prepare_image(
    media: Any, instances: Any, *, marks: MarksMode, style: Any, channels: Channels
) -> Prepared:
    from instit.media import load_image, orientation_hint

    image = load_image(media, channels=channels)
    known: list[int] | None = None
    if instances is not None:
        from instit.instances import Instances

        with orientation_hint(media):
            coerced = Instances.coerce(instances, image_size=image.size)
        known = [int(i) for i in coerced.ids]
        if marks == "draw":
            from instit.marks import draw_marks

            image = draw_marks(image, coerced, style=style)
    return Prepared(image, image, "image", 1, None, known)


def _prepare_video(
    media: Any,
    instances: Any,
    *,
    marks: MarksMode,
    style: Any,
    indexed_by: IndexedBy,
    snap: bool,
    channels: Channels,
) -> Prepared:
    from instit.media import check_channels

    video = _as_video(media)
    if video is not None:
        check_channels(channels, video.frames[0])  # a Video holds RGB PIL frames
    frames: list[Image.Image] = (
        list(video.frames) if video is not None else _frames(media, channels)
    )
    if not frames:
        raise MediaError("the video has no frames; pass at least one frame")
    timestamps = _timestamps(video, len(frames))
    frame_names = _frame_names(media, video, len(frames))
    known: list[int] | None = None
    frame_ids: list[list[int]] | None = None
    shown: Any = video if video is not None else frames
    if instances is not None:
        from instit.instances import Tracks

        tracks = Tracks.coerce(instances)
        if video is not None and indexed_by == "source":
            tracks = tracks.sampled(video.indices, snap=snap)  # now keyed by position
        beyond = [i for i in tracks.frame_indices if i >= len(frames)]
        if beyond:
            hint = (
                "use indexed_by='source' if they are keyed by frame number in the original video"
                if video is not None
                else "pass the frames the tracks belong to"
            )
            raise InstancesError(
                f"the tracks have instances for frame position {beyond[0]} but the video has "
                f"{len(frames)} frames (positions 0 to {len(frames) - 1}); {hint}"
            )
        known = [int(i) for i in tracks.ids]
        frame_ids = [[int(i) for i in tracks.at(t).ids] for t in range(len(frames))]
        if marks == "draw":
            if video is not None:
                shown = video.with_marks(tracks, style=style, indexed_by="sample")
                frames = list(shown.frames)
            else:
                from instit.marks import draw_marks_frames

                frames = draw_marks_frames(frames, tracks, style=style, progress=False)
                shown = frames
    return Prepared(frames, shown, "video", len(frames), timestamps, known, frame_ids, frame_names)


def _as_video(media: Any) -> Any:
    """A ``Video`` for a ``Video``, a video file or a frame folder; ``None`` for frame lists."""
    if hasattr(media, "frames") and hasattr(media, "timestamps"):
        return media
    if isinstance(media, (str, os.PathLike)):
        from instit.video import load_video

        return load_video(media)
    return None


def _frames(media: Any, channels: Channels) -> list[Image.Image]:
    """A list of frames, or a ``TxHxWxC`` array, as RGB PIL images."""
    from instit.media import load_image

    return [load_image(frame, channels=channels) for frame in media]


def _timestamps(video: Any, count: int) -> list[float] | None:
    values = getattr(video, "timestamps", None) if video is not None else None
    if values is None:
        return None
    out = [float(v) for v in values]
    return out if len(out) == count else None


def _frame_names(media: Any, video: Any, count: int) -> list[str] | None:
    """File names of the frames (``Video.names`` of a folder or of image paths, or a list of
    paths), else ``None``."""
    names: list[str] | None
    if video is not None:
        names = video.names
    elif isinstance(media, (list, tuple)) and all(isinstance(m, (str, os.PathLike)) for m in media):
        names = [Path(os.fspath(m)).name for m in media]
    else:
        names = None
    return names if names is not None and len(names) == count else None
