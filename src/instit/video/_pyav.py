"""Exact, seek-based frame reading from video files with PyAV (FFmpeg).

Frame ``k`` of a video is the ``k``-th frame in *presentation* order.  To know exactly which
presentation timestamp (pts) that is, :func:`scan` reads every packet of the video stream once
(demuxing only: packets are not decoded, so this costs a small fraction of one decode) and sorts
their pts.  This works for every container whatever its header says (WebM/MKV/TS report no frame
count, variable-frame-rate files have no fixed frame duration) and gives the keyframe positions.

:func:`decode` then fetches the wanted frames in playing order: it seeks to the keyframe at or
before a wanted frame and decodes forward to its pts; when the next wanted frame comes before the
next keyframe it simply keeps decoding instead of seeking again.  Runs of wanted frames that each
need their own seek are shared among several decoders (threads with their own demuxers, see
:func:`plan`), and unwanted H.264 frames that no other frame refers to are not decoded.  Only the
wanted frames are converted to RGB, and the video is never held in memory as a whole.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from instit.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    import av.container
    import av.video.frame
    import av.video.stream
    from PIL import Image

# How many earlier keyframes to try when a seek lands after the wanted frame (open GOPs,
# inexact container indexes) before falling back to decoding from the start of the file.
_SEEK_RETRIES = 3
# Decoder threading.  "AUTO" lets FFmpeg use frame threads where the codec supports them; see
# docs/video.md for the measurements behind this choice.
_THREAD_TYPE = "AUTO"
# With several decoders at once (one per run of wanted frames), each decodes on one thread.
_PARALLEL_THREAD_TYPE = "NONE"
# Codecs whose non-reference frames (H.264 nal_ref_idc 0) no other frame needs: those that are
# not wanted are skipped while decoding forward to a wanted frame.
_SKIP_NONREF_CODECS = frozenset({"h264"})
# At most this many decoders at once.
_MAX_WORKERS = 8
# A file whose frames end more than this many frame intervals (and this many seconds) before the
# duration its header declares is reported as truncated.
_TRUNCATION_FRAMES = 2
_TRUNCATION_SECONDS = 0.1


@dataclass(frozen=True)
class StreamIndex:
    """Presentation timestamps of every frame of a video stream, from one demux pass.

    ``pts`` is ascending (presentation order) in ``time_base`` ticks; ``keyframes`` holds the
    pts of the keyframe packets, ascending.  ``exact`` is False when the container gave no
    timestamps; then frames are addressed by decode order and read sequentially.
    """

    pts: list[int]
    keyframes: list[int]
    time_base: Fraction
    last_duration: int
    average_rate: Fraction | None
    exact: bool

    @property
    def timestamps(self) -> list[float]:
        """Seconds from the first frame, one per frame."""
        origin = self.pts[0]
        tb = float(self.time_base)
        return [(p - origin) * tb for p in self.pts]

    @property
    def fps(self) -> float | None:
        """The stream's average frame rate (frames per second), if known."""
        if self.average_rate:
            return float(self.average_rate)
        span = (self.pts[-1] - self.pts[0]) * float(self.time_base)
        return (len(self.pts) - 1) / span if span > 0 else None

    @property
    def duration(self) -> float | None:
        """Seconds from the start of the first frame to the end of the last one."""
        span = self.pts[-1] - self.pts[0] + self.last_duration
        return span * float(self.time_base) if span > 0 else None


def open_container(path: str) -> av.container.InputContainer:
    """Open ``path`` with PyAV, turning FFmpeg failures into a :class:`VideoError`."""
    import av

    try:
        return av.open(path, mode="r")
    except EOFError as exc:
        raise VideoError(
            f"{path!r} ends before any video data: the file is empty or truncated; "
            "re-encode or re-download it"
        ) from exc
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path!r} is not a video FFmpeg can read ({exc.strerror or exc}); it may be "
            "truncated, corrupt or not a video at all: re-encode or re-download it"
        ) from exc


