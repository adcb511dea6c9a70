"""instit.segment on tiny random SAM 2 / Grounding DINO / OWLv2 checkpoints.

The checkpoints are built from configs, saved with ``save_pretrained`` and loaded back through
``from_pretrained`` (like a user's download).  Parity tests run transformers' own processor and
model calls next to instit's and compare the outputs exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import instit
from instit.errors import (
    CheckpointError,
    DependencyError,
    InstancesError,
    InstitTypeError,
    InstitValueError,
)
from instit.instances import GeometryWarning, Instances, Tracks
from instit.segment import Detector, Segmenter, SegmentWarning, find_instances
from instit.tasks import ask
from instit.testing import make_tiny_detector, make_tiny_segmenter

WIDTH, HEIGHT = 120, 90


def _noise(seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _clip(count: int) -> list[Image.Image]:
    """A bright square moving right over a dark textured background."""
    frames = []
    for t in range(count):
        pixels = np.asarray(_noise(100)) // 4
        pixels[20:50, 10 + 6 * t : 40 + 6 * t] = (230, 200, 40)
        frames.append(Image.fromarray(pixels))
    return frames


@pytest.fixture(scope="module")
def sam_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_segmenter(tmp_path_factory.mktemp("sam") / "tiny-sam2")


@pytest.fixture(scope="module")
def segmenter(sam_path: Path) -> Segmenter:
    return Segmenter.from_pretrained(sam_path, device="cpu")


@pytest.fixture(scope="module", params=["grounding-dino", "owlv2"])
def detector_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_detector(tmp_path_factory.mktemp("det") / request.param, request.param)


@pytest.fixture(scope="module")
def gdino(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    path = make_tiny_detector(tmp_path_factory.mktemp("gd") / "gdino", "grounding-dino")
    return Detector.from_pretrained(path, device="cpu")


# -- packaging --------------------------------------------------------------------------------


def test_import_instit_and_segment_names_stay_light():
    code = (
        "import json, sys, instit; instit.Segmenter; instit.Detector; instit.find_instances; "
        "print(json.dumps([m for m in ('torch', 'torchvision', 'timm', 'transformers') "
        "if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("cls", ["Segmenter", "Detector"])
def test_missing_extra_is_a_dependency_error_naming_pip(cls: str, sam_path: Path, tmp_path: Path):
    path = sam_path if cls == "Segmenter" else make_tiny_detector(tmp_path / "gd")
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import instit\n"
        "try:\n"
        f"    instit.{cls}.from_pretrained({str(path)!r}, device='cpu')\n"
        "except instit.DependencyError as exc:\n"
        "    print('DependencyError:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "DependencyError:" in out.stdout
    assert "pip install 'instit[segment]'" in out.stdout and "torchvision" in out.stdout
    assert issubclass(DependencyError, ImportError)


def test_wrong_checkpoint_kind_is_a_checkpoint_error(sam_path: Path, tmp_path: Path):
    with pytest.raises(CheckpointError, match="Detector loads"):
        Detector.from_pretrained(sam_path, device="cpu")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        Segmenter.from_pretrained(tmp_path, device="cpu")


# -- segment ----------------------------------------------------------------------------------


# the transformers classes each family's model card documents: image model, its processor,
# video model, its processor
TRANSFORMERS_CLASSES = {
    "sam2": ("Sam2Model", "Sam2Processor", "Sam2VideoModel", "Sam2VideoProcessor"),
    "edgetam": ("EdgeTamModel", "Sam2Processor", "EdgeTamVideoModel", "Sam2VideoProcessor"),
    "sam3_tracker": (
        "Sam3TrackerModel",
        "Sam3TrackerProcessor",
        "Sam3TrackerVideoModel",
        "Sam3TrackerVideoProcessor",
    ),
}


def _classes(kind: str) -> tuple[type, ...]:
    import transformers

    return tuple(getattr(transformers, name) for name in TRANSFORMERS_CLASSES[kind])


def _bare_segment(
    path: Path, image: Image.Image, kind: str = "sam2", **prompt: object
) -> np.ndarray:
    model_class, processor_class, _, _ = _classes(kind)
    model = model_class.from_pretrained(path).eval()
    processor = processor_class.from_pretrained(path)
    inputs = processor(images=image, return_tensors="pt", **prompt)
    with torch.no_grad():
        outputs = model(**inputs, multimask_output=False)
    return processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0][:, 0]


def test_segment_boxes_match_transformers_bit_for_bit(segmenter: Segmenter, sam_path: Path):
    image = _noise(1)
    boxes = [[10.0, 10.0, 60.0, 50.0], [30.0, 20.0, 110.0, 85.0], [0.0, 0.0, 120.0, 90.0]]
    expected = _bare_segment(sam_path, image, input_boxes=[boxes]).numpy()
    found = segmenter.segment(image, boxes=boxes)
    assert found.ids == (1, 2, 3) and found.kind == "mask" and found.image_size == (WIDTH, HEIGHT)
    assert np.array_equal(found.masks(), expected)
    assert found.scores is not None and found.scores.shape == (3,)
    # built without a copy or re-validation, yet the same as the validating constructor
    assert found == Instances.from_masks(expected, [1, 2, 3]).with_labels(scores=found.scores)
    assert np.array_equal(found.boxes(), Instances.from_masks(expected).boxes())
    assert not found.masks().flags.writeable


def _scaled_masks(sam_path: Path, factor: float, *, drop: int | None = None) -> Segmenter:
    """A fresh Segmenter whose mask decoder's logits are multiplied by ``factor`` (the random
    model's are ~1e-3, too flat for stability scores), optionally with prompt ``drop``'s mask
    logits all negative (an empty mask)."""
    fresh = Segmenter.from_pretrained(sam_path, device="cpu")

    def hook(module: torch.nn.Module, args: object, output: tuple) -> tuple:
        masks = output[0] * factor
        if drop is not None:
            masks[:, drop] = -1.0
        return (masks, *output[1:])

    fresh.model.mask_decoder.register_forward_hook(hook)
    return fresh


def test_segment_leaves_out_empty_masks_with_a_warning(sam_path: Path):
    boxes = Instances.from_boxes(
        [[10, 10, 60, 50], [30, 20, 110, 85], [0, 0, 120, 90]], [4, 9, 2]
    ).with_labels(["a", "b", "c"], scores=[0.9, 0.4, 0.7])
    with pytest.warns(SegmentWarning) as recorded:
        found = _scaled_masks(sam_path, 1.0, drop=1).segment(_noise(3), boxes=boxes)
    assert len(recorded) == 1 and "[9]" in str(recorded[0].message)
    assert found.ids == (4, 2) and found.labels == ("a", "c")
    assert found.scores.tolist() == [0.9, 0.7]
    assert all(found[i].mask.any() for i in found.ids)


def test_segment_points_match_transformers_bit_for_bit(segmenter: Segmenter, sam_path: Path):
    image = _noise(2)
    groups = [[[20.0, 20.0], [30.0, 25.0]], [[80.0, 60.0], [5.0, 5.0]]]
    labels = [[1, 1], [1, 0]]
    expected = _bare_segment(sam_path, image, input_points=[groups], input_labels=[labels]).numpy()
    found = segmenter.segment(image, points=groups, point_labels=labels, ids=[7, 3])
    assert found.ids == (7, 3)
    assert np.array_equal(found.masks(), expected)
    one_click = segmenter.segment(image, points=[[20, 20], [80, 60]])
    assert np.array_equal(
        one_click.masks(),
        _bare_segment(
            sam_path, image, input_points=[[[[20, 20]], [[80, 60]]]], input_labels=[[[1], [1]]]
        ).numpy(),
    )


def test_segment_keeps_detector_ids_labels_and_scores(segmenter: Segmenter):
    boxes = Instances.from_boxes([[10, 10, 60, 50], [30, 20, 110, 85]], [4, 9]).with_labels(
        ["a cat", "a dog"], scores=[0.9, 0.4]
    )
    found = segmenter.segment(_noise(3), boxes=boxes)
    assert found.ids == (4, 9) and found.labels == ("a cat", "a dog")
    assert found.scores.tolist() == [0.9, 0.4]
    assert found[9].label == "a dog" and found[9].score == 0.4


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16", "P", "CMYK"])
def test_segment_reads_any_image_mode(segmenter: Segmenter, mode: str):
    image = _noise(4, (70, 130)).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    found = segmenter.segment(image, boxes=[[5, 5, 60, 100]])
    assert found.image_size == (70, 130)
    assert found.masks().shape == (1, 130, 70)


def test_segment_rejects_bad_prompts_with_clear_errors(segmenter: Segmenter):
    image = _noise(5)
    with pytest.raises(InstitValueError, match="boxes= or points="):
        segmenter.segment(image)
    with pytest.raises(InstitValueError, match="point_labels"):
        segmenter.segment(image, points=[[1, 1], [2, 2]], point_labels=[1, 2])
    with pytest.raises(InstitValueError, match="one group per box"):
        segmenter.segment(image, boxes=[[1, 1, 9, 9]], points=[[1, 1], [2, 2]])
    with pytest.raises(InstancesError, match="more than once"):
        segmenter.segment(image, boxes=[[1, 1, 9, 9], [2, 2, 8, 8]], ids=[3, 3])
    with pytest.raises(InstancesError, match="outside"):
        segmenter.segment(image, points=[[500, 1]])
    with pytest.raises(InstancesError, match="point group 1 has a click outside"):
        segmenter.segment(image, points=[[[5, 5], [7, 7]], [[6, 6], [-3, 2]]])
    with pytest.raises(InstitTypeError, match="same number K of clicks"):
        segmenter.segment(image, points=[[[5, 5]], [[6, 6], [8, 2]]])
    with pytest.warns(GeometryWarning):
        found = segmenter.segment(image, boxes=[[-10, -10, 60, 50]])
    assert found.masks().shape == (1, HEIGHT, WIDTH)


def test_segment_with_no_boxes_gives_empty_instances(segmenter: Segmenter):
    found = segmenter.segment(_noise(6), boxes=np.zeros((0, 4)))
    assert len(found) == 0 and found.image_size == (WIDTH, HEIGHT)


# -- segment everything -----------------------------------------------------------------------


def test_segment_everything_selects_from_the_pipelines_masks(segmenter: Segmenter, sam_path):
    from transformers import Sam2Model, Sam2Processor, pipeline

    from instit.segment import select_masks

    image = _noise(7)
    options = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    generator = pipeline(
        "mask-generation",
        model=Sam2Model.from_pretrained(sam_path),
        image_processor=Sam2Processor.from_pretrained(sam_path).image_processor,
        device="cpu",
    )
    raw = generator(image, points_per_crop=4, points_per_batch=16, **options)
    candidates = np.stack([m.numpy() for m in raw["masks"]])
    expected, scores = select_masks(candidates, raw["scores"].numpy(), min_area=1)
    found = segmenter.segment_everything(image, points_per_side=4, min_area=1, **options)
    assert len(found) == len(expected) >= 1
    assert np.array_equal(found.masks(), expected)
    assert np.allclose(found.scores, scores)
    assert found.ids == tuple(range(1, len(found) + 1))


@pytest.mark.parametrize(
    ("side", "batch", "pred_iou", "stability", "nms", "count"),
    [
        (4, 5, 0.0, 0.0, 1.0, (48, 48)),  # every mask of every click, batches not dividing
        (4, 16, 0.4995, 0.9, 1.0, (2, 47)),  # both filters keep some and drop some
        (7, 10, 0.0, 0.9, 0.7, (1, 146)),  # NMS drops some; a grid the batch does not divide
        (4, 64, 0.88, 0.95, 0.7, (0, 48)),  # the defaults
    ],
)
def test_segment_everything_candidates_are_the_pipelines(
    sam_path: Path,
    side: int,
    batch: int,
    pred_iou: float,
    stability: float,
    nms: float,
    count: tuple[int, int],
):
    """Before selection, segment_everything's candidates are transformers' mask-generation
    pipeline's output on the same model: the same masks, scores and order, for any
    points_per_batch (its own run uses 64)."""
    from transformers import pipeline

    sharp = _scaled_masks(sam_path, 30000.0)  # logits large enough for stability scores
    image = _noise(7)
    generator = pipeline(
        "mask-generation",
        model=sharp.model,
        image_processor=sharp.processor.image_processor,
        device="cpu",
    )
    raw = generator(
        image,
        points_per_crop=side,
        points_per_batch=64,
        pred_iou_thresh=pred_iou,
        stability_score_thresh=stability,
        crops_nms_thresh=nms,
    )
    masks, scores = sharp._candidates(image, side, batch, pred_iou, stability, nms)
    assert len(masks) == len(raw["masks"]) and count[0] <= len(masks) <= count[1]
    expected = [m.numpy() for m in raw["masks"]]
    assert masks.shape == (len(expected), HEIGHT, WIDTH) and masks.dtype == bool
    assert all(np.array_equal(a, b) for a, b in zip(masks, expected, strict=True))
    assert np.array_equal(scores, raw["scores"].float().numpy())


def test_segment_everything_respects_max_instances_and_min_area(segmenter: Segmenter):
    image = _noise(8)
    loose = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "points_per_side": 4}
    none = segmenter.segment_everything(image, min_area=WIDTH * HEIGHT + 1, **loose)
    assert len(none) == 0 and none.image_size == (WIDTH, HEIGHT)
    capped = segmenter.segment_everything(image, min_area=1, max_instances=1, **loose)
    assert len(capped) <= 1
    with pytest.raises(InstitTypeError):
        segmenter.segment_everything(image, points_per_side=2.5)
    with pytest.raises(InstitTypeError, match="points_per_batch"):
        segmenter.segment_everything(image, points_per_batch=8.0)
    with pytest.raises(InstitValueError, match="at least 1"):
        segmenter.segment_everything(image, points_per_batch=0)
    for name, value in [("pred_iou_thresh", "high"), ("stability_score_thresh", 1.5)]:
        with pytest.raises(InstitValueError, match=rf"{name} must be a number in \[0, 1\]"):
            segmenter.segment_everything(image, **{name: value})


def test_segment_everything_runs_in_bfloat16(sam_path: Path):
    """A bfloat16 segmenter (the default dtype on recent GPUs) finds automatic masks: its
    predicted IoUs go through NMS (which needs one dtype for boxes and scores) as float32."""
    half = Segmenter.from_pretrained(sam_path, device="cpu", dtype=torch.bfloat16)
    image = _noise(7)
    masks, scores = half._candidates(image, 4, 16, 0.0, 0.0, 1.0)  # every mask, none dropped
    assert masks.shape == (48, HEIGHT, WIDTH) and scores.dtype == np.float32
    assert np.array_equal(scores, np.sort(scores)[::-1])  # NMS's order: by predicted IoU
    as_bf16 = torch.from_numpy(scores).to(torch.bfloat16).float().numpy()
    assert np.array_equal(as_bf16, scores)  # the bfloat16 model's own IoUs, exactly
    found = half.segment_everything(
        image, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_area=1
    )
    assert len(found) >= 1 and found.masks().shape[1:] == (HEIGHT, WIDTH)
    assert set(found.scores.tolist()) <= set(scores.astype(np.float64).tolist())


# -- track ------------------------------------------------------------------------------------


def _bare_track(
    path: Path,
    frames: list[Image.Image],
    masks: np.ndarray,
    ids: list[int],
    frame: int,
    kind: str = "sam2",
) -> dict[int, dict[int, np.ndarray]]:
    """transformers' own propagation loop: forward from ``frame``, then backward from it."""
    _, _, model_class, processor_class = _classes(kind)
    model = model_class.from_pretrained(path).eval()
    processor = processor_class.from_pretrained(path)
    session = processor.init_video_session(video=frames, inference_device="cpu")
    processor.add_inputs_to_inference_session(
        inference_session=session,
        frame_idx=frame,
        obj_ids=ids,
        input_masks=[m.astype(np.float32) for m in masks],
    )
    height, width = frames[0].size[1], frames[0].size[0]
    found: dict[int, dict[int, np.ndarray]] = {}
    with torch.no_grad():
        model(inference_session=session, frame_idx=frame)  # the prompted frame first
    runs = [model.propagate_in_video_iterator(session)]
    if frame > 0:
        runs.append(model.propagate_in_video_iterator(session, start_frame_idx=frame, reverse=True))
    with torch.no_grad():
        for run in runs:
            for output in run:
                masks_out = processor.post_process_masks(
                    [output.pred_masks], original_sizes=[[height, width]]
                )[0][:, 0].numpy()
                found.setdefault(output.frame_idx, {}).update(
                    {
                        int(i): m
                        for i, m in zip(output.object_ids, masks_out, strict=True)
                        if m.any()
                    }
                )
    return found


