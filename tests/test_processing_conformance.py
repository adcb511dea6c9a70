"""Prompts, token ids, pixel values and visual token counts against the reference's golden outputs.

Every public conformance case of both tiny checkpoints (``../shared/conformance``, produced by the
Inst-It authors' LLaVA-NeXT fork) must give the identical prompt string and text token ids, pixel
values within 1e-5 and the same visual token count; the unpad arithmetic must follow the
reference (truncation) where transformers' own arithmetic (rounding) does not.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instit.model.processing import (
    VisionSpec,
    image_layout,
    image_token_count,
    process_frames,
    process_image,
    unpadded_grid,
    video_token_count,
)
from instit.prompting import (
    IMAGE_TOKEN_INDEX,
    build_prompt,
    expanded_length,
    template_for,
    tokenize_prompt,
)
from reference_specs import CASES, CHECKPOINTS, QWEN_7B, VICUNA_7B, rounding_matters

ALL = [(checkpoint, case) for checkpoint in CHECKPOINTS for case in CASES]
IMAGES = [(checkpoint, case) for checkpoint, case in ALL if case.startswith("image_")]
# the reference's prompt ends with the open assistant turn of its template
OPEN_ASSISTANT = {"qwen_1_5": "<|im_end|>\n<|im_start|>assistant\n", "vicuna_v1": " ASSISTANT:"}


@cache
def checkpoint_config(checkpoint_dir: str) -> dict:
    return json.loads((Path(checkpoint_dir) / "config.json").read_text())


@cache
def vision_spec(checkpoint_dir: str) -> VisionSpec:
    config = checkpoint_config(checkpoint_dir)
    tower = Path(checkpoint_dir) / config["mm_vision_tower"]
    return VisionSpec.from_llava_config(
        config,
        json.loads((tower / "config.json").read_text()),
        preprocessor_config=json.loads((tower / "preprocessor_config.json").read_text()),
    )


@cache
def tokenizer(checkpoint_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint_dir)


class Case:
    """One golden case: its files, arrays and summary."""

    def __init__(self, conformance_dir: Path, checkpoint: str, name: str) -> None:
        self.checkpoint_dir = str(conformance_dir / "checkpoints" / checkpoint)
        self.dir = conformance_dir / "cases" / checkpoint / name
        self.meta = json.loads((self.dir / "meta.json").read_text())
        with np.load(self.dir / "case.npz") as arrays:
            self.arrays = {key: arrays[key] for key in arrays.files}
        self.spec = vision_spec(self.checkpoint_dir)
        self.template = template_for(checkpoint_config(self.checkpoint_dir))
        self.breakdown = json.loads((self.dir.parent / "manifest.json").read_text())
        self.breakdown = next(c for c in self.breakdown["cases"] if c["case"] == name)

    @property
    def is_video(self) -> bool:
        return str(self.arrays["modality"]) == "video"

    def image(self) -> Image.Image:
        with Image.open(self.dir / "image.png") as file:
            return file.convert("RGB")

    def frames(self) -> list[Image.Image]:
        frames = []
        for path in sorted(self.dir.glob("frame_*.png")):
            with Image.open(path) as file:
                frames.append(file.convert("RGB"))
        return frames

    def golden_pixels(self) -> np.ndarray:
        with np.load(self.dir / "pixel_values.npz") as arrays:
            return arrays["pixel_values"]


@pytest.fixture(params=ALL, ids=[f"{c}-{n}" for c, n in ALL])
def case(request, conformance_dir: Path) -> Case:
    return Case(conformance_dir, *request.param)


@pytest.fixture(params=IMAGES, ids=[f"{c}-{n}" for c, n in IMAGES])
def image_case(request, conformance_dir: Path) -> Case:
    return Case(conformance_dir, *request.param)


def test_prompt_string_is_the_references(case: Case, reference_dir: Path):
    golden = str(case.arrays["prompt"])
    assert golden == case.meta["prompt"]
    start = golden.index("<image>\n") + len("<image>\n")
    question = golden[start : golden.rindex(OPEN_ASSISTANT[case.template])]
    bench = json.loads((reference_dir / "bench_prompts.json").read_text())
    assert question.startswith(bench[case.meta["prompt_format"]]["pre_prompt"])
    assert build_prompt(question, case.template) == golden


def test_token_ids_are_the_references(case: Case):
    ids = tokenize_prompt(str(case.arrays["prompt"]), tokenizer(case.checkpoint_dir))
    assert ids == case.arrays["input_ids"].tolist()
    assert ids.count(IMAGE_TOKEN_INDEX) == 1


def test_pixel_values_match(case: Case):
    golden = case.golden_pixels()
    if case.is_video:
        pixels = process_frames(case.frames(), case.spec)
    else:
        image = case.image()
        pixels, size = process_image(image, case.spec)
        assert [list(size)] == case.arrays["image_sizes"].tolist()  # (W, H) like the reference
        pixels = pixels[None]
    assert tuple(pixels.shape) == golden.shape
    assert str(pixels.dtype) == "torch.float32"
    assert float(np.abs(pixels.numpy() - golden).max()) <= 1e-5


def test_visual_token_count_matches(case: Case):
    if case.is_video:
        count = video_token_count(len(case.frames()), case.spec)
    else:
        count = image_token_count(case.image().size, case.spec)
    assert count == int(case.arrays["num_visual_tokens"])
    assert expanded_length(case.arrays["input_ids"].tolist(), count) == int(
        case.arrays["expanded_seq_len"]
    )


def test_image_layout_matches_the_reference_breakdown(image_case: Case):
    case = image_case
    expected = case.breakdown["token_breakdown"]
    layout = image_layout(tuple(case.breakdown["media_size_wh"]), case.spec)
    assert list(layout.best_resolution_wh) == expected["best_resolution_wh"]
    assert list(layout.tiles_wh) == expected["grid_wh_patches"]
    assert list(layout.grid_hw) == expected["unpad_in_hw"]
    assert list(layout.unpadded_hw) == expected["grid_hw_after_unpad"]
    assert list(layout.final_hw) == expected["grid_hw_final"]
    assert layout.newline_tokens == expected["newline_tokens"]
    assert layout.base_tokens == expected["base_tokens"]
    assert layout.num_views == expected["num_patches_incl_base"]
    assert json.loads(json.dumps(layout.to_dict()))["num_tokens"] == layout.num_tokens


def test_vision_spec_from_checkpoint_configs(conformance_dir: Path):
    qwen = vision_spec(str(conformance_dir / "checkpoints" / "tiny-qwen2-siglip"))
    vicuna = vision_spec(str(conformance_dir / "checkpoints" / "tiny-vicuna-clip"))
    assert qwen == QWEN_7B
    assert vicuna == VICUNA_7B
    assert (qwen.patches_per_side, qwen.video_side) == (27, 14)
    assert (vicuna.patches_per_side, vicuna.video_side) == (24, 12)


def test_vision_spec_without_tower_files_reads_the_tower_name():
    config = {
        "mm_vision_tower": "google/siglip-so400m-patch14-384",
        "image_aspect_ratio": "anyres_max_9",
        "image_grid_pinpoints": "(1x1),...,(6x6)",
        "mm_patch_merge_type": "spatial_unpad",
    }
    assert VisionSpec.from_llava_config(config) == QWEN_7B
    clip = VisionSpec.from_llava_config(
        {
            "mm_vision_tower": "openai/clip-vit-large-patch14-336",
            "image_aspect_ratio": "anyres",
            "image_grid_pinpoints": "[[336, 336], [336, 672], [672, 336], [672, 672]]",
            "mm_patch_merge_type": "spatial_unpad",
        }
    )
    assert clip == VICUNA_7B


# -- unpad arithmetic: truncation, like the reference ----------------------------------------------


def test_unpad_truncates_qwen_1375x1500():
    # canvas 1536x1536 -> 4x4 tiles -> 108x108 features; padding is left and right:
    # 1375 * (108 / 1500) is 98.99999999999999 in float64 -> int() keeps 98 columns,
    # padding (108 - 98) // 2 = 5 on each side -> columns 5..103.
    layout = image_layout((1375, 1500), QWEN_7B)
    assert layout.grid_hw == (108, 108)
    assert (layout.rows, layout.cols) == (slice(0, 108), slice(5, 103))
    assert layout.unpadded_hw == (108, 98)
    # anyres_max_9: sqrt(108 * 98 / (9 * 27**2)) = 1.2700 > 1.1 -> (108 // t, 98 // t) = (85, 77)
    assert layout.resized_hw == (85, 77)
    assert layout.num_tokens == 27 * 27 + 85 * (77 + 1) == 7359


def test_unpad_truncates_vicuna_328x205():
    # canvas 336x336 -> 24x24 features; 205 * (24 / 328) is 14.999999999999998 -> 14 rows,
    # padding (24 - 14) // 2 = 5 -> rows 5..19; tokens 576 + 14 * (24 + 1)
    layout = image_layout((328, 205), VICUNA_7B)
    assert (layout.rows, layout.cols) == (slice(5, 19), slice(0, 24))
    assert layout.num_tokens == 24 * 24 + 14 * 25 == 926


def test_odd_padding_keeps_one_more_row():
    # 1280x720 on a 48x48 grid: int(720 * 48 / 1280) = 27 rows, padding (48 - 27) // 2 = 10,
    # so rows 10..38 are kept: 28 rows, one more than 27 (the reference's behaviour)
    assert unpadded_grid((1280, 720), (48, 48)) == (slice(10, 38), slice(0, 48))


def _transformers_unpadded_hw(size_wh: tuple[int, int], grid_hw: tuple[int, int]):
    import torch
    from transformers.models.llava_next.modeling_llava_next import unpad_image

    width, height = size_wh
    return tuple(unpad_image(torch.empty(1, *grid_hw), (height, width)).shape[1:])


@pytest.mark.parametrize("spec", [QWEN_7B, VICUNA_7B], ids=["qwen", "vicuna"])
def test_unpad_equals_transformers_except_where_its_rounding_differs(spec: VisionSpec):
    rng = np.random.default_rng(0)
    sizes = [tuple(int(v) for v in pair) for pair in rng.integers(1, 2500, size=(1500, 2))]
    sizes += [(1375, 1500), (328, 205), (369, 820), (1408, 792), (110, 176), (1, 4000), (4000, 1)]
    differing = 0
    for size in sizes:
        grid = image_layout(size, spec).grid_hw
        rows, cols = unpadded_grid(size, grid)
        ours = (rows.stop - rows.start, cols.stop - cols.start)
        theirs = _transformers_unpadded_hw(size, grid)
        if rounding_matters(size, grid):
            differing += 1
            assert ours != theirs, size
        else:
            assert ours == theirs, size
    assert differing >= 2  # the named sizes above are among them
