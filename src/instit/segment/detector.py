""":class:`Detector`: the things a text names (Grounding DINO, OWLv2: boxes; SAM 3: masks).

``detector.detect(image, "a person. a ball.")`` runs transformers' own processor and model and
returns their post-processed detections as :class:`~instit.instances.Instances`, each with the
phrase it matched (``labels``) and its confidence (``scores``), numbered 1..N by score: box
Instances for Grounding DINO and OWLv2, mask Instances for SAM 3 (words straight to masks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from instit.errors import CheckpointError, InstitTypeError, InstitValueError
from instit.instances import Instances
from instit.segment import _load
from instit.segment._load import DEFAULT_DETECTOR
from instit.segment.select import threshold

__all__ = ["DEFAULT_DETECTOR", "Detector", "phrases"]

# model_type -> (model class, processor class)
FAMILIES: dict[str, tuple[str, str]] = {
    "grounding-dino": ("GroundingDinoForObjectDetection", "GroundingDinoProcessor"),
    "owlv2": ("Owlv2ForObjectDetection", "Owlv2Processor"),
    # SAM 3's detector, alone (sam3) or beside its tracker (sam3_video, as in facebook/sam3)
    "sam3": ("Sam3Model", "Sam3Processor"),
    "sam3_video": ("Sam3Model", "Sam3Processor"),
}
# the families whose detections are masks (find_instances needs no segmenter for them)
MASK_FAMILIES = frozenset({"sam3", "sam3_video"})


def phrases(text: str | Sequence[str]) -> list[str]:
    """The phrases of ``text``: ``"a person. a ball."`` or ``["a person", "a ball"]`` ->
    ``["a person", "a ball"]`` (stripped, lower case, empty ones dropped)."""
    if isinstance(text, str):
        parts = re.split(r"[.\n]", text)
    elif isinstance(text, Sequence) and all(isinstance(t, str) for t in text):
        parts = list(text)
    else:
        raise InstitTypeError(
            f"text must be a string such as 'a person. a ball.' or a list of phrases, got "
            f"{type(text).__name__}"
        )
    found = [" ".join(p.split()).lower() for p in parts]
    found = [p for p in found if p]
    if not found:
        raise InstitValueError(
            f"text {text!r} names nothing to find; pass phrases such as 'a person. a ball.'"
        )
    return found


class Detector:
    """An open-vocabulary detector: Grounding DINO, OWLv2 or SAM 3 checkpoints from
    transformers."""

    def __init__(self, folder: os.PathLike[str] | str, kind: str, device: str, dtype: Any) -> None:
        from pathlib import Path

        self._folder = Path(folder)
        self.kind = kind
        """The checkpoint's ``model_type`` (``"grounding-dino"``, ``"owlv2"``, ``"sam3"`` or
        ``"sam3_video"``)."""
        model_class, processor_class = FAMILIES[kind]
        self._device = device
        self._dtype = dtype
        self.model = _load.load(model_class, self._folder, device, dtype)
        """The transformers model."""
        self.processor = _load.load(processor_class, self._folder, device, dtype)
        """Its processor."""

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = DEFAULT_DETECTOR,
        *,
        device: str = "auto",
        dtype: Any = "auto",
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
    ) -> Detector:
        """Load a Grounding DINO, OWLv2 or SAM 3 checkpoint (hub id or folder; safetensors only).

        SAM 3 (``facebook/sam3``) is gated on the hub: accept its licence there and log in
        (``HF_TOKEN``) before the first download.

        Raises:
            DependencyError: the ``instit[segment]`` extra is missing.
            CheckpointError: not a checkpoint of a supported detector.
        """
        folder, kind = _load.model_type(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        if kind not in FAMILIES:
            raise CheckpointError(
                f"{folder} holds a {kind!r} model; Detector loads {sorted(FAMILIES)} "
                "checkpoints such as IDEA-Research/grounding-dino-tiny, "
                "google/owlv2-base-patch16 or facebook/sam3"
            )
        _load.require("Detector")
        resolved, torch_dtype = _load.placement(device, dtype)
        return cls(folder, kind, resolved, torch_dtype)

    def __repr__(self) -> str:
        return f"Detector({self.kind}, folder={str(self._folder)!r}, device={self._device!r})"

    @property
    def gives_masks(self) -> bool:
        """Whether :meth:`detect` returns masks (SAM 3) rather than boxes."""
        return self.kind in MASK_FAMILIES

    def detect(
        self,
        image: object,
        text: str | Sequence[str],
        *,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
    ) -> Instances:
        """The things ``text`` names: boxes (Grounding DINO, OWLv2) or masks (SAM 3).

        Args:
            image: anything :func:`instit.load_image` reads.
            text: ``"a person. a ball."`` (phrases separated by full stops) or a list of
                phrases.
            box_threshold: keep detections whose confidence is above this.
            text_threshold: Grounding DINO: a token belongs to a box's phrase above this
                (OWLv2 and SAM 3 match whole phrases and ignore it).

        Returns:
            box :class:`~instit.instances.Instances` (clipped to the image) or, for SAM 3,
            mask Instances at the image's size (binarised by SAM 3's post-processing; a
            detection whose mask comes out empty is left out), IDs 1..N by score (highest
            first), ``labels`` the matched phrases, ``scores`` the confidences; empty
            Instances when nothing is found.
        """
        import torch

        from instit.media import load_image

        picture = load_image(image)  # type: ignore[arg-type]
        wanted = phrases(text)
        boxes_above = threshold(box_threshold, "box_threshold")
        tokens_above = threshold(text_threshold, "text_threshold")
        width, height = picture.size
        if self.gives_masks:
            return self._detect_masks(picture, wanted, boxes_above)
        inputs = self.processor(images=picture, text=[wanted], return_tensors="pt")
        inputs = inputs.to(self._device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._dtype)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        if self.kind == "grounding-dino":
            found = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=boxes_above,
                text_threshold=tokens_above,
                target_sizes=[(height, width)],
            )[0]
        else:
            found = self.processor.post_process_grounded_object_detection(
                outputs, threshold=boxes_above, target_sizes=[(height, width)], text_labels=[wanted]
            )[0]
        boxes = found["boxes"].float().cpu().numpy().astype(np.float64).reshape(-1, 4)
        scores = found["scores"].float().cpu().numpy().astype(np.float64)
        labels = [str(label) for label in found["text_labels"]]
        return boxes_to_instances(boxes, scores, labels, (width, height))

    def _detect_masks(self, picture: Any, wanted: list[str], threshold: float) -> Instances:
        """SAM 3: one model call per phrase on the image's features (computed once), each
        post-processed by ``post_process_instance_segmentation`` as transformers documents."""
        import torch

        width, height = picture.size
        pixels = self.processor(images=picture, return_tensors="pt")["pixel_values"]
        masks, scores, labels = [], [], []
        with torch.inference_mode():
            vision = self.model.get_vision_features(
                pixel_values=pixels.to(self._device, dtype=self._dtype)
            )
            for phrase in wanted:
                words = self.processor(text=phrase, return_tensors="pt").to(self._device)
                outputs = self.model(
                    vision_embeds=vision,
                    input_ids=words["input_ids"],
                    attention_mask=words["attention_mask"],
                )
                found = self.processor.post_process_instance_segmentation(
                    outputs, threshold=threshold, target_sizes=[(height, width)]
                )[0]
                masks.append(found["masks"].cpu().numpy().astype(bool).reshape(-1, height, width))
                scores.append(found["scores"].float().cpu().numpy().astype(np.float64))
                labels += [phrase] * len(scores[-1])
        return masks_to_instances(np.concatenate(masks), np.concatenate(scores), labels)


def _by_score(scores: np.ndarray, keep: np.ndarray) -> list[int]:
    """Indices of the kept detections, highest score first (ties keep the detector's order)."""
    return [int(i) for i in np.argsort(-scores, kind="stable") if keep[i]]


def masks_to_instances(masks: np.ndarray, scores: np.ndarray, labels: list[str]) -> Instances:
    """Mask Instances from detections: empty masks dropped, numbered 1..N by score."""
    height, width = masks.shape[1:]
    order = _by_score(scores, masks.any(axis=(1, 2)))
    if not order:
        return Instances.empty((width, height))
    return Instances.from_masks(masks[order]).with_labels(
        [labels[i] for i in order], scores=scores[order]
    )


def boxes_to_instances(
    boxes: np.ndarray, scores: np.ndarray, labels: list[str], size: tuple[int, int]
) -> Instances:
    """Box Instances from detections: clipped to the image, boxes with no area dropped,
    numbered 1..N by score (highest first, ties keep the detector's order)."""
    width, height = size
    clipped = np.clip(boxes, 0, [width, height, width, height])
    has_area = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    order = _by_score(scores, has_area)
    if not order:
        return Instances.empty(size, kind="box")
    return Instances.from_boxes(clipped[order], image_size=size).with_labels(
        [labels[i] for i in order], scores=scores[order]
    )