def _as_dict(tracks: Tracks) -> dict[int, dict[int, np.ndarray]]:
    return {f: {i.id: i.mask for i in tracks[f]} for f in tracks}


def _same(a: dict[int, dict[int, np.ndarray]], b: dict[int, dict[int, np.ndarray]]) -> bool:
    a = {f: v for f, v in a.items() if v}
    b = {f: v for f, v in b.items() if v}
    return a.keys() == b.keys() and all(
        a[f].keys() == b[f].keys() and all(np.array_equal(a[f][i], b[f][i]) for i in a[f])
        for f in a
    )


@pytest.mark.parametrize("frame", [0, 3])
def test_track_matches_the_transformers_propagation_loop(
    segmenter: Segmenter, sam_path: Path, frame: int
):
    frames = _clip(9)  # longer than the tiny model's memory (4 frames): old memories are dropped
    start = segmenter.segment(frames[frame], boxes=[[10 + 6 * frame, 20, 40 + 6 * frame, 50]])
    second = segmenter.segment(frames[frame], boxes=[[60, 55, 110, 85]])
    masks = np.concatenate([start.masks(), second.masks()])
    given = Instances.from_masks(masks, [5, 2])
    tracks = segmenter.track(frames, given, frame=frame, progress=False)
    expected = _bare_track(sam_path, frames, masks, [5, 2], frame)
    assert _same(_as_dict(tracks), expected)
    assert set(tracks.ids) <= {5, 2} and tracks[frame].ids == (5, 2)
    assert all(len(tracks[f]) for f in tracks)  # frames without objects have no entry


