""":class:`Segmenter`: masks from boxes or clicks, automatic masks, tracking through video.

A thin layer over transformers' own SAM 2 / SAM 2.1 / EdgeTAM / SAM 3 tracker classes: the image
model and its processor answer :meth:`Segmenter.segment` and :meth:`Segmenter.segment_everything`,
the video model (loaded from the same checkpoint on the first :meth:`Segmenter.track`) propagates
masks.  Every call gives :class:`~instit.instances.Instances` / :class:`~instit.instances.Tracks`
with the IDs the user chose, so the marks drawn from them keep their numbers on every frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from instit.errors import (
    CheckpointError,
    InstancesError,
    InstitTypeError,
    InstitValueError,
    VideoError,
)
from instit.instances import Instances, Tracks
from instit.segment import _load
from instit.segment._load import DEFAULT_SEGMENTER
from instit.segment.select import select_masks, threshold

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

__all__ = ["DEFAULT_SEGMENTER", "SegmentWarning", "Segmenter"]

# model_type in config.json -> (image model, image processor, video model, video processor)
_SAM2 = ("Sam2Model", "Sam2Processor", "Sam2VideoModel", "Sam2VideoProcessor")
_EDGETAM = ("EdgeTamModel", "Sam2Processor", "EdgeTamVideoModel", "Sam2VideoProcessor")
_SAM3 = (
    "Sam3TrackerModel",
    "Sam3TrackerProcessor",
    "Sam3TrackerVideoModel",
    "Sam3TrackerVideoProcessor",
)
FAMILIES: dict[str, tuple[str, str, str, str]] = {
    "sam2": _SAM2,
    "sam2_video": _SAM2,
    "edgetam": _EDGETAM,
    "edgetam_video": _EDGETAM,
    "sam3_tracker": _SAM3,
    "sam3_tracker_video": _SAM3,
    "sam3": _SAM3,
    "sam3_video": _SAM3,
}


class SegmentWarning(UserWarning):
    """A prompt gave no mask (the instance is left out) or a similar segmentation outcome."""


def _image(image: object) -> Image.Image:
    from instit.media import load_image

    return load_image(image)  # type: ignore[arg-type]


def _prompt_points(
    points: object, point_labels: object, count_hint: int | None, size: tuple[int, int]
) -> tuple[list[list[list[float]]], list[list[int]]]:
    """``(N, 2)`` one click per instance or ``(N, K, 2)`` groups -> processor lists."""
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InstitTypeError(
            "points must be a (N, 2) or (N, K, 2) array of numbers, the same number K of "
            f"clicks for every instance ({exc})"
        ) from exc
    if array.ndim == 2 and array.shape[1] == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[2] != 2 or array.shape[1] == 0:
        raise InstitValueError(
            f"points has shape {array.shape}; pass (N, 2) (one click per instance) or "
            "(N, K, 2) (K clicks per instance)"
        )
    if count_hint is not None and len(array) != count_hint:
        raise InstitValueError(
            f"got {len(array)} point groups for {count_hint} boxes; pass one group per box"
        )
    if point_labels is None:
        labels = np.ones(array.shape[:2], dtype=np.int64)
    else:
        labels = np.asarray(point_labels)
        if labels.ndim == 1 and array.shape[1] == 1:
            labels = labels[:, None]
        if labels.shape != array.shape[:2] or not np.isin(labels, (0, 1)).all():
            raise InstitValueError(
                f"point_labels has shape {labels.shape} (values {np.unique(labels).tolist()}); "
                f"pass shape {array.shape[:2]} of 1 (object) and 0 (background)"
            )
    if not np.isfinite(array).all():
        raise InstitValueError("points hold NaN or infinity")
    width, height = size
    outside = (array < 0).any(axis=(1, 2)) | (array > [width, height]).any(axis=(1, 2))
    if outside.any():
        group = int(np.flatnonzero(outside)[0])
        raise InstancesError(
            f"point group {group} has a click outside the {width}x{height} image; pass pixel "
            "coordinates of this image"
        )
    return array.tolist(), labels.astype(np.int64).tolist()


class _ProcessedFrames(Mapping[int, "torch.Tensor"]):
    """Frames the video processor prepares on demand, ``CHUNK`` at a time (one processor call
    per chunk; the pixels equal processing the whole video at once): the session sees every
    frame, but only one chunk is held, so memory does not grow with the video."""

    CHUNK = 8

    def __init__(self, frames: Sequence[Image.Image], processor: Any, dtype: Any) -> None:
        self._frames = frames
        self._processor = processor
        self._dtype = dtype
        self._first: int | None = None
        self._held: Any = None

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._first is None or not self._first <= index < self._first + self.CHUNK:
            self._first = index - index % self.CHUNK
            chunk = list(self._frames[self._first : self._first + self.CHUNK])
            pixels = self._processor(videos=chunk, return_tensors="pt").pixel_values_videos[0]
            self._held = pixels.to("cpu", dtype=self._dtype)
        return self._held[index - self._first]

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._frames)))

    def __len__(self) -> int:
        return len(self._frames)


def _video_frames(video: object, indexed_by: str) -> tuple[Sequence[Image.Image], list[int]]:
    """The frames to track and the key of each frame in the returned :class:`Tracks`."""
    from instit.video import Video, load_video

    if indexed_by not in ("source", "sample"):
        raise InstitValueError(
            f"indexed_by must be 'source' or 'sample', got {indexed_by!r}; 'source' keys frames "
            "by their number in the video, 'sample' by position in the Video"
        )
    if isinstance(video, (str, os.PathLike)):
        video = load_video(video, num_frames=None)
    if isinstance(video, Video):
        keys = list(video.indices) if indexed_by == "source" else list(range(len(video)))
        return video.frames, keys
    if isinstance(video, Sequence) and not isinstance(video, (str, bytes)):
        if not video:
            raise VideoError("the frame list is empty; pass at least one frame")
        frames = [_image(frame) for frame in video]
        sizes = {frame.size for frame in frames}
        if len(sizes) > 1:
            raise VideoError(f"the frames differ in size ({sorted(sizes)}); pass same-size frames")
        return frames, list(range(len(frames)))
    raise InstitTypeError(
        f"cannot track through a {type(video).__name__}; pass a Video, a list of frames or a "
        "video file path"
    )


class Segmenter:
    """A SAM-family model: segment by boxes or clicks, segment everything, track through video.

    Build with :meth:`from_pretrained`; the image model is loaded once, the video model on the
    first :meth:`track` call, and both are reused.
    """

    def __init__(
        self,
        folder: os.PathLike[str] | str,
        family: tuple[str, str, str, str],
        device: str,
        dtype: Any,
    ) -> None:
        from pathlib import Path

        self._folder = Path(folder)
        self._family = family
        self._device = device
        self._dtype = dtype
        self.model = _load.load(family[0], self._folder, device, dtype)
        """The transformers image model (``Sam2Model`` ...)."""
        self.processor = _load.load(family[1], self._folder, device, dtype)
        """Its processor (``Sam2Processor`` ...)."""
        self._video: tuple[Any, Any] | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = DEFAULT_SEGMENTER,
        *,
        device: str = "auto",
        dtype: Any = "auto",
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
    ) -> Segmenter:
        """Load a SAM 2 / SAM 2.1 / EdgeTAM / SAM 3 tracker checkpoint (hub id or folder).

        Only configs and safetensors are downloaded; no remote code runs.

        Args:
            name_or_path: a hub id such as ``"facebook/sam2.1-hiera-small"`` or a folder saved
                with transformers' ``save_pretrained`` (model and processor).
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` ...
            dtype: ``"auto"`` (bfloat16 on recent GPUs, float32 on CPU) or a dtype / its name.

        Raises:
            DependencyError: the ``instit[segment]`` extra (torchvision; timm for EdgeTAM) is
                missing.
            CheckpointError: not a checkpoint of a supported segmentation model.
        """
        folder, kind = _load.model_type(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        family = FAMILIES.get(kind)
        if family is None:
            raise CheckpointError(
                f"{folder} holds a {kind!r} model; Segmenter loads {sorted(FAMILIES)} "
                "checkpoints such as facebook/sam2.1-hiera-small"
            )
        _load.require("Segmenter", timm=kind.startswith("edgetam"))
        resolved, torch_dtype = _load.placement(device, dtype)
        return cls(folder, family, resolved, torch_dtype)

    def __repr__(self) -> str:
        return (
            f"Segmenter({self._family[0]}, folder={str(self._folder)!r}, device={self._device!r})"
        )

    # -- images ------------------------------------------------------------------------------

    def segment(
        self,
        image: object,
        *,
        boxes: object = None,
        points: object = None,
        point_labels: object = None,
        ids: Sequence[int] | None = None,
    ) -> Instances:
        """Masks for prompted instances: one per box and/or per point group.

        Args:
            image: anything :func:`instit.load_image` reads.
            boxes: ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels, or box
                :class:`~instit.instances.Instances` (a :class:`Detector` result: its IDs,
                labels and scores are kept).
            points: ``(N, 2)`` one click per instance or ``(N, K, 2)`` clicks per instance.
            point_labels: ``(N, K)`` 1 (on the object) or 0 (background); default all 1.
            ids: one ID per instance (default ``1..N`` in prompt order, or the IDs of box
                Instances).

        Returns:
            mask :class:`~instit.instances.Instances` at the image's own size, binarised as
            transformers' post-processing does (``multimask_output=False``), with the model's
            predicted IoU as ``scores``.  A prompt whose mask comes out empty is left out
            with a :class:`SegmentWarning`.
        """
        import torch

        picture = _image(image)
        size = picture.size
        labels = scores = None
        if isinstance(boxes, Instances):
            if ids is None:
                ids = list(boxes.ids)
            labels, scores = boxes.labels, boxes.scores
            boxes = np.asarray(boxes.boxes())
        if boxes is None and points is None:
            raise InstitValueError(
                "segment needs boxes= or points= to prompt with; use segment_everything() for "
                "automatic masks"
            )
        prompt: dict[str, Any] = {}
        count = None
        if boxes is not None:
            checked = Instances.from_boxes(boxes, ids, image_size=size)
            ids, count = list(checked.ids), len(checked)
            prompt["input_boxes"] = [checked.boxes().tolist()]
        if points is not None:
            groups, point_flags = _prompt_points(points, point_labels, count, size)
            first = [group[0] for group in groups]
            ids = list(Instances.from_points(first, ids, image_size=size).ids)
            prompt["input_points"] = [groups]
            prompt["input_labels"] = [point_flags]
        assert ids is not None
        if not ids:
            return Instances.empty(size)
        inputs = self.processor(images=picture, return_tensors="pt", **prompt).to(self._device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._dtype)
        with torch.inference_mode():
            outputs = self.model(**inputs, multimask_output=False)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"].cpu()
        )[0][:, 0].numpy()
        predicted = outputs.iou_scores[0, :, 0].float().cpu().numpy().astype(np.float64)
        result_scores = predicted if scores is None else np.asarray(scores)
        return _non_empty(masks, ids, labels, result_scores, size)

    def segment_everything(
        self,
        image: object,
        *,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        min_area: int = 100,
        max_instances: int | None = 50,
        duplicate_iou: float = 0.8,
        contained: float = 0.9,
        overlap: bool = False,
    ) -> Instances:
        """Automatic masks for a Set-of-Marks prompt.

        The candidates are exactly those of transformers' ``pipeline("mask-generation")`` on
        this model (a ``points_per_side`` x ``points_per_side`` grid of clicks, three masks per
        click, filtered by ``pred_iou_thresh`` and ``stability_score_thresh``, then box NMS at
        IoU 0.7), computed without the pipeline's per-mask run-length round trip:
        :func:`instit.segment.select_masks` then drops duplicates, swallowed and small masks,
        keeps ``max_instances`` and (unless ``overlap``) gives every pixel to at most one
        instance.  IDs are 1..N, largest instance first; ``scores`` are the predicted IoUs.

        ``points_per_batch`` clicks go through the mask decoder at once: it trades memory for
        speed (on the CPU the tests find the pipeline's masks with batch sizes that do and do
        not divide the grid).
        """
        if isinstance(points_per_side, bool) or not isinstance(points_per_side, int):
            raise InstitTypeError(f"points_per_side must be an int, got {points_per_side!r}")
        if isinstance(points_per_batch, bool) or not isinstance(points_per_batch, int):
            raise InstitTypeError(f"points_per_batch must be an int, got {points_per_batch!r}")
        if points_per_side < 1 or points_per_batch < 1:
            raise InstitValueError("points_per_side and points_per_batch must be at least 1")
        pred_iou_thresh = threshold(pred_iou_thresh, "pred_iou_thresh")
        stability_score_thresh = threshold(stability_score_thresh, "stability_score_thresh")
        picture = _image(image)
        candidates, scores = self._candidates(
            picture, points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh
        )
        masks, scores = select_masks(
            candidates,
            scores,
            min_area=min_area,
            max_instances=max_instances,
            duplicate_iou=duplicate_iou,
            contained=contained,
            overlap=overlap,
        )
        if not len(masks):
            return Instances.empty(picture.size)
        ids = tuple(range(1, len(masks) + 1))
        return Instances._from_bool_masks(masks, ids).with_labels(scores=scores)

    def _candidates(
        self,
        picture: Image.Image,
        points_per_side: int,
        points_per_batch: int,
        pred_iou_thresh: float,
        stability_score_thresh: float,
        nms_iou: float = 0.7,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(N, H, W)`` bool masks and ``(N,)`` predicted IoUs: what transformers'
        ``pipeline("mask-generation")`` returns for ``picture`` (one crop, its default
        ``mask_threshold`` 0 and stability offset 1; ``nms_iou`` is its ``crops_nms_thresh``),
        in its order.

        The same steps on the same tensors: transformers' grid and preprocessing, the image
        embedded once, the decoder's three masks per click, upscaling, IoU and stability
        filters, boxes and torchvision's NMS (the pipeline's crop-edge filter and padding do
        nothing for its one crop, the whole image).  What differs is bookkeeping: clicks none
        of whose masks passes the IoU filter are not upscaled; the rest are upscaled a bounded
        number of pixels at a time in the pipeline's ``(clicks, 3, h, w)`` layout (each
        click's masks come out the same in any batch); survivors are kept bit-packed until NMS
        instead of as run lengths (the pipeline's Python loops over those, and its deep copy of
        them to the CPU, were most of its time).
        """
        import torch
        from torchvision.ops import batched_nms
        from transformers.models.sam2.image_processing_sam2 import (
            _batched_mask_to_box,
            _compute_stability_score,
        )

        processor = self.processor.image_processor
        target = processor.size.get("longest_edge", processor.size.get("height"))
        _, grid, crops, labels = processor.generate_crop_boxes(
            picture, target, points_per_crop=points_per_side
        )
        inputs = processor(images=crops, return_tensors="pt").to(self.model.dtype)
        height, width = (int(v) for v in inputs["original_sizes"][0])
        # clicks upscaled at once: at most 2**25 float pixels (128 MiB), at least one click
        chunk = max(1, 2**25 // (3 * height * width))
        packed: list[np.ndarray] = []
        kept_scores: list[torch.Tensor] = []
        kept_boxes: list[torch.Tensor] = []
        device = self.model.device
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(device))
            for first in range(0, grid.shape[1], points_per_batch):
                outputs = self.model(
                    input_points=grid[:, first : first + points_per_batch].to(device),
                    input_labels=labels[:, first : first + points_per_batch].to(device),
                    image_embeddings=embeddings,
                )
                low, iou = outputs.pred_masks[0], outputs.iou_scores[0]  # (clicks, 3, ...)
                if pred_iou_thresh > 0.0:  # clicks with no mask that can pass
                    hopeful = (iou > pred_iou_thresh).any(dim=1)
                    low, iou = low[hopeful], iou[hopeful]
                for start in range(0, len(low), chunk):
                    # upscaled as (clicks, 3, h, w) like the pipeline: torch's CPU kernel rounds
                    # differently for other layouts (one mask per channel, all in one batch row)
                    masks = processor.post_process_masks(
                        low[None, start : start + chunk], [[height, width]], binarize=False
                    )[0].flatten(0, 1)
                    scores = iou[start : start + chunk].flatten(0, 1)
                    passed = torch.ones_like(scores, dtype=torch.bool)
                    if pred_iou_thresh > 0.0:
                        passed &= scores > pred_iou_thresh
                    if stability_score_thresh > 0.0:
                        stability = _compute_stability_score(masks, 0.0, 1)
                        passed &= stability > stability_score_thresh
                    if not passed.all():  # copy only the survivors' pixels
                        masks, scores = masks[passed], scores[passed]
                    binary = masks > 0.0
                    kept_boxes.append(_batched_mask_to_box(binary))
                    kept_scores.append(scores)
                    packed.append(np.packbits(binary.flatten(1).cpu().numpy(), axis=1))
        if not packed:  # the IoU filter left nothing
            return np.zeros((0, height, width), dtype=bool), np.zeros(0)
        # on the CPU, as the pipeline does (it moves every batch's output there first); float32
        # like the boxes, since NMS refuses mixed dtypes (a bfloat16 model's IoUs convert exactly)
        scores = torch.cat(kept_scores).cpu().float()
        boxes = torch.cat(kept_boxes).cpu().float()
        keep = batched_nms(boxes, scores, torch.zeros(len(boxes)), nms_iou).numpy()
        bits = np.concatenate(packed)[keep]
        masks = np.unpackbits(bits, axis=1, count=height * width).view(bool)
        return masks.reshape(len(keep), height, width), scores[keep].numpy()

    # -- video -------------------------------------------------------------------------------

    def _video_model(self) -> tuple[Any, Any]:
        if self._video is None:
            _, _, model_class, processor_class = self._family
            self._video = (
                _load.load(model_class, self._folder, self._device, self._dtype),
                _load.load(processor_class, self._folder, self._device, self._dtype),
            )
        return self._video

    def track(
        self,
        video: object,
        instances: object,
        *,
        frame: int = 0,
        indexed_by: Literal["source", "sample"] = "source",
        progress: bool = True,
    ) -> Tracks:
        """Propagate instances through every frame of ``video``, keeping their IDs.

        Args:
            video: a :class:`~instit.video.Video`, a list of frames (any image
                :func:`instit.load_image` reads) or a video file path (every frame is read).
            instances: the instances on frame ``frame`` (masks, boxes or points; anything
                :meth:`Instances.coerce` accepts), or a dict ``{frame: Instances}`` for objects
                that enter later (each ID is prompted on the first frame that lists it).
            frame: the frame ``instances`` are on, in the keys of the result.
            indexed_by: for a :class:`Video`, key frames by source frame number (``"source"``,
                default) or by position in the Video (``"sample"``).
            progress: show a tqdm progress bar.

        Returns:
            :class:`~instit.instances.Tracks` keyed like the video: the given IDs are the
            object IDs on every frame; an object the model loses is absent from that frame
            (never an empty mask); frames before an object's first prompt do not have it
            unless it is tracked backwards from the first prompted frame (which is done when
            that frame is not the first).

        Memory stays flat in the video's length: frames are prepared for the model one at a
        time and the session's memory bank keeps only the frames the model can still attend
        to (``num_maskmem`` / ``max_object_pointers_in_encoder`` back, plus prompted frames).
        """
        import torch
        from tqdm.auto import tqdm

        frames, keys = _video_frames(video, indexed_by)
        prompts = _prompts(instances, frame, keys, frames[0].size)
        model, processor = self._video_model()
        width, height = frames[0].size
        session = processor.init_video_session(
            inference_device=self._device,
            video_storage_device="cpu",
            inference_state_device="cpu" if self._device == "cpu" else self._device,
            dtype=self._dtype,
        )
        session.processed_frames = _ProcessedFrames(frames, processor.video_processor, self._dtype)
        session.video_height, session.video_width = height, width
        start = min(prompts)
        # forward from the first prompted frame, then (same session) backward from it
        passes = [(False, range(start, len(frames)))]
        if start > 0:
            passes.append((True, range(start, -1, -1)))
        span = _memory_span(model.config)
        size = (height, width)
        results: dict[int, Instances] = {}
        bar = tqdm(total=len(frames), desc="track", disable=not progress, leave=False)
        with torch.inference_mode(), bar:
            for reverse, order in passes:
                for position in order:
                    if position in prompts and not reverse:
                        _add_prompt(processor, session, position, prompts[position], size)
                    output = model(inference_session=session, frame_idx=position, reverse=reverse)
                    if reverse and position == start:
                        continue  # already found by the forward pass
                    results[position] = _present(processor, output, (width, height))
                    if span is not None:
                        _forget(session, position, span, reverse, start)
                    bar.update()
        return Tracks(
            {keys[p]: found for p, found in sorted(results.items()) if len(found)},
            image_size=(width, height),
        )


def _present(processor: Any, output: Any, size: tuple[int, int]) -> Instances:
    """The objects of one frame's output whose mask is not empty, with their object IDs."""
    width, height = size
    masks = processor.post_process_masks(
        [output.pred_masks.float().cpu()], original_sizes=[[height, width]]
    )[0][:, 0].numpy()
    present = masks.reshape(len(masks), -1).any(axis=1)
    ids = tuple(int(i) for i, here in zip(output.object_ids, present, strict=True) if here)
    if not ids:
        return Instances.empty(size)
    return Instances._from_bool_masks(masks if present.all() else masks[present], ids)


def _memory_span(config: Any) -> int | None:
    """How many frames back the model reads memories and object pointers (None: unknown)."""
    maskmem = getattr(config, "num_maskmem", None)
    pointers = getattr(config, "max_object_pointers_in_encoder", None)
    if maskmem is None or pointers is None:
        return None
    return max(int(maskmem), int(pointers))


def _forget(session: Any, position: int, span: int, reverse: bool, start: int) -> None:
    """Drop tracked-frame outputs the model can no longer read.  Prompted frames stay, and so
    do the ``span`` frames after ``start`` when a backward pass will read them."""
    protected = range(start, start + span) if start > 0 else range(0)
    for outputs in session.output_dict_per_obj.values():
        tracked = outputs["non_cond_frame_outputs"]
        for old in list(tracked):
            distance = old - position if reverse else position - old
            if distance >= span and old not in protected:
                del tracked[old]


def _add_prompt(
    processor: Any, session: Any, position: int, instances: Instances, size: tuple[int, int]
) -> None:
    ids = list(instances.ids)
    prompt: dict[str, Any]
    if instances.kind in ("mask", "polygon"):
        masks = instances.masks()
        assert masks is not None
        prompt = {"input_masks": [np.asarray(m, dtype=np.float32) for m in masks]}
    elif instances.kind == "box":
        prompt = {"input_boxes": [instances.boxes().tolist()], "original_size": size}
    else:
        points = instances.points()
        assert points is not None
        prompt = {
            "input_points": [[[p] for p in points.tolist()]],
            "input_labels": [[[1] for _ in ids]],
            "original_size": size,
        }
    processor.add_inputs_to_inference_session(
        inference_session=session, frame_idx=position, obj_ids=ids, **prompt
    )


def _prompts(
    instances: object, frame: int, keys: list[int], size: tuple[int, int]
) -> dict[int, Instances]:
    """``{position: Instances}``: each ID on the first frame that lists it."""
    given = instances if isinstance(instances, Mapping) and _is_frame_dict(instances) else None
    if given is None:
        given = {frame: instances}
    positions = {key: position for position, key in enumerate(keys)}
    prompts: dict[int, Instances] = {}
    seen: set[int] = set()
    for key in sorted(given):
        if key not in positions:
            raise InstitValueError(
                f"instances are given on frame {key}, which the video does not have (its frames "
                f"are {keys[0]}..{keys[-1]}{'' if len(keys) < 2 else f', {len(keys)} frames'}); "
                "use the frame numbers of the video (or indexed_by='sample' for positions)"
            )
        found = Instances.coerce(given[key], image_size=size)
        new = [i for i in found.ids if i not in seen]
        if new:
            prompts[positions[key]] = found.select(new)
            seen.update(new)
    if not prompts:
        raise InstitValueError("no instances to track; pass at least one instance")
    return prompts


def _is_frame_dict(value: Mapping[Any, Any]) -> bool:
    """A ``{frame: instances}`` dict (not a ``{id: mask}`` dict or a ``to_dict()`` dict)."""
    return bool(value) and all(
        isinstance(v, Instances) or (isinstance(v, Mapping) and "instances" in v)
        for v in value.values()
    )


def _non_empty(
    masks: np.ndarray,
    ids: list[int],
    labels: tuple[str, ...] | None,
    scores: np.ndarray,
    size: tuple[int, int],
) -> Instances:
    present = masks.reshape(len(masks), -1).any(axis=1)
    if not present.all():
        lost = [i for i, here in zip(ids, present, strict=True) if not here]
        warnings.warn(
            f"the model found no mask for instances {lost}; they are left out (try a larger "
            "box or more clicks)",
            SegmentWarning,
            stacklevel=3,
        )
        if not present.any():
            return Instances.empty(size)
        masks = masks[present]
    kept = tuple(i for i, here in zip(ids, present, strict=True) if here)
    # the masks are post_process_masks' own new bool array: taken as they are, not copied
    return Instances._from_bool_masks(masks, kept).with_labels(
        None
        if labels is None
        else [label for label, here in zip(labels, present, strict=True) if here],
        scores=np.asarray(scores, dtype=np.float64)[present],
    )