def video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    """The video stream FFmpeg itself would pick (``av_find_best_stream``, as decord does too):
    a moving picture before a single one, e.g. a cover image stored as a first track.  Cover art
    flagged as such (``attached_pic``) is never picked while there is another video stream."""
    from av.stream import Disposition

    streams = list(container.streams.video)
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(
            f"{path!r} has no video stream (its streams: {', '.join(kinds)}); "
            "pass a file that contains video"
        )
    moving = [s for s in streams if not s.disposition & Disposition.attached_pic] or streams
    best = container.streams.best("video")
    return best if best in moving else moving[0]


def scan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str
) -> StreamIndex:
    """Demux every packet of ``stream`` once and build its :class:`StreamIndex`."""
    import av

    pts: list[int] = []
    keyframes: list[int] = []
    durations: dict[int, int] = {}
    packets = 0
    untimed = 0
    corrupt = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the empty packet that marks the end of the stream
                continue
            packets += 1
            corrupt += packet.is_corrupt
            if packet.is_discard:  # dropped by an edit list: never displayed
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                untimed += 1
                continue
            pts.append(ts)
            durations[ts] = packet.duration or 0
            if packet.is_keyframe:
                keyframes.append(ts)
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path!r} is truncated or corrupt: reading failed after {packets} video packets "
            f"({exc.strerror or exc}); re-encode or re-download the file"
        ) from exc
    declared = stream.frames or 0
    if declared and packets < declared:
        raise VideoError(
            f"{path!r} is truncated: its header declares {declared} frames but only {packets} "
            "are in the file; re-download or re-encode it"
        )
    if not pts and not untimed:
        raise _no_frames(path)
    if corrupt:
        raise VideoError(
            f"{path!r} is corrupt: the demuxer flagged {corrupt} of its {packets} video packets "
            "as damaged (lost or broken data); re-download it, or re-encode it with ffmpeg"
        )
    if container.format.name == "mpeg":
        # MPEG program streams (.mpg, .vob): packets are cut from PES packets, not frames, and
        # carry times of other frames than the ones they start
        return count_frames(path)
    if untimed or _times_untrusted(container, stream, pts):
        # No presentation times to sort by (none at all, or decode-order times for frames that
        # the decoder reorders): frames are numbered in the order the decoder outputs them,
        # which is presentation order, and read sequentially.
        return _output_order_index(packets, stream)
    ordered = sorted(set(pts))
    last_duration = durations[ordered[-1]]
    if last_duration <= 0 and len(ordered) > 1:
        last_duration = (ordered[-1] - ordered[0]) // (len(ordered) - 1)
    index = StreamIndex(
        pts=ordered,
        keyframes=sorted(set(keyframes)),
        time_base=stream.time_base or Fraction(1),
        last_duration=last_duration,
        average_rate=stream.average_rate,
        exact=True,
    )
    _check_length(container, stream, index, path)
    return index


def _output_order_index(count: int, stream: av.video.stream.VideoStream) -> StreamIndex:
    """The index of a stream whose ``count`` frames are numbered in the order the decoder
    outputs them, ``index / fps`` seconds apart."""
    return StreamIndex(
        pts=list(range(count)),
        keyframes=[],
        time_base=1 / stream.average_rate if stream.average_rate else Fraction(1),
        last_duration=1,
        average_rate=stream.average_rate,
        exact=False,
    )


def count_frames(path: str) -> StreamIndex:
    """Index a stream by decoding it once and counting the frames that come out.

    For MPEG program streams and for streams whose frames turn out to carry other times than
    their packets (see :class:`TimesDisagree`): their packets need not be one frame each.
    """
    with open_container(path) as container:
        stream = video_stream(container, path)
        count = sum(1 for _ in _decoded(container, stream, path))
        if not count:
            raise _no_frames(path)
        return _output_order_index(count, stream)