def test_track_adds_objects_on_later_frames_with_their_ids(segmenter: Segmenter):
    frames = _clip(6)
    first = segmenter.segment(frames[0], boxes=[[10, 20, 40, 50]], ids=[3])
    later = segmenter.segment(frames[2], boxes=[[60, 55, 110, 85]], ids=[8])
    tracks = segmenter.track(frames, {0: first, 2: later}, progress=False)
    assert all(8 not in tracks.at(f) for f in (0, 1))
    assert 8 in tracks[2] and 3 in tracks[0]
    # on a prompted frame SAM 2 returns the prompt mask through its low-resolution mask input
    assert _iou(tracks[2][8].mask, later[8].mask) > 0.5
    assert _iou(tracks[0][3].mask, first[3].mask) > 0.5
    assert set(tracks.ids) == {3, 8}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_track_keys_follow_the_video(segmenter: Segmenter):
    frames = _clip(4)
    video = instit.Video(frames, indices=[0, 10, 20, 30], timestamps=[0, 1, 2, 3])
    given = segmenter.segment(frames[1], boxes=[[16, 20, 46, 50]])
    by_source = segmenter.track(video, given, frame=10, progress=False)
    by_sample = segmenter.track(video, given, frame=1, indexed_by="sample", progress=False)
    assert set(by_source.frame_indices) <= {0, 10, 20, 30} and 10 in by_source
    assert set(by_sample.frame_indices) <= {0, 1, 2, 3} and 1 in by_sample
    assert [by_source.at(k) for k in (0, 10, 20, 30)] == [by_sample.at(k) for k in range(4)]
    with pytest.raises(InstitValueError, match="frame 1, which the video does not have"):
        segmenter.track(video, given, frame=1, progress=False)


