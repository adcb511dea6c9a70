"""The conformance cases and the released checkpoints' vision settings, shared by the tests.

``CHECKPOINTS`` x ``CASES`` are the folders under ``../shared/conformance/cases`` (a test checks
them against each checkpoint's ``manifest.json``, so a new case cannot be ignored). The compact
golden set vendored in ``tests/fixtures/conformance`` (see its PROVENANCE.md) holds both tiny
checkpoints, :func:`compact_case` of every case and the media of ``VENDORED_MEDIA_CASES``, so a
clone without ``../shared`` still runs a conformance test of both families. ``QWEN_7B`` and
``VICUNA_7B`` are the preprocessing settings of the two released Inst-It checkpoints (the tiny
Vicuna conformance checkpoint uses the same four pinpoints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instit.model.processing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, VisionSpec

CHECKPOINTS = ("tiny-qwen2-siglip", "tiny-vicuna-clip")
CASES = (
    "image_640x480",
    "image_300x900",
    "image_1280x720",
    "image_1500x1100",
    "video_6f_640x360",
    "video_8f_384x384",
)
VENDORED = Path(__file__).resolve().parent / "fixtures" / "conformance"
# cases whose media are vendored too (the media are the same for both checkpoints)
VENDORED_MEDIA_CASES = ("image_640x480", "image_300x900", "video_6f_640x360")
FEATURE_ROWS = 8  # image-feature rows kept, evenly spaced over the visual span
PIXEL_SAMPLES = 256  # pixel values kept, evenly spaced over the flattened tensor

# golden arrays copied unchanged from case.npz
_KEPT = (
    "prompt",
    "input_ids",
    "image_sizes",
    "modality",
    "num_visual_tokens",
    "visual_start",
    "expanded_seq_len",
    "logits_last",
    "generated_ids",
    "generate_step_logits",
)


def spaced(count: int, total: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(total)``, first and last included."""
    return np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(np.int64))


def checksums(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Shape, float64 mean and float64 mean absolute value of an array."""
    wide = values.astype(np.float64)
    return {
        f"{name}_shape": np.array(values.shape, dtype=np.int64),
        f"{name}_mean": np.array(wide.mean()),
        f"{name}_abs_mean": np.array(np.abs(wide).mean()),
    }


def compact_case(folder: Path) -> dict[str, np.ndarray]:
    """The compact golden arrays of one full case folder of ``../shared/conformance/cases``.

    ``case.npz``'s prompt, ids, token counts, last-position logits, greedy ids and their step
    logits as they are; the image features and the pixel tensor as :func:`checksums` plus whole
    feature rows at ``FEATURE_ROWS`` positions and ``PIXEL_SAMPLES`` pixel values.
    """
    with np.load(folder / "case.npz") as data:
        golden = {key: data[key] for key in _KEPT}
        features = data["image_features"]
    with np.load(folder / "pixel_values.npz") as data:
        pixels = data["pixel_values"]
    rows = spaced(FEATURE_ROWS, features.shape[0])
    at = spaced(PIXEL_SAMPLES, pixels.size)
    return {
        **golden,
        **checksums("features", features),
        "features_rows_at": rows,
        "features_rows": features[rows],
        **checksums("pixels", pixels),
        "pixels_sample_at": at,
        "pixels_samples": pixels.reshape(-1)[at],
    }


def load_compact(path: Path) -> dict[str, np.ndarray]:
    """A ``golden.npz`` written by ``tests/fixtures/make_conformance_subset.py``."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


QWEN_7B = VisionSpec(  # Inst-It Qwen2-7B: SigLIP-so400m-384, anyres_max_9 over 6x6 pinpoints
    tower="siglip",
    image_size=384,
    patch_size=14,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    image_aspect_ratio="anyres_max_9",
    grid_pinpoints=tuple((w * 384, h * 384) for w in range(1, 7) for h in range(1, 7)),
)
VICUNA_7B = VisionSpec(  # Inst-It Vicuna-7B: CLIP-336, anyres over its four pinpoints
    tower="clip",
    image_size=336,
    patch_size=14,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
    image_aspect_ratio="anyres",
    grid_pinpoints=((336, 336), (336, 672), (672, 336), (672, 672)),
)


def rounding_matters(size_wh: tuple[int, int], grid_hw: tuple[int, int]) -> bool:
    """Whether transformers' unpad ``int(round(x, 7))`` differs from the reference's ``int(x)``."""
    width, height = size_wh
    rows, cols = grid_hw
    value = height * (cols / width) if width / height > cols / rows else width * (rows / height)
    return int(value) != int(round(value, 7))