def _no_frames(path: str) -> VideoError:
    return VideoError(f"{path!r} has a video stream with no frames; pass a non-empty video")


def _times_untrusted(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, pts: list[int]
) -> bool:
    """Whether the packets' times cannot be the frames' presentation times.

    * AVI stores no presentation times, so with a codec that can reorder frames its times
      cannot be trusted.
    * A stream the decoder reorders (B-frames) whose packet times nevertheless rise in decode
      order was written by a muxer that stamped decode times as presentation times (a correct
      file's B-frames come after the later frames they refer to, so its times go back and
      forth).  A stream that could reorder but never does looks the same; reading it
      sequentially is slower but gives the same frames.
    * A stream the decoder does not reorder is shown in decode order, so its times must rise.
    """
    context = stream.codec_context
    if container.format.name == "avi":
        return bool(context.codec.reorder)
    rising = all(a < b for a, b in itertools.pairwise(pts))
    return rising if context.has_b_frames else not rising


def _declared_seconds(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """The video's length as the file's header states it, if it states one for this stream.

    MP4/MOV/AVI/TS give the stream's own duration.  Matroska/WebM only give the whole file's,
    which is the video's only when the file holds nothing else.
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000  # AV_TIME_BASE units
    return None


def _check_length(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: StreamIndex,
    path: str,
) -> None:
    """Refuse a file whose packets stop well before the length its header declares."""
    declared = _declared_seconds(container, stream)
    covered = index.duration
    if declared is None or covered is None:
        return
    tolerance = max(_TRUNCATION_FRAMES * covered / len(index.pts), _TRUNCATION_SECONDS)
    if declared - covered > tolerance:
        raise VideoError(
            f"{path!r} is truncated or corrupt: its header declares {declared:.3f} s of video "
            f"but its frames end after {covered:.3f} s; re-download or re-encode it"
        )


def _frame_ts(frame: av.video.frame.VideoFrame) -> int | None:
    return frame.pts if frame.pts is not None else frame.dts


def _to_image(frame: av.video.frame.VideoFrame) -> Image.Image:
    """RGB PIL image of ``frame``, turned upright by the stream's display matrix (if any).

    The RGB pixels are converted once into a numpy array that the image then shares: PyAV's own
    ``to_image`` copies them twice more, which costs as much as decoding a frame.
    """
    from PIL import Image

    image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    rotation = frame.rotation  # counter-clockwise degrees, as FFmpeg's display matrix says
    if rotation % 360:
        image = image.rotate(rotation, expand=True)
    return image


class TimesDisagree(Exception):
    """A decoded frame carries another timestamp than the packet it was decoded from: the
    stream must be indexed again with :func:`count_frames`."""


class _Reader:
    """One decoder that fetches runs of wanted frames, each run after its own seek.

    While it decodes forward to the wanted frames of a run it skips (for H.264) the unwanted
    frames that no other frame refers to, and once the last wanted packet of the run is in the
    decoder it drains the decoder instead of feeding it more packets just to push the wanted
    frames out of its reordering queue.  Both go by packet timestamps, so each wanted frame must
    come out with its packet's timestamp; a frame that does not (MPEG program streams, whose
    packets do not start with the frames they carry) raises :class:`TimesDisagree`.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        index: StreamIndex,
    ) -> None:
        self.container = container
        self.stream = stream
        self.index = index
        self.skip_nonref = stream.codec_context.name in _SKIP_NONREF_CODECS

    def _frames_from(self, anchor: int | None, targets: list[int]) -> Iterator[Any]:
        """Seek to the keyframe at or before ``anchor`` (None: the start) and decode forward."""
        if anchor is None:
            self.container.seek(0)
        else:
            self.container.seek(anchor, stream=self.stream, backward=True)
        context = self.stream.codec_context
        context.skip_frame = "DEFAULT"
        unsent = set(targets)
        for packet in self.container.demux(self.stream):
            if self.skip_nonref:
                context.skip_frame = "DEFAULT" if packet.pts in unsent else "NONREF"
            unsent.discard(packet.pts)
            yield from packet.decode()
            if not unsent:
                yield from context.decode(None)  # drain: the wanted frames are all decoded
                return

    def _attempt(self, anchor: int | None, targets: list[int]) -> Iterator[tuple[int, Any]]:
        """``(target, frame)`` for each target in turn after seeking to ``anchor``.

        Each target gets the first frame at or after it, which must be its own frame
        (:class:`TimesDisagree` otherwise).  Nothing comes when the seek landed after the first
        target.
        """
        pending = iter(targets)
        target: int | None = next(pending)
        first = True
        for frame in self._frames_from(anchor, targets):
            ts = _frame_ts(frame)
            if ts is None:
                continue
            if first and anchor is not None and target is not None and ts > target:
                return  # landed after the wanted frame: an earlier keyframe is tried
            first = False
            while target is not None and ts >= target:
                if ts != target:
                    raise TimesDisagree
                yield target, frame
                target = next(pending, None)
            if target is None:
                return

    def _anchors(self, target: int) -> list[int | None]:
        """Where to seek for ``target``: itself, a few earlier keyframes, the start of the file."""
        keys = self.index.keyframes
        before = keys[: bisect.bisect_right(keys, target)]
        return [target, *reversed(before[-_SEEK_RETRIES - 1 : -1]), None]

    def read(self, targets: list[int]) -> Iterator[tuple[int, Any]]:
        """``(target, frame)`` for ``targets`` (ascending, no keyframe between them) in turn.

        Targets that cannot be decoded are left out.
        """
        done = 0
        anchors = self._anchors(targets[0])
        while done < len(targets) and anchors:
            anchor = anchors.pop(0)
            for target, frame in self._attempt(anchor, targets[done:]):
                yield target, frame
                done += 1