def test_track_a_one_frame_video_and_boxes_and_points(segmenter: Segmenter):
    frames = _clip(1)
    masks = segmenter.track(frames, segmenter.segment(frames[0], boxes=[[10, 20, 40, 50]]))
    assert masks.frame_indices == (0,) or len(masks) == 0
    boxes = Instances.from_boxes([[10, 20, 40, 50]], [4], image_size=frames[0].size)
    points = Instances.from_points([[25, 35]], [6], image_size=frames[0].size)
    for given, wanted in ((boxes, 4), (points, 6)):
        tracks = segmenter.track(_clip(3), given, progress=False)
        assert set(tracks.ids) <= {wanted}


def test_track_vanished_objects_are_absent_not_empty(segmenter: Segmenter):
    from instit.segment.segmenter import _present

    _, processor = segmenter._video_model()
    logits = torch.full((2, 1, 32, 32), -1024.0)  # SAM's "no object" score
    logits[0, 0, 4:20, 4:20] = 5.0

    output = SimpleNamespace(pred_masks=logits, object_ids=[7, 9])  # one frame's model output
    found = _present(processor, output, (WIDTH, HEIGHT))
    assert found.ids == (7,) and found.masks()[0].any()


def test_track_rejects_bad_input(segmenter: Segmenter):
    frames = _clip(2)
    given = Instances.from_boxes([[10, 20, 40, 50]], image_size=frames[0].size)
    with pytest.raises(InstitTypeError, match="cannot track"):
        segmenter.track(42, given)
    with pytest.raises(InstitValueError, match="no instances to track"):
        segmenter.track(frames, Instances.empty(frames[0].size))
    with pytest.raises(InstancesError):
        segmenter.track(frames, Instances.from_boxes([[10, 20, 400, 50]], clip=False))
    with pytest.raises(InstitValueError, match="indexed_by"):
        segmenter.track(frames, given, indexed_by="time")


