"""The conformance cases and the released checkpoints' vision settings, shared by the tests.

``CHECKPOINTS`` x ``CASES`` are the folders under ``../shared/conformance/cases``; ``QWEN_7B`` and
``VICUNA_7B`` are the preprocessing settings of the two released Inst-It checkpoints (the tiny
Vicuna conformance checkpoint uses the same four pinpoints).
"""

from __future__ import annotations

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
