"""Which frames to take: uniform (LLaVA-NeXT rule) or by frame rate, inside a time window.

These functions only look at frame timestamps, never at pixels, so every source (video file,
folder of images, list of frames) is sampled by the same rules:

* **uniform** (``num_frames=k``): ``np.linspace(0, n - 1, k, dtype=int)`` over the ``n`` frames
  of the window, exactly as LLaVA-NeXT's ``load_video`` does (``dtype=int`` truncates towards
  zero), so the first and the last frame of the window are always included.  When the window has
  fewer than ``k`` frames the repeated positions are dropped (every frame once) unless
  ``duplicates=True``, which keeps LLaVA-NeXT's repeats.
* **fps** (``fps=r``): sample times ``t0, t0 + 1/r, t0 + 2/r, ...`` while the window's frames
  are on screen (up to the end of its last frame, taken to last as long as the interval before
  it, and before ``end``), where ``t0`` is the window start (or its first frame); each sample time
  takes the frame on screen at that moment (the last frame whose timestamp is ``<=`` it; never
  one before the window).  Samples that land on
  the same frame (``r`` above the video's rate) are dropped unless ``duplicates=True``.
  ``max_frames`` then thins the samples uniformly with the same linspace rule.

Requests are checked against the frames before anything is allocated: ``num_frames`` larger
than the window's frame count takes every frame once (what the linspace rule gives), and is
refused above :data:`MAX_SAMPLES` with ``duplicates=True``; ``fps`` is refused when it would make
more than ``max(MAX_SAMPLES, 4 x the window's frames)`` sample times (``fps=1e9`` on any real
video), with the rate to use instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from instit.errors import InstitTypeError, InstitValueError, VideoError

__all__ = ["select_frames", "uniform_positions"]

# Timestamps are floats computed from integer ticks; this absorbs their rounding error when a
# sample time falls exactly on a frame (e.g. 1 fps sampling of a 30 fps video).
_EPS = 1e-6
MAX_SAMPLES = 1_000_000
"""The most sample times (or repeated frames) one call makes beyond the frames it has."""


def uniform_positions(n: int, k: int, *, duplicates: bool = False) -> list[int]:
    """Positions ``np.linspace(0, n - 1, k, dtype=int)`` (LLaVA-NeXT), repeats dropped unless asked.

    >>> uniform_positions(100, 4)
    [0, 33, 66, 99]
    >>> uniform_positions(3, 5)
    [0, 1, 2]
    >>> uniform_positions(3, 5, duplicates=True)
    [0, 0, 1, 1, 2]
    """
    if n <= 0:
        return []
    if k >= n and not duplicates:
        # steps of at most one frame from 0 to n - 1 truncate to every position
        return list(range(n))
    positions = np.linspace(0, n - 1, k, dtype=int).tolist()
    if duplicates:
        return positions
    return list(dict.fromkeys(positions))


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InstitTypeError(f"{name} must be an int, got {type(value).__name__}; pass e.g. 8")
    if value < 1:
        raise InstitValueError(f"{name} must be >= 1, got {value}; pass a positive frame count")
    return int(value)


def _check_number(name: str, value: object, unit: str) -> float | None:
    """A finite number >= 0 (``unit`` names what it counts, for the messages), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InstitTypeError(f"{name} must be a number of {unit}, got {type(value).__name__}")
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise InstitValueError(f"{name} must be a finite number of {unit} >= 0, got {value}")
    return number


def select_frames(
    timestamps: Sequence[float],
    *,
    num_frames: int | None = 8,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    duplicates: bool = False,
    source: str = "the video",
) -> list[int]:
    """Return the indices (into ``timestamps``) of the frames to sample, in playing order.

    Args:
        timestamps: presentation time in seconds of every frame of the source, ascending.
        num_frames: uniform sampling of this many frames; ``None`` takes every frame of the
            window (then thinned by ``max_frames``).  Ignored when ``fps`` is given.
        fps: sample this many frames per second instead of a fixed count.
        start: window start in seconds (inclusive); ``None`` for the first frame.
        end: window end in seconds (exclusive); ``None`` for the end of the source.
        max_frames: at most this many frames, uniformly thinned (caps fps sampling mostly).
        duplicates: keep repeated frames when more samples than frames are asked for.
        source: how to name the source in error messages.

    Raises:
        VideoError: the source has no frame, or the window contains none.
        InstitValueError / InstitTypeError: an argument is out of range or of the wrong type.
    """
    k = None if num_frames is None else _check_count("num_frames", num_frames)
    cap = None if max_frames is None else _check_count("max_frames", max_frames)
    start_s = _check_number("start", start, "seconds")
    end_s = _check_number("end", end, "seconds")
    if fps is not None:
        rate = _check_number("fps", fps, "frames per second")
        if not rate:
            raise InstitValueError("fps must be > 0; pass e.g. fps=1 for one frame per second")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise InstitValueError(
            f"the time window [start={start_s}, end={end_s}) is empty; pass end > start"
        )
    times = np.asarray(timestamps, dtype=np.float64)
    if times.size == 0:
        raise VideoError(f"{source} has no frames; pass a non-empty video, folder or frame list")

    first = 0 if start_s is None else int(np.searchsorted(times, start_s - _EPS, side="left"))
    stop = times.size if end_s is None else int(np.searchsorted(times, end_s - _EPS, side="left"))
    if first >= stop:
        raise VideoError(
            f"the time window [{start_s or 0.0:g} s, {'end' if end_s is None else f'{end_s:g} s'}) "
            f"of {source} contains no frame (its frames span {times[0]:g} s to {times[-1]:g} s); "
            "pass a window inside the video"
        )

    if k is not None and duplicates and k > max(MAX_SAMPLES, stop - first):
        raise InstitValueError(
            f"num_frames={k} with duplicates=True would list {k:,} frames, repeats of the "
            f"{stop - first} frames of {source}, more than {MAX_SAMPLES:,}; pass a smaller "
            "num_frames"
        )
    if fps is not None:
        origin = times[first] if start_s is None else start_s
        # The last frame stays on screen for about one frame interval; samples stop there (or at
        # the window end, whichever comes first).
        last_gap = times[stop - 1] - times[stop - 2] if stop >= 2 else 0.0
        limit = times[stop - 1] + last_gap
        if end_s is not None:
            limit = min(limit, end_s)
        wanted = float(np.ceil((limit - origin) * float(fps) - _EPS))
        if wanted > max(MAX_SAMPLES, 4 * (stop - first)):
            span = max(limit - origin, _EPS)
            raise InstitValueError(
                f"fps={fps:g} asks for {wanted:.3g} sample times over the {span:.3g} s of "
                f"{source}, which has {stop - first} frames (about {(stop - first) / span:.3g} "
                "per second); pass an fps near that rate, or num_frames=None (with max_frames) "
                "for every frame"
            )
        count = max(int(wanted), 1)
        sample_times = origin + np.arange(count) / float(fps)
        on_screen = np.searchsorted(times, sample_times + _EPS, side="right") - 1
        chosen = np.clip(on_screen, first, stop - 1).tolist()
        if not duplicates:
            chosen = list(dict.fromkeys(chosen))
    elif k is None:
        chosen = list(range(first, stop))
    else:
        chosen = [first + p for p in uniform_positions(stop - first, k, duplicates=duplicates)]

    if cap is not None and len(chosen) > cap:
        chosen = [chosen[p] for p in uniform_positions(len(chosen), cap)]
    return chosen