# -- EdgeTAM and the SAM 3 tracker: the same parity as SAM 2 ----------------------------------


@pytest.fixture(scope="module", params=["edgetam", "sam3_tracker"])
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    kind = request.param
    path = make_tiny_segmenter(tmp_path_factory.mktemp(kind) / kind, kind=kind)
    return kind, path, Segmenter.from_pretrained(path, device="cpu")


def test_tiny_families_are_what_they_claim(family):
    kind, path, segmenter = family
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == f"{kind}_video"
    assert type(segmenter.model).__name__ == TRANSFORMERS_CLASSES[kind][0]
    model, processor = segmenter._video_model()
    assert [type(model).__name__, type(processor).__name__] == list(TRANSFORMERS_CLASSES[kind][2:])
    if kind == "edgetam":  # the RepViT backbone comes from timm, built from config
        assert type(segmenter.model.vision_encoder.backbone).__name__ == "TimmWrapperModel"


def test_other_families_segment_like_transformers_bit_for_bit(family):
    kind, path, segmenter = family
    image = _noise(16)
    boxes = [[10.0, 10.0, 60.0, 50.0], [30.0, 20.0, 110.0, 85.0]]
    expected = _bare_segment(path, image, kind, input_boxes=[boxes]).numpy()
    found = segmenter.segment(image, boxes=boxes)
    assert found.ids == (1, 2) and np.array_equal(found.masks(), expected)
    groups, labels = [[[20.0, 20.0], [30.0, 25.0]], [[80.0, 60.0], [5.0, 5.0]]], [[1, 1], [1, 0]]
    clicks = _bare_segment(path, image, kind, input_points=[groups], input_labels=[labels])
    found = segmenter.segment(image, points=groups, point_labels=labels, ids=[7, 3])
    assert found.ids == (7, 3) and np.array_equal(found.masks(), clicks.numpy())


