""":func:`find_instances`: raw image or video -> instances (or tracks) in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from instit.errors import InstitTypeError, InstitValueError
from instit.instances import Instances, Tracks
from instit.media import is_video

if TYPE_CHECKING:  # pragma: no cover
    from instit.segment.detector import Detector
    from instit.segment.segmenter import Segmenter

__all__ = ["default_detector", "default_segmenter", "find_instances"]

_DETECT_OPTIONS = {"box_threshold", "text_threshold"}
_EVERYTHING_OPTIONS = {
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "min_area",
    "max_instances",
    "duplicate_iou",
    "contained",
    "overlap",
}
_VIDEO_OPTIONS = {"every", "indexed_by", "progress", "new_iou"}
_cache: dict[str, Any] = {}


def default_segmenter() -> Segmenter:
    """The default :class:`Segmenter` (``facebook/sam2.1-hiera-small``), loaded once."""
    from instit.segment.segmenter import Segmenter

    if "segmenter" not in _cache:
        _cache["segmenter"] = Segmenter.from_pretrained()
    return _cache["segmenter"]


def default_detector() -> Detector:
    """The default :class:`Detector` (``IDEA-Research/grounding-dino-tiny``), loaded once."""
    from instit.segment.detector import Detector

    if "detector" not in _cache:
        _cache["detector"] = Detector.from_pretrained()
    return _cache["detector"]


def _on_image(
    image: Any,
    text: str | Sequence[str] | None,
    segmenter: Segmenter | None,
    detector: Detector | None,
    options: dict[str, Any],
) -> Instances:
    if text is None:
        everything = {k: v for k, v in options.items() if k in _EVERYTHING_OPTIONS}
        return (segmenter or default_segmenter()).segment_everything(image, **everything)
    detect = {k: v for k, v in options.items() if k in _DETECT_OPTIONS}
    found = (detector or default_detector()).detect(image, text, **detect)
    if found.kind == "mask":  # SAM 3: the words gave masks already
        return found
    if not len(found):
        return Instances.empty(found.image_size)
    return (segmenter or default_segmenter()).segment(image, boxes=found)


def _new_objects(found: Instances, tracked: Instances, threshold: float) -> Instances:
    """The instances of ``found`` that no tracked mask covers (IoU below ``threshold``)."""
    masks, known = found.masks(), tracked.masks()
    if masks is None or not len(found):
        return found.select([])
    if known is None or not len(tracked):
        return found
    flat, old = masks.reshape(len(masks), -1), known.reshape(len(known), -1)
    shared = flat.astype(np.int64) @ old.T.astype(np.int64)
    union = flat.sum(axis=1)[:, None] + old.sum(axis=1)[None, :] - shared
    fresh = (shared / np.maximum(union, 1) < threshold).all(axis=1)
    return found.select([i for i, new in zip(found.ids, fresh, strict=True) if new])


def find_instances(
    media: Any,
    text: str | Sequence[str] | None = None,
    *,
    segmenter: Segmenter | None = None,
    detector: Detector | None = None,
    **opts: Any,
) -> Instances | Tracks:
    """Find the instances of an image, or track them through a video, in one call.

    Image: with ``text`` (``"a person. a ball."``) the :class:`Detector` finds boxes and the
    :class:`Segmenter` turns them into masks (labels and scores kept); a SAM 3 detector gives
    masks itself, so no segmenter is used (or loaded) for an image.  Without ``text`` the
    segmenter segments everything.  Video (a :class:`~instit.video.Video`, a frame list, a
    ``TxHxWx3`` array, a video file or a folder of frames): the same on the first frame, then
    :meth:`Segmenter.track`; with ``every=k`` every k-th frame is searched again and objects no
    tracked mask covers (IoU below ``new_iou``, default 0.5) join with new IDs.

    Args:
        media: an image (anything :func:`instit.load_image` reads) or a video as above.
        text: phrases to find; ``None`` segments everything.
        segmenter, detector: models to use; by default ``facebook/sam2.1-hiera-small`` and
            ``IDEA-Research/grounding-dino-tiny`` are loaded on first use and cached.
        **opts: ``box_threshold`` / ``text_threshold`` (:meth:`Detector.detect`), the options
            of :meth:`Segmenter.segment_everything`, and for videos ``every``, ``new_iou``,
            ``indexed_by`` and ``progress`` (:meth:`Segmenter.track`).

    Returns:
        :class:`~instit.instances.Instances` for an image, :class:`~instit.instances.Tracks`
        for a video.
    """
    unknown = set(opts) - _DETECT_OPTIONS - _EVERYTHING_OPTIONS - _VIDEO_OPTIONS
    if unknown:
        raise InstitTypeError(
            f"find_instances got unknown option(s) {sorted(unknown)}; it takes "
            f"{sorted(_DETECT_OPTIONS | _EVERYTHING_OPTIONS | _VIDEO_OPTIONS)}"
        )
    if not is_video(media):
        stray = set(opts) & _VIDEO_OPTIONS
        if stray:
            raise InstitTypeError(f"{sorted(stray)} apply to videos only; media is an image")
        return _on_image(media, text, segmenter, detector, opts)
    segment = segmenter or default_segmenter()
    from instit.video import Video, load_video

    video = media if isinstance(media, Video) else load_video(media, num_frames=None)
    every = opts.get("every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise InstitValueError(f"every must be a positive integer (frames), got {every!r}")
    indexed_by = opts.get("indexed_by", "source")
    track_options = {"indexed_by": indexed_by, "progress": opts.get("progress", True)}
    keys = video.indices if indexed_by == "source" else list(range(len(video)))
    first = _on_image(video.frames[0], text, segment, detector, opts)
    if not len(first):
        return Tracks({}, image_size=video.size)
    prompts = {keys[0]: first}
    tracks = segment.track(video, prompts, **track_options)
    for position in range(every or len(video), len(video), every or len(video)):
        found = _on_image(video.frames[position], text, segment, detector, opts)
        fresh = _new_objects(found, tracks.at(keys[position]), opts.get("new_iou", 0.5))
        if len(fresh):
            start = max(tracks.ids + tuple(i for p in prompts.values() for i in p.ids)) + 1
            renamed = fresh.relabel({old: start + n for n, old in enumerate(fresh.ids)})
            prompts[keys[position]] = renamed
            tracks = segment.track(video, prompts, **track_options)
    return tracks
