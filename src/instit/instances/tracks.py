"""The instances of a video: :class:`Tracks`, one :class:`~instit.instances.Instances` per
frame with IDs shared across frames, and the warning for tracked frames a sampling skipped."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from instit.errors import InstancesError, InstitTypeError
from instit.instances._validate import _parse_frame_index, _parse_id, _parse_image_size
from instit.instances.core import _FORMAT_VERSION, Instance, Instances, UnknownIdError, _decode
from instit.instances.formats import is_sink_rows, parse_key, tracks_from_sink_rows


class UnsampledFramesWarning(UserWarning):
    """Tracks have instances on source frames the video did not sample, so they are not drawn.

    ``dropped`` holds those source frame indices, ``marked`` the number of sampled frames that
    show instances.  Pass ``snap=True`` to move them to the nearest sampled frame instead.
    """

    def __init__(self, message: str, dropped: tuple[int, ...] = (), marked: int = 0) -> None:
        super().__init__(message)
        self.dropped = dropped
        self.marked = marked


class Tracks(Mapping[int, Instances]):
    """Instances of a video: one :class:`Instances` per frame, sharing IDs across frames.

    A read-only mapping ``frame_index -> Instances`` (0-based frame numbers of the source, or
    positions in a list of frames).  An ID may be absent in some frames and come back later.
    Frames without an entry have no instances (:meth:`at` returns empty Instances for them).
    Values may be anything :meth:`Instances.coerce` accepts.  With ``image_size`` every
    frame is checked against it (and carries it); without, frames that know their size must
    agree.
    """

    def __init__(
        self, frames: Mapping[int, object], *, image_size: tuple[int, int] | None = None
    ) -> None:
        if not isinstance(frames, Mapping):
            raise InstitTypeError(
                f"Tracks needs a dict {{frame_index: instances}}, got {type(frames).__name__}; "
                "use Tracks.from_list(...) for one entry per frame"
            )
        size = _parse_image_size(image_size)
        parsed: dict[int, Instances] = {}
        for key in frames:
            index = _parse_frame_index(parse_key(key, "frame index"))
            try:
                parsed[index] = Instances.coerce(frames[key], image_size=size)
            except (InstancesError, InstitTypeError) as exc:
                raise type(exc)(f"frame {index}: {exc}") from exc
        sizes = {i: f.image_size for i, f in parsed.items() if f.image_size is not None}
        if len(set(sizes.values())) > 1:
            (first, a), (second, b) = _two_different(sizes)
            raise InstancesError(
                f"frame {first} is {a[0]}x{a[1]} but frame {second} is {b[0]}x{b[1]}; all "
                "frames of a video have the same size"
            )
        self._frames = dict(sorted(parsed.items()))
        self._image_size = size if size is not None else next(iter(sizes.values()), None)

    @classmethod
    def from_list(
        cls, frames: Sequence[object], *, image_size: tuple[int, int] | None = None
    ) -> Tracks:
        """Tracks from one entry per frame position (``None`` = no instances in that frame)."""
        if isinstance(frames, (str, bytes, Mapping)) or not isinstance(frames, Sequence):
            raise InstitTypeError(f"from_list needs a list, got {type(frames).__name__}")
        return cls({i: f for i, f in enumerate(frames) if f is not None}, image_size=image_size)

    @classmethod
    def coerce(cls, obj: object) -> Tracks:
        """:class:`Tracks`, a dict ``{frame_index: instances}`` (keys may be digit strings, as
        in JSON), a per-frame list, or supervision ``JSONSink``/``CSVSink`` rows with
        ``frame_index`` and ``tracker_id`` columns (IDs: ``tracker_id``)."""
        if isinstance(obj, Tracks):
            return obj
        if is_sink_rows(obj):
            return tracks_from_sink_rows(obj)  # type: ignore[arg-type]
        if isinstance(obj, Mapping):
            if "frames" in obj and "format" in obj:
                return cls.from_dict(obj)
            return cls(obj)
        if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
            return cls.from_list(obj)
        raise InstitTypeError(
            f"cannot use a {type(obj).__name__} as tracks; pass Tracks, a dict "
            "{frame_index: instances} or a list with one entry per frame"
        )

    def __getitem__(self, frame_index: int) -> Instances:
        return self._frames[frame_index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def ids(self) -> tuple[int, ...]:
        """Every ID seen in any frame, sorted."""
        return tuple(sorted({i for frame in self._frames.values() for i in frame.ids}))

    @property
    def frame_indices(self) -> tuple[int, ...]:
        """Frames with an entry, sorted."""
        return tuple(self._frames)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the frames when any frame knows it."""
        return self._image_size

    def at(self, frame_index: int) -> Instances:
        """The instances of frame ``frame_index`` (empty Instances when it has none)."""
        index = _parse_frame_index(frame_index)
        found = self._frames.get(index)
        return found if found is not None else Instances.empty(self._image_size)

    def select_frames(self, indices: Iterable[int]) -> Tracks:
        """Tracks of the frames ``indices``, **re-keyed to positions** ``0..k-1``.

        ``tracks.select_frames([0, 15, 30])`` gives the tracks of a 3-frame clip sampled at
        those source frames: position 1 holds source frame 15.  Repeated indices are allowed.
        """
        positions = [_parse_frame_index(i) for i in indices]
        return Tracks(
            {p: self._frames[i] for p, i in enumerate(positions) if i in self._frames},
            image_size=self._image_size,
        )

    def sampled(self, indices: Iterable[int], *, snap: bool = False) -> Tracks:
        """Tracks of a video sampled at source frames ``indices``, **keyed by position**.

        Like :meth:`select_frames`, but for drawing on a sampled video: tracked frames that
        were not sampled are not silently lost.  Without ``snap`` they are dropped with one
        :class:`UnsampledFramesWarning` naming them and counting the frames that keep marks.
        With ``snap=True`` each of them moves to the nearest sampled frame (the earlier one on
        a tie); a sampled frame keeps its own entry when it has one, else takes the nearest
        tracked frame that snaps to it, and only tracked frames that lose to another are still
        dropped (with the warning).
        """
        positions = [_parse_frame_index(i) for i in indices]
        unique = sorted(set(positions))
        chosen: dict[int, int] = {i: i for i in unique if i in self._frames}  # sampled -> source
        if snap and unique:
            for source in self._frames:
                if source in chosen:
                    continue
                slot = int(np.searchsorted(unique, source))
                near = [unique[j] for j in (slot - 1, slot) if 0 <= j < len(unique)]
                target = min(near, key=lambda i: (abs(i - source), i))
                current = chosen.get(target)
                if current is None or (abs(current - target), current) > (
                    abs(source - target),
                    source,
                ):
                    chosen[target] = source
        used = set(chosen.values())
        dropped = tuple(i for i in self._frames if i not in used)
        result = Tracks(
            {p: self._frames[chosen[i]] for p, i in enumerate(positions) if i in chosen},
            image_size=self._image_size,
        )
        if dropped:
            shown = ", ".join(str(i) for i in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
            hint = (
                "other tracked frames are nearer to their sampled frames"
                if snap
                else "pass snap=True (--snap) to move them to the nearest sampled frame, or "
                "sample those frames"
            )
            warnings.warn(
                UnsampledFramesWarning(
                    f"{len(dropped)} of {len(self._frames)} tracked frames were not sampled "
                    f"(source frames {shown}) and are not drawn; {len(result)} of "
                    f"{len(positions)} sampled frames show instances; {hint}",
                    dropped,
                    len(result),
                ),
                stacklevel=2,
            )
        return result

    def track(self, instance_id: int) -> dict[int, Instance]:
        """``{frame_index: Instance}`` for every frame where ``instance_id`` appears."""
        number = _parse_id(instance_id)
        found = {i: f[number] for i, f in self._frames.items() if number in f}
        if not found:
            raise UnknownIdError(
                f"no instance with id {number} in any frame; the IDs are {list(self.ids)}"
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict ``{"frames": {"<index>": Instances.to_dict()}}``."""
        return {
            "format": "instit.tracks",
            "version": _FORMAT_VERSION,
            "image_size": None if self._image_size is None else list(self._image_size),
            "frames": {str(i): f.to_dict() for i, f in self._frames.items()},
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tracks:
        """Rebuild :class:`Tracks` from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or not isinstance(data.get("frames"), Mapping):
            raise InstancesError('a tracks dict needs a "frames" dict; pass Tracks.to_dict()')
        frames: dict[int, Instances] = {}
        for key, value in data["frames"].items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise InstancesError(f"frame key {key!r} is not an integer") from None
            index = _parse_frame_index(index)
            try:
                frames[index] = Instances.from_dict(value)
            except (InstancesError, InstitTypeError) as exc:
                raise type(exc)(f"frame {index}: {exc}") from exc
        return cls(frames, image_size=_parse_image_size(data.get("image_size")))

    @classmethod
    def from_json(cls, text: str | bytes) -> Tracks:
        """Rebuild :class:`Tracks` from :meth:`to_json` output."""
        return cls.from_dict(_decode(text, "tracks"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tracks):
            return NotImplemented
        return self._image_size == other._image_size and self._frames == other._frames

    __hash__ = None  # type: ignore[assignment]

    def show(self, video: object = None, *, max_frames: int = 8) -> list[Any]:
        """Marked frames (PIL images), at most ``max_frames`` spread over the frames with
        entries: drawn on the frames of ``video`` (a :class:`~instit.video.Video` or a frame
        list, indexed like these tracks) when given, else on neutral grey canvases."""
        from instit.marks.views import tracks_view

        return tracks_view(self, video, max_frames=max_frames)

    def _repr_html_(self) -> str:
        from instit.marks.views import strip_html

        return strip_html(self)

    def __repr__(self) -> str:
        return (
            f"Tracks(frames={len(self._frames)}, ids={list(self.ids)}, "
            f"image_size={self._image_size})"
        )


def _two_different(
    sizes: Mapping[int, tuple[int, int]],
) -> tuple[tuple[int, tuple[int, int]], tuple[int, tuple[int, int]]]:
    items = list(sizes.items())
    first = items[0]
    second = next(item for item in items if item[1] != first[1])
    return first, second