@pytest.mark.parametrize("frame", [0, 3])
def test_other_families_track_like_the_transformers_loop(family, frame: int):
    kind, path, segmenter = family
    frames = _clip(7)  # longer than the tiny models' memory (4 frames)
    start = segmenter.segment(frames[frame], boxes=[[10 + 6 * frame, 20, 40 + 6 * frame, 50]])
    second = segmenter.segment(frames[frame], boxes=[[60, 55, 110, 85]])
    masks = np.concatenate([start.masks(), second.masks()])
    tracks = segmenter.track(
        frames, Instances.from_masks(masks, [5, 2]), frame=frame, progress=False
    )
    expected = _bare_track(path, frames, masks, [5, 2], frame, kind)
    assert _same(_as_dict(tracks), expected)
    assert tracks.frame_indices == tuple(range(7))  # tracked on every frame, not only prompted
    assert all(tracks[f].ids == (5, 2) for f in tracks)


def test_edgetam_without_timm_is_a_dependency_error(tmp_path: Path):
    path = make_tiny_segmenter(tmp_path / "edgetam", kind="edgetam")
    code = (
        "import sys; sys.modules['timm'] = None\n"
        "import instit\n"
        "try:\n"
        f"    instit.Segmenter.from_pretrained({str(path)!r}, device='cpu')\n"
        "except instit.DependencyError as exc:\n"
        "    print('DependencyError:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "DependencyError:" in out.stdout and "timm" in out.stdout
    assert "pip install 'instit[segment]'" in out.stdout


# -- detect -----------------------------------------------------------------------------------


def test_detect_matches_the_processors_post_processed_boxes(detector_path: Path):
    from transformers import AutoProcessor, GroundingDinoForObjectDetection, Owlv2ForObjectDetection

    detector = Detector.from_pretrained(detector_path, device="cpu")
    image, text = _noise(9), ["a person", "a ball"]
    processor = AutoProcessor.from_pretrained(detector_path)
    inputs = processor(images=image, text=[text], return_tensors="pt")
    if detector.kind == "grounding-dino":
        model = GroundingDinoForObjectDetection.from_pretrained(detector_path).eval()
        with torch.no_grad():
            outputs = model(**inputs)
        raw = processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=0.3,
            text_threshold=0.25,
            target_sizes=[(HEIGHT, WIDTH)],
        )[0]
    else:
        model = Owlv2ForObjectDetection.from_pretrained(detector_path).eval()
        with torch.no_grad():
            outputs = model(**inputs)
        raw = processor.post_process_grounded_object_detection(
            outputs, threshold=0.3, target_sizes=[(HEIGHT, WIDTH)], text_labels=[text]
        )[0]
    found = detector.detect(image, "a person. a ball.", box_threshold=0.3)
    order = np.argsort(-raw["scores"].numpy(), kind="stable")
    boxes = np.clip(raw["boxes"].numpy()[order], 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    assert found.kind == "box" and len(found) == int(area.sum()) >= 1
    assert np.array_equal(found.boxes(), boxes[area].astype(np.float64))
    assert found.labels == tuple(str(raw["text_labels"][i]) for i in order[area])
    assert np.array_equal(found.scores, raw["scores"].numpy()[order][area].astype(np.float64))
    assert list(found.scores) == sorted(found.scores, reverse=True)


def test_detect_thresholds_and_empty_results(gdino: Detector):
    image = _noise(10)
    everything = gdino.detect(image, "a cat", box_threshold=0.0)
    some = gdino.detect(image, ["a cat"], box_threshold=0.9)
    assert len(some) <= len(everything)
    assert all(s > 0.9 for s in some.scores)
    none = gdino.detect(image, "a cat.", box_threshold=1.0)
    assert len(none) == 0 and none.kind == "box" and none.image_size == (WIDTH, HEIGHT)
    with pytest.raises(InstitValueError, match="names nothing"):
        gdino.detect(image, " . ")
    with pytest.raises(InstitTypeError):
        gdino.detect(image, 42)
    with pytest.raises(InstitValueError, match="box_threshold"):
        gdino.detect(image, "a cat", box_threshold=2)


# -- find_instances ---------------------------------------------------------------------------


def test_find_instances_on_an_image(segmenter: Segmenter, gdino: Detector):
    image = _noise(11)
    found = find_instances(image, "a person. a ball.", segmenter=segmenter, detector=gdino)
    boxes = gdino.detect(image, "a person. a ball.")
    assert found.kind == "mask" and found.labels is not None
    assert set(found.ids) <= set(boxes.ids)
    assert found == segmenter.segment(image, boxes=boxes)
    everything = find_instances(
        image, segmenter=segmenter, points_per_side=4, pred_iou_thresh=0, min_area=1
    )
    assert everything == segmenter.segment_everything(
        image, points_per_side=4, pred_iou_thresh=0, min_area=1
    )
    with pytest.raises(InstitTypeError, match="unknown option"):
        find_instances(image, segmenter=segmenter, colour="red")
    with pytest.raises(InstitTypeError, match="videos only"):
        find_instances(image, segmenter=segmenter, every=2)


def test_find_instances_on_a_video_tracks_and_adds_new_objects(segmenter: Segmenter):
    frames = _clip(4)
    options = {"points_per_side": 4, "pred_iou_thresh": 0, "stability_score_thresh": 0}
    tracks = find_instances(frames, segmenter=segmenter, min_area=1, progress=False, **options)
    first = segmenter.segment_everything(frames[0], min_area=1, **options)
    assert isinstance(tracks, Tracks) and len(first) >= 1
    assert tracks == segmenter.track(frames, first, progress=False)
    again = find_instances(
        frames, segmenter=segmenter, min_area=1, every=2, new_iou=1.0, progress=False, **options
    )
    assert set(tracks.ids) <= set(again.ids)
    new = set(again.ids) - set(first.ids)
    assert all(i > max(first.ids) for i in new)
    assert all(i not in again.at(f) for i in new for f in (0, 1))


# -- Instances labels, scores and views -------------------------------------------------------


def _labelled() -> Instances:
    masks = np.zeros((2, 40, 60), dtype=bool)
    masks[0, 5:20, 5:30] = masks[1, 10:35, 30:55] = True
    return Instances.from_masks(masks, [3, 8]).with_labels(["a cat", "a dog"], scores=[0.9, 0.5])


def test_labels_and_scores_survive_indexing_serialising_and_supervision():
    found = _labelled()
    assert found[8].label == "a dog" and found[8].score == 0.5
    assert found.select([8]).labels == ("a dog",) and found.select([8]).scores.tolist() == [0.5]
    assert found.relabel({3: 1}).labels == ("a cat", "a dog")
    assert Instances.from_json(found.to_json()) == found
    assert Tracks.from_dict(Tracks({0: found}).to_dict())[0].labels == ("a cat", "a dog")
    detections = found.to_supervision()
    assert list(detections.data["class_name"]) == ["a cat", "a dog"]
    assert Instances.from_supervision(detections) == found
    assert found != found.with_labels(scores=[0.9, 0.6])
    assert found.with_labels(["x", "y"]).scores.tolist() == [0.9, 0.5]
    assert Instances.from_dict(Instances.from_masks(found.masks()).to_dict()).labels is None


def test_labels_and_scores_are_validated():
    found = _labelled()
    with pytest.raises(InstancesError, match="2 instances"):
        found.with_labels(["one"])
    with pytest.raises(InstitTypeError, match="not a string"):
        found.with_labels(["a", 3])
    with pytest.raises(InstancesError, match="NaN"):
        found.with_labels(scores=[0.5, float("nan")])
    with pytest.raises(InstitTypeError):
        found.with_labels(scores=["high", "low"])
    data = found.to_dict()
    del data["instances"][1]["label"]
    with pytest.raises(InstancesError, match="instance 8: has no 'label'"):
        Instances.from_dict(data)


def test_notebook_views_draw_marks():
    found = _labelled()
    png = found._repr_png_()
    assert png.startswith(b"\x89PNG")
    grey = np.asarray(found.show())
    assert grey.shape == (40, 60, 3) and (grey[0, 0] == 128).all() and (grey != 128).any()
    on_image = found.show(Image.new("RGB", (60, 40), "white"))
    assert np.asarray(on_image)[0, 0].tolist() == [255, 255, 255]
    tracks = Tracks({0: found, 5: found.select([3])})
    page = tracks._repr_html_()
    assert page.count("<img") == 2 and "frame 5: [3]" in page
    frames = [Image.new("RGB", (60, 40), "white")] * 6
    assert [im.size for im in tracks.show(frames)] == [(60, 40), (60, 40)]
    with pytest.raises(InstitValueError, match="no frame 5"):
        tracks.show(frames[:2])


# -- end to end -------------------------------------------------------------------------------


def test_find_instances_then_draw_marks_then_ask(
    segmenter: Segmenter, gdino: Detector, tmp_path: Path
):
    from instit.testing import make_tiny_checkpoint

    model = instit.InstIt.from_pretrained(
        make_tiny_checkpoint(tmp_path / "tiny", "qwen2-siglip"), device="cpu", progress=False
    )
    image = _noise(12, (200, 150))
    found = find_instances(image, "a person. a ball.", segmenter=segmenter, detector=gdino)
    assert len(found) >= 1
    marked = instit.draw_marks(image, found)
    question = f"What is [{found.ids[0]}] doing?"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = ask(model, marked, question, marks="as_is", max_new_tokens=4)
    assert isinstance(answer.text, str)
    direct = ask(model, image, question, instances=found, max_new_tokens=4)
    assert direct.text == answer.text


# -- SAM 3: words straight to masks -----------------------------------------------------------


@pytest.fixture(scope="module")
def sam3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_detector(tmp_path_factory.mktemp("sam3") / "tiny-sam3", "sam3")


@pytest.fixture(scope="module")
def sam3(sam3_path: Path) -> Detector:
    return Detector.from_pretrained(sam3_path, device="cpu")


def _bare_sam3(path: Path, image: Image.Image, phrases: list[str], threshold: float):
    """transformers' documented SAM 3 calls, one phrase at a time: processor + model +
    post_process_instance_segmentation."""
    from transformers import Sam3Model, Sam3Processor

    model = Sam3Model.from_pretrained(path).eval()
    processor = Sam3Processor.from_pretrained(path)
    found = []
    for phrase in phrases:
        inputs = processor(images=image, text=phrase, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        result = processor.post_process_instance_segmentation(
            outputs, threshold=threshold, target_sizes=[image.size[::-1]]
        )[0]
        found += [
            (float(score), phrase, mask.numpy().astype(bool))
            for score, mask in zip(result["scores"], result["masks"], strict=True)
        ]
    return found


@pytest.mark.parametrize("threshold", [0.0, 0.25])
def test_sam3_detect_matches_transformers_bit_for_bit(
    sam3: Detector, sam3_path: Path, threshold: float
):
    image = _noise(13)
    raw = _bare_sam3(sam3_path, image, ["a person", "a ball"], threshold)
    found = sam3.detect(image, "a person. a ball.", box_threshold=threshold)
    kept = sorted(
        (entry for entry in raw if entry[2].any()), key=lambda entry: -entry[0]
    )  # sorted() is stable: ties keep the phrase and query order
    assert sam3.gives_masks and found.kind == "mask" and found.image_size == (WIDTH, HEIGHT)
    assert len(found) == len(kept) >= 1 and found.ids == tuple(range(1, len(kept) + 1))
    assert np.array_equal(found.masks(), np.stack([mask for _, _, mask in kept]))
    assert found.scores.tolist() == [score for score, _, _ in kept]
    assert found.labels == tuple(phrase for _, phrase, _ in kept)
    assert set(found.labels) == {"a person", "a ball"} or threshold > 0


def test_sam3_thresholds_and_empty_results(sam3: Detector):
    image = _noise(14, (70, 130))
    everything = sam3.detect(image, "a cat", box_threshold=0.0)
    some = sam3.detect(image, ["a cat"], box_threshold=0.25)
    assert len(some) < len(everything) and all(s > 0.25 for s in some.scores)
    assert everything.masks().shape[1:] == (130, 70)
    none = sam3.detect(image, "a cat.", box_threshold=1.0)
    assert len(none) == 0 and none.kind == "mask" and none.image_size == (70, 130)
    with pytest.raises(InstitValueError, match="names nothing"):
        sam3.detect(image, " . ")
    with pytest.raises(InstitValueError, match="box_threshold"):
        sam3.detect(image, "a cat", box_threshold=-0.1)


def test_sam3_detections_with_empty_masks_are_left_out():
    from instit.segment.detector import masks_to_instances

    masks = np.zeros((3, 20, 30), dtype=bool)
    masks[0, 2:5, 2:5] = masks[2, 10:15, 10:20] = True
    found = masks_to_instances(masks, np.array([0.4, 0.9, 0.7]), ["a", "b", "c"])
    assert found.ids == (1, 2) and found.labels == ("c", "a")
    assert found.scores.tolist() == [0.7, 0.4] and found.image_size == (30, 20)
    empty = masks_to_instances(masks[1:2], np.array([0.9]), ["b"])
    assert len(empty) == 0 and empty.image_size == (30, 20)


def test_find_instances_with_sam3_needs_no_segmenter(sam3: Detector, monkeypatch):
    from instit.segment import find

    def no_default() -> Segmenter:
        raise AssertionError("find_instances loaded a segmenter for a SAM 3 detector")

    monkeypatch.setattr(find, "default_segmenter", no_default)
    image = _noise(15)
    found = find_instances(image, "a person. a ball.", detector=sam3, box_threshold=0.25)
    assert found == sam3.detect(image, "a person. a ball.", box_threshold=0.25)
    assert len(found) >= 1 and found.labels is not None
    empty = find_instances(image, "a ball", detector=sam3, box_threshold=1.0)
    assert len(empty) == 0 and empty.image_size == (WIDTH, HEIGHT)


def test_find_instances_tracks_sam3_masks_through_a_video(sam3: Detector, segmenter: Segmenter):
    frames = _clip(3)
    tracks = find_instances(
        frames, "a person", segmenter=segmenter, detector=sam3, box_threshold=0.25, progress=False
    )
    first = sam3.detect(frames[0], "a person", box_threshold=0.25)
    assert len(first) >= 1
    assert tracks == segmenter.track(frames, first, progress=False)


def test_a_checkpoint_missing_weights_is_refused_not_filled_with_noise(
    sam_path: Path, tmp_path: Path
):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(sam_path, folder)
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in sorted(weights) if k.startswith("mask_decoder."))
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"lacks 1 of the weights of Sam2Model") as error:
        Segmenter.from_pretrained(folder, device="cpu")
    assert dropped in str(error.value)
