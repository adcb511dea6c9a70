"""Turn loaded media (and its instances) into what the model sees.

The verbs load what the user gave once, at their top, with :func:`instit.media.load_media`;
this module takes only its result (:data:`instit.media.LoadedMedia`: an RGB PIL image, a
``Video`` or a list of RGB PIL frames) and never classifies or loads media.  With instances, the
marks are drawn first (``marks="draw"``) unless the media already shows them (``marks="as_is"``);
either way the instances' IDs are what answers are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from instit.errors import InstancesError, InstitTypeError, InstitValueError, MediaError
from instit.media import check_loaded

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from PIL import Image

    from instit.media import LoadedMedia
    from instit.video import Video

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


def check_options(marks: str, indexed_by: str, channels: object = "rgb") -> None:
    """Raise a clear error for an unknown ``marks`` or ``indexed_by`` mode or ``channels``
    order (checked before any media is loaded)."""
    from instit.media import check_channels

    if marks not in _MARKS_MODES:
        raise InstitValueError(
            f"marks={marks!r} is not a mode; pass marks='draw' (draw the instances' marks) or "
            "marks='as_is' (the media already shows them)"
        )
    if indexed_by not in ("source", "sample"):
        raise InstitValueError(
            f"indexed_by={indexed_by!r} is not a mode; pass 'source' (tracks keyed by frame "
            "number in the original video) or 'sample' (keyed by position in the Video)"
        )
    check_channels(channels)


def prepare(
    media: LoadedMedia,
    instances: Any = None,
    *,
    marks: MarksMode = "draw",
    style: Any = None,
    indexed_by: IndexedBy = "source",
    snap: bool = False,
) -> Prepared:
    """Draw the marks of ``instances`` on loaded ``media`` (``marks="draw"``), collect IDs.

    ``media`` is what :func:`instit.media.load_media` returned (the verbs call it once, at
    their top); anything else raises :class:`~instit.errors.InstitTypeError`.
    ``indexed_by`` says how the tracks of a ``Video`` are keyed (as in ``Video.with_marks``):
    by source frame number (``"source"``) or by position in the video (``"sample"``).  Tracks
    of a list of frames are always keyed by position.  ``snap`` moves tracked frames that were
    not sampled to the nearest sampled one (``Tracks.sampled``).
    """
    from PIL import Image

    check_options(marks, indexed_by)
    loaded = check_loaded(media, "instit.tasks' prepare")
    if isinstance(loaded, Image.Image):
        return _prepare_image(loaded, instances, marks=marks, style=style)
    return _prepare_video(
        loaded, instances, marks=marks, style=style, indexed_by=indexed_by, snap=snap
    )


def _prepare_image(image: Image.Image, instances: Any, *, marks: MarksMode, style: Any) -> Prepared:
    from instit.media import orientation_hint

    known: list[int] | None = None
    if instances is not None:
        from instit.instances import Instances

        with orientation_hint(image):
            coerced = Instances.coerce(instances, image_size=image.size)
        known = [int(i) for i in coerced.ids]
        if marks == "draw":
            from instit.marks import draw_marks

            image = draw_marks(image, coerced, style=style)
    return Prepared(image, image, "image", 1, None, known)


def _prepare_video(
    media: Video | list[Image.Image],
    instances: Any,
    *,
    marks: MarksMode,
    style: Any,
    indexed_by: IndexedBy,
    snap: bool,
) -> Prepared:
    from instit.video import Video

    video = media if isinstance(media, Video) else None
    frames: list[Image.Image] = list(video.frames if video is not None else media)
    if not frames:
        raise MediaError("the video has no frames; pass at least one frame")
    timestamps = list(video.timestamps) if video is not None else None
    frame_names = video.names if video is not None else None
    known: list[int] | None = None
    frame_ids: list[list[int]] | None = None
    shown: Any = video if video is not None else frames
    if instances is not None:
        from instit.instances import Tracks

        tracks = Tracks.coerce(instances)
        if video is not None and indexed_by == "source":
            files = video.num_source_frames if video.names is not None else None
            past = [i for i in tracks.frame_indices if files is not None and i >= files]
            if past:  # frames of image files are counted exactly: these do not exist
                raise InstancesError(
                    f"the tracks have instances for frame {past[0]} but the video has {files} "
                    f"frames (image files 0 to {files - 1}); pass the tracks of these files"
                )
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