def worker_count() -> int:
    """How many decoders may run at once: the usable CPUs, at most ``_MAX_WORKERS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_WORKERS))


def plan(index: StreamIndex, positions: list[int]) -> list[list[int]]:
    """Split ``positions`` (ascending) into runs that each need one seek, costliest first.

    Positions between which no keyframe lies stay in one run (one decoder reaches the later by
    decoding forward from the earlier).  A run's cost is taken as the number of frames from the
    keyframe before it to its last position; handing the costliest runs out first keeps the
    decoders busy until the end.
    """
    runs: list[list[int]] = []
    for position in positions:
        target = index.pts[position]
        if runs:
            previous = index.pts[runs[-1][-1]]
            i = bisect.bisect_right(index.keyframes, previous)
            if not (i < len(index.keyframes) and index.keyframes[i] <= target):
                runs[-1].append(position)
                continue
        runs.append([position])

    def cost(run: list[int]) -> int:
        keys = index.keyframes
        key = keys[max(bisect.bisect_right(keys, index.pts[run[0]]) - 1, 0)] if keys else 0
        return run[-1] - bisect.bisect_left(index.pts, key)

    return sorted(runs, key=cost, reverse=True)


def decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: StreamIndex,
    positions: list[int],
    path: str,
    progress: Any,
) -> dict[int, tuple[Image.Image, float]]:
    """Decode the frames at ``positions`` (ascending, unique); return image and timestamp each.

    The runs of :func:`plan` are handed out one at a time to up to :func:`worker_count` decoders
    (threads, each with its own demuxer: FFmpeg releases the GIL while decoding), each taking
    the next run when it is done with one; ``container`` is one of them.  ``progress`` is a
    tqdm-like object updated once per frame.  Streams without an exact index are read once
    from the start.

    Raises:
        TimesDisagree: a wanted frame came out with another time than its packet's; index the
            stream with :func:`count_frames` and decode again.
    """
    if not index.exact:
        return _decode_sequential(path, positions, index, progress)
    runs = deque(plan(index, positions))
    workers = min(worker_count(), len(runs))

    def drain_runs(
        container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> dict[int, tuple[Image.Image, float]]:
        reader = _Reader(container, stream, index)
        out: dict[int, tuple[Image.Image, float]] = {}
        while True:
            try:
                run = runs.popleft()  # thread-safe
            except IndexError:
                return out
            try:
                out.update(_read_run(reader, run, path, progress))
            except BaseException:
                runs.clear()  # the other decoders stop after their current run
                raise

    if workers == 1:
        # one decoder: let FFmpeg thread it
        stream.thread_type = _THREAD_TYPE
        return drain_runs(container, stream)
    stream.thread_type = _PARALLEL_THREAD_TYPE

    def own_decoder() -> dict[int, tuple[Image.Image, float]]:
        with open_container(path) as other:
            other_stream = other.streams[stream.index]
            other_stream.thread_type = _PARALLEL_THREAD_TYPE
            return drain_runs(other, other_stream)

    with ThreadPoolExecutor(max_workers=workers - 1) as pool:
        others = [pool.submit(own_decoder) for _ in range(workers - 1)]
        out = drain_runs(container, stream)
        for future in others:
            out.update(future.result())
    return out


def _read_run(
    reader: _Reader, positions: list[int], path: str, progress: Any
) -> dict[int, tuple[Image.Image, float]]:
    """Decode one run of ``positions`` (ascending) and convert its frames to images."""
    import av

    index = reader.index
    targets = [index.pts[p] for p in positions]
    origin = index.pts[0]
    tb = float(index.time_base)
    out: dict[int, tuple[Image.Image, float]] = {}
    frames = reader.read(targets)
    for position, target in zip(positions, targets, strict=True):
        try:
            found = next(frames, None)
        except av.FFmpegError as exc:
            raise VideoError(
                f"decoding frame {position} of {path!r} failed ({exc.strerror or exc}); the "
                "file is corrupt: re-encode or re-download it"
            ) from exc
        if found is None:
            raise VideoError(
                f"frame {position} (pts {target}) of {path!r} could not be decoded although "
                "its packet is in the file; the file is corrupt: re-encode it"
            )
        ts = _frame_ts(found[1])
        seconds = (ts - origin) * tb if ts is not None else (target - origin) * tb
        out[position] = (_to_image(found[1]), seconds)
        progress.update(1)
    return out


def _decode_sequential(
    path: str, positions: list[int], index: StreamIndex, progress: Any
) -> dict[int, tuple[Image.Image, float]]:
    """Last resort for streams without usable timestamps: decode from the start, number the
    frames in output order (presentation order), keep the wanted ones."""
    wanted = set(positions)
    out: dict[int, tuple[Image.Image, float]] = {}
    seconds = index.timestamps
    with open_container(path) as container:
        stream = video_stream(container, path)
        for number, frame in enumerate(_decoded(container, stream, path)):
            if number in wanted:
                out[number] = (_to_image(frame), seconds[number])
                progress.update(1)
                if len(out) == len(wanted):
                    break
    missing = sorted(wanted - out.keys())
    if missing:
        raise VideoError(
            f"{path!r} decoded to fewer frames than it has packets (frame {missing[0]} is "
            "missing); the file is corrupt: re-encode it"
        )
    return out


def _decoded(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str
) -> Iterator[av.video.frame.VideoFrame]:
    """Every frame of ``stream`` from the start, in output order, decoded with FFmpeg's own
    threading; a decoding failure becomes a :class:`VideoError`."""
    import av

    stream.thread_type = _THREAD_TYPE
    try:
        yield from container.decode(stream)
    except av.FFmpegError as exc:
        raise VideoError(
            f"decoding {path!r} failed ({exc.strerror or exc}); the file is corrupt: "
            "re-encode or re-download it"
        ) from exc
