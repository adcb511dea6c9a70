"""The :class:`Video` result and :func:`load_video`."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from instit.errors import InstitTypeError, InstitValueError, MediaError, VideoError
from instit.media import IMAGE_SUFFIXES
from instit.video.sampling import select_frames

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from instit.media import Channels

__all__ = ["IMAGE_SUFFIXES", "Video", "load_video"]


class _DefaultCount(int):
    """The default ``num_frames`` (8): an int that lets ``load_video`` see it was not passed."""


_DEFAULT_NUM_FRAMES = _DefaultCount(8)
# a URL ("https://...", "s3://..."), not a path; one-letter schemes are Windows drive letters
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


@dataclass(eq=False)
class Video:
    """Frames sampled from a video, with where and when each one comes from.

    Attributes:
        frames: the sampled frames as RGB PIL images, in playing order.
        indices: 0-based number of each frame in the source (frame ``k`` is the ``k``-th frame
            in presentation order).
        timestamps: presentation time of each frame in seconds from the source's first frame.
            For image sequences without ``source_fps`` this is the frame number (1 frame/s).
        fps: the source's average frame rate; ``None`` for image sequences without
            ``source_fps``.
        duration: the source's duration in seconds (``None`` when ``fps`` is).
        source: the file or folder path; ``None`` for in-memory frames.
        num_source_frames: how many frames the source has in total.
        names: the file name of each frame when the frames came from image files (a folder or
            a list of paths), else ``None``; ``describe_instances`` uses them as the Inst-It
            Dataset's ``frame_name``.

    The model refers to frames as ``<1>``, ``<2>``, ... (1-based positions in :attr:`frames`);
    :meth:`time_of` and :meth:`frame_at` convert between those and seconds.
    """

    frames: list[Image.Image]
    indices: list[int]
    timestamps: list[float]
    fps: float | None = None
    duration: float | None = None
    source: str | None = None
    num_source_frames: int | None = None
    names: list[str] | None = None

    def __post_init__(self) -> None:
        from PIL import Image

        try:
            self.frames = list(self.frames)
            self.indices = [int(i) for i in self.indices]
            self.timestamps = [float(t) for t in self.timestamps]
        except (TypeError, ValueError, OverflowError) as exc:
            raise InstitTypeError(
                f"a Video needs a list of frames, integer indices and timestamps in seconds "
                f"({exc}); build videos with instit.load_video"
            ) from exc
        if not all(math.isfinite(t) for t in self.timestamps):
            raise VideoError("Video.timestamps must be finite seconds; got NaN or infinity")
        if not self.frames:
            raise VideoError("a Video needs at least one frame; pass a non-empty frame list")
        if not len(self.frames) == len(self.indices) == len(self.timestamps):
            raise VideoError(
                f"a Video needs one index and one timestamp per frame, got {len(self.frames)} "
                f"frames, {len(self.indices)} indices and {len(self.timestamps)} timestamps; "
                "pass lists of equal length"
            )
        if self.names is not None:
            self.names = [str(name) for name in self.names]
            if len(self.names) != len(self.frames):
                raise VideoError(
                    f"a Video needs one name per frame, got {len(self.names)} names for "
                    f"{len(self.frames)} frames; pass names=None or one per frame"
                )
        for position, frame in enumerate(self.frames):
            if not isinstance(frame, Image.Image):
                raise InstitTypeError(
                    f"Video.frames[{position}] is a {type(frame).__name__}, not a PIL image; "
                    "build videos with instit.load_video, which accepts arrays and paths"
                )

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Image.Image]:
        return iter(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return self.frames[0].size

    def time_of(self, t: int) -> float:
        """Seconds at which frame ``<t>`` (1-based, as the model numbers frames) is shown."""
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise InstitTypeError(f"frame numbers <t> are ints, got {type(t).__name__}")
        if not 1 <= t <= len(self.frames):
            raise InstitValueError(
                f"frame <{t}> does not exist: this video has {len(self.frames)} frames, "
                f"<1> to <{len(self.frames)}>; pass a number in that range"
            )
        return self.timestamps[int(t) - 1]

    def frame_at(self, seconds: float) -> int:
        """The ``<t>`` (1-based) of the sampled frame nearest to ``seconds`` (earlier on ties)."""
        if isinstance(seconds, bool) or not isinstance(
            seconds, (int, float, np.integer, np.floating)
        ):
            raise InstitTypeError(f"seconds must be a number, got {type(seconds).__name__}")
        if not np.isfinite(seconds):
            raise InstitValueError(f"seconds must be finite, got {seconds}")
        distances = np.abs(np.asarray(self.timestamps) - float(seconds))
        return int(np.argmin(distances)) + 1

    def with_marks(
        self,
        tracks: Any,
        style: Any = None,
        indexed_by: Literal["source", "sample"] = "source",
        *,
        snap: bool = False,
        progress: bool = False,
    ) -> Video:
        """A copy whose frames carry the Set-of-Marks of ``tracks`` (same ID, same colour).

        Args:
            tracks: an :class:`instit.Tracks` or anything ``Tracks.coerce`` accepts.
            style: a mark style for :func:`instit.marks.draw_marks_frames` (``None``: default).
            indexed_by: ``"source"`` (default) when ``tracks`` is keyed by source frame number:
                sampled frame ``i`` shows ``tracks.at(video.indices[i])``; ``"sample"`` when it is
                keyed by position in this video (0-based).
            snap: with ``indexed_by="source"``, draw the instances of tracked frames that were
                not sampled on the nearest sampled frame (see :meth:`instit.Tracks.sampled`);
                without it they are dropped with an :class:`instit.UnsampledFramesWarning`.
            progress: show a tqdm progress bar while drawing.
        """
        from instit.instances import Tracks
        from instit.marks import draw_marks_frames

        coerced = Tracks.coerce(tracks)
        if indexed_by == "source":
            coerced = coerced.sampled(self.indices, snap=snap)
        elif indexed_by != "sample":
            raise InstitValueError(
                f"indexed_by must be 'source' or 'sample', got {indexed_by!r}; use 'source' when "
                "the tracks are keyed by frame number in the original video"
            )
        marked = draw_marks_frames(self.frames, coerced, style=style, progress=progress)
        return replace(self, frames=list(marked))

    def to_dict(self) -> dict[str, Any]:
        """Metadata as JSON-ready values (no pixels)."""
        width, height = self.size
        return {
            "source": self.source,
            "num_frames": len(self.frames),
            "indices": list(self.indices),
            "timestamps": list(self.timestamps),
            "fps": self.fps,
            "duration": self.duration,
            "num_source_frames": self.num_source_frames,
            "names": None if self.names is None else list(self.names),
            "width": width,
            "height": height,
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    def _repr_html_(self) -> str:
        from instit.video._display import filmstrip_html

        return filmstrip_html(self)

    def _repr_png_(self) -> bytes:
        from instit.video._display import contact_sheet_png

        return contact_sheet_png(self)

    def __repr__(self) -> str:
        width, height = self.size
        return (
            f"Video({len(self.frames)} frames {width}x{height}, indices={self.indices}, "
            f"fps={self.fps}, source={self.source!r})"
        )


# -- load_video ----------------------------------------------------------------------------------


def load_video(
    source: Any,
    *,
    num_frames: int | None = _DEFAULT_NUM_FRAMES,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    duplicates: bool = False,
    pattern: str | None = None,
    source_fps: float | None = None,
    channels: Channels = "rgb",
    progress: bool = False,
) -> Video:
    """Sample frames from a video file, a folder of images or in-memory frames.

    Args:
        source: a video file FFmpeg reads (mp4, webm, mkv, avi, mov, ...); a folder of images
            (natural order: ``frame_2`` before ``frame_10``; hidden and non-image files are
            ignored); a list/tuple of PIL images, arrays or image paths; a ``THWC`` uint8 numpy
            array (or torch tensor).  Arrays are RGB unless ``channels="bgr"``.
        num_frames: take this many frames spread uniformly over the clip (or window), first and
            last included, by LLaVA-NeXT's ``np.linspace(0, n - 1, k, dtype=int)`` rule.
            ``None`` takes every frame.  Fewer frames come back when the clip is shorter.
        fps: sample by time instead: this many frames per second (excludes ``num_frames``).
        start: window start in seconds from the first frame (inclusive).
        end: window end in seconds (exclusive).
        max_frames: upper bound on the frame count (uniform thinning), for ``fps`` sampling.
        duplicates: repeat frames to reach ``num_frames`` on short clips (LLaVA-NeXT behaviour).
        pattern: for folders, a glob on file names such as ``"frame_*.jpg"`` (default: all
            images).
        source_fps: frame rate of an image sequence, which gives its frames timestamps (needed
            for ``fps``, ``start`` and ``end`` on sequences).  Video files carry their own.
        channels: the channel order of in-memory array frames: ``"rgb"`` (default) or
            ``"bgr"`` (OpenCV's ``VideoCapture``, supervision).  Files are always RGB.
        progress: show a tqdm progress bar while decoding.

    Returns:
        a :class:`Video`.

    Raises:
        VideoError: the source is missing, unreadable, corrupt, has no video or no frame in the
            window, or its frames differ in size.
        InstitValueError / InstitTypeError: arguments out of range or of the wrong type.
    """
    if fps is not None:
        if num_frames is not _DEFAULT_NUM_FRAMES and num_frames is not None:
            raise InstitValueError(
                "pass either num_frames (a fixed count) or fps (frames per second), not both"
            )
        num_frames = None
    elif num_frames is _DEFAULT_NUM_FRAMES:
        num_frames = 8
    if pattern is not None and not isinstance(pattern, str):
        raise InstitTypeError(f"pattern must be a glob string, got {type(pattern).__name__}")

    needs_time = fps is not None or start is not None or end is not None
    from instit.media import check_channels

    check_channels(channels, None if isinstance(source, (list, tuple)) else source)

    def choose(timestamps: Sequence[float], name: str) -> list[int]:
        return select_frames(
            timestamps,
            num_frames=num_frames,
            fps=fps,
            start=start,
            end=end,
            max_frames=max_frames,
            duplicates=duplicates,
            source=name,
        )

    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and _URL.match(source):
            raise VideoError(
                f"video source {source!r} is a URL; load_video reads local files and folders "
                "(no network access): download the video first and pass its path"
            )
        path = Path(os.fspath(source))
        if not path.exists():
            raise VideoError(f"video source {str(path)!r} does not exist; check the path")
        if path.is_dir():
            return _load_folder(path, pattern, source_fps, choose, progress, needs_time)
        if pattern is not None:
            raise InstitValueError("pattern= applies to folders of images; drop it for files")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise VideoError(
                f"{str(path)!r} is a single image, not a video; pass a folder or a list of frames "
                "(or use instit.load_image for one image)"
            )
        if source_fps is not None:
            raise InstitValueError(
                "source_fps= is for image sequences; a video file has its own frame rate"
            )
        return _load_file(str(path), choose, progress)
    if pattern is not None:
        raise InstitValueError("pattern= applies to folders of images; drop it for other sources")
    if isinstance(source, np.ndarray) or _is_torch_tensor(source):
        return _load_array(source, source_fps, choose, progress, needs_time, channels)
    if isinstance(source, (list, tuple)):
        return _load_sequence(
            list(source),
            None,
            source_fps,
            choose,
            progress,
            needs_time=needs_time,
            channels=channels,
        )
    raise InstitTypeError(
        f"load_video cannot read a {type(source).__name__}; pass a video file path, a folder of "
        "images, a list of frames (PIL images, arrays or paths) or a THWC uint8 array"
    )


def _progress_bar(total: int, enabled: bool, what: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=what, unit="frame", leave=False)


def _load_file(
    path: str, choose: Callable[[Sequence[float], str], list[int]], progress: bool
) -> Video:
    from instit.video import _pyav

    with _pyav.open_container(path) as container:
        stream = _pyav.video_stream(container, path)

        def read(index: _pyav.StreamIndex) -> tuple[list[int], dict[int, Any]]:
            chosen = choose(index.timestamps, repr(path))
            positions = sorted(set(chosen))
            with _progress_bar(len(positions), progress, "decoding frames") as bar:
                return chosen, _pyav.decode(container, stream, index, positions, path, bar)

        index = _pyav.scan(container, stream, path)
        try:
            chosen, decoded = read(index)
        except _pyav.TimesDisagree:
            # the packets' times are not the frames': count the frames in the decoder's output
            # order and choose again among them
            index = _pyav.count_frames(path)
            chosen, decoded = read(index)
    return Video(
        frames=[decoded[i][0] for i in chosen],
        indices=chosen,
        timestamps=[decoded[i][1] for i in chosen],
        fps=index.fps,
        duration=index.duration,
        source=path,
        num_source_frames=len(index.pts),
    )


# -- image sequences -----------------------------------------------------------------------------


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: ``frame_2`` before ``frame_10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts)


def _load_folder(
    folder: Path,
    pattern: str | None,
    source_fps: float | None,
    choose: Callable[[Sequence[float], str], list[int]],
    progress: bool,
    needs_time: bool,
) -> Video:
    from fnmatch import fnmatchcase

    files = [
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and entry.suffix.lower() in IMAGE_SUFFIXES
        and entry.is_file()
        and (pattern is None or fnmatchcase(entry.name, pattern))
    ]
    if not files:
        which = "images" if pattern is None else f"images matching {pattern!r}"
        raise VideoError(
            f"folder {str(folder)!r} has no {which} ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "pass a folder of frames or a different pattern="
        )
    files.sort(key=lambda p: _natural_key(p.name))
    return _load_sequence(
        [str(p) for p in files],
        str(folder),
        source_fps,
        choose,
        progress,
        needs_time=needs_time,
        from_folder=True,
    )


def _load_array(
    array: Any,
    source_fps: float | None,
    choose: Callable[[Sequence[float], str], list[int]],
    progress: bool,
    needs_time: bool,
    channels: Channels,
) -> Video:
    if not isinstance(array, np.ndarray):  # a torch tensor
        array = array.detach().cpu().numpy()
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise MediaError(
            f"a video array must be THWC (frames, height, width, 1/3/4 channels), got shape "
            f"{tuple(array.shape)}; for a TCHW torch tensor pass tensor.permute(0, 2, 3, 1)"
        )
    return _load_sequence(
        list(array), None, source_fps, choose, progress, needs_time=needs_time, channels=channels
    )


def _load_sequence(
    items: list[Any],
    source: str | None,
    source_fps: float | None,
    choose: Callable[[Sequence[float], str], list[int]],
    progress: bool,
    *,
    needs_time: bool,
    from_folder: bool = False,
    channels: Channels = "rgb",
) -> Video:
    from instit.media import load_image

    name = repr(source) if source is not None else "the frame list"
    if not items:
        raise VideoError(f"{name} is empty; pass at least one frame")
    if source_fps is not None:
        if isinstance(source_fps, bool) or not isinstance(source_fps, (int, float, Fraction)):
            raise InstitTypeError(f"source_fps must be a number, got {type(source_fps).__name__}")
        if not 0 < source_fps < float("inf"):  # also refuses NaN
            raise InstitValueError(f"source_fps must be a finite number > 0, got {source_fps}")
        rate: float | None = float(source_fps)
        timestamps = [i / float(source_fps) for i in range(len(items))]
    else:
        rate = None
        timestamps = [float(i) for i in range(len(items))]
    if rate is None and needs_time:
        raise VideoError(
            f"{name} is a sequence of images without a frame rate, so fps=, start= and end= "
            "have no meaning; pass source_fps= (the rate the frames were taken at)"
        )
    chosen = choose(timestamps, name)
    positions = sorted(set(chosen))
    loaded: dict[int, Image.Image] = {}
    with _progress_bar(len(positions), progress, "loading frames") as bar:
        for position in positions:
            loaded[position] = load_image(items[position], channels=channels)
            bar.update(1)
    first = positions[0]
    for position in positions:
        if loaded[position].size != loaded[first].size:
            hint = " or pattern= to pick one family of files" if from_folder else ""
            raise VideoError(
                f"frames of {name} differ in size: {_item_name(items, first)} is "
                f"{loaded[first].size[0]}x{loaded[first].size[1]} but "
                f"{_item_name(items, position)} is "
                f"{loaded[position].size[0]}x{loaded[position].size[1]}; resize them to one "
                f"size first{hint}"
            )
    return Video(
        frames=[loaded[i] for i in chosen],
        indices=chosen,
        timestamps=[timestamps[i] for i in chosen],
        fps=rate,
        duration=None if rate is None else len(items) / rate,
        source=source,
        num_source_frames=len(items),
        names=(
            [os.path.basename(os.fspath(items[i])) for i in chosen]
            if all(isinstance(item, (str, os.PathLike)) for item in items)
            else None
        ),
    )


def _item_name(items: list[Any], position: int) -> str:
    item = items[position]
    if isinstance(item, (str, os.PathLike)):
        return repr(os.path.basename(os.fspath(item)))
    return f"frame {position}"


def _is_torch_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)
