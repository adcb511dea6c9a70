"""Preprocessing at the edges: extreme aspect ratios, tiny and huge images, non-RGB inputs, errors.

Shapes and counts are checked against the reference's feature packing (``llava_arch.py``: view,
permute, unpad slice, ``anyres_max`` bilinear resize, newline column) run on real tensors, so the
arithmetic in ``image_layout`` must agree with what the tensor operations actually produce, even
where the kept grid is one feature wide or empty.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from instit.errors import CheckpointError, InstitTypeError, MediaError
from instit.media import load_image
from instit.model.processing import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    VisionSpec,
    anyres_max_patches,
    image_layout,
    image_token_count,
    process_frames,
    process_image,
    tower_mean_std,
    video_token_count,
)
from reference_specs import QWEN_7B, VICUNA_7B

SPECS = pytest.mark.parametrize("spec", [QWEN_7B, VICUNA_7B], ids=["qwen", "vicuna"])
SIZES = [(1, 4000), (4000, 1), (1, 1), (10, 10), (2, 3), (8000, 6000)]


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def reference_packing(size_wh: tuple[int, int], spec: VisionSpec, tiles_wh: tuple[int, int]):
    """The reference's spatial_unpad packing run on a tensor of feature ids.

    Returns the padded-canvas grid ``[1, rows, cols]``, the unpadded grid and the token count.
    """
    side = spec.patches_per_side
    width, height = size_wh
    across, down = tiles_wh
    ids = torch.arange(across * down * side * side, dtype=torch.float32)
    full = ids.view(down, across, side, side, 1).permute(4, 0, 2, 1, 3).flatten(1, 2).flatten(2, 3)
    rows, cols = full.shape[1:]
    if width / height > cols / rows:
        new = int(height * (cols / width))
        pad = (rows - new) // 2
        grid = full[:, pad : rows - pad, :]
    else:
        new = int(width * (rows / height))
        pad = (cols - new) // 2
        grid = full[:, :, pad : cols - pad]
    unpadded = grid
    if spec.max_tiles is not None:
        _, h, w = grid.shape
        times = math.sqrt(h * w / (spec.max_tiles * side**2))
        if times > 1.1:
            size = [int(h // times), int(w // times)]
            grid = torch.nn.functional.interpolate(grid[None], size, mode="bilinear")[0]
    newline = torch.full((1, grid.shape[1], 1), -1.0)
    packed = torch.cat((grid, newline), dim=-1).flatten(1, 2).transpose(0, 1)
    return full, unpadded, side * side + packed.shape[0]


@SPECS
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_extreme_sizes_give_reference_shapes_and_counts(spec: VisionSpec, size):
    image = noise_image(*size)
    pixels, size_wh = process_image(image, spec)
    layout = image_layout(size_wh, spec)
    side = spec.image_size
    assert size_wh == size
    across, down = layout.tiles_wh
    assert (
        tuple(pixels.shape)
        == (1 + across * down, 3, side, side)
        == (layout.num_views, 3, side, side)
    )
    assert torch.isfinite(pixels).all()
    full, unpadded, tokens = reference_packing(size_wh, spec, layout.tiles_wh)
    assert tuple(full.shape[1:]) == layout.grid_hw
    assert tuple(unpadded.shape[1:]) == layout.unpadded_hw
    # the rows/cols slices select exactly the features the reference keeps
    assert torch.equal(full[:, layout.rows, layout.cols], unpadded)
    assert tokens == layout.num_tokens == image_token_count(size, spec)


def test_extreme_aspect_keeps_a_thin_strip():
    # Qwen 4000x1: canvas 384x384, int(1 * 27 / 4000) = 0 rows, padding 13 -> row 13 alone
    assert image_layout((4000, 1), QWEN_7B).unpadded_hw == (1, 27)
    # Vicuna 4000x1: padding 12 on both sides of 24 rows -> nothing but the base view is left
    layout = image_layout((4000, 1), VICUNA_7B)
    assert layout.unpadded_hw == (0, 24)
    assert layout.num_tokens == 24 * 24


def test_huge_image_is_downscaled_by_anyres_max():
    layout = image_layout((8000, 6000), QWEN_7B)
    assert layout.best_resolution_wh == (2304, 1920)
    assert layout.resized_hw is not None
    rows, cols = layout.final_hw
    assert rows * cols <= 9 * 27 * 27 * 1.1**2  # within anyres_max_9's budget


@SPECS
def test_tiny_image_fills_the_canvas(spec: VisionSpec):
    pixels, _ = process_image(Image.new("RGB", (1, 1), (200, 10, 30)), spec)
    # a 1x1 image is stretched over the whole canvas: no black padding anywhere
    first = pixels[1, :, 0, 0]
    assert torch.allclose(pixels[1], first[:, None, None].expand_as(pixels[1]), atol=1e-6)
    assert torch.allclose(pixels[0], pixels[1])


def test_rgba_goes_through_load_image_and_is_not_modified():
    rgba = np.random.default_rng(1).integers(0, 256, (50, 80, 4), dtype=np.uint8)
    image = Image.fromarray(rgba, "RGBA")
    before = image.tobytes()
    pixels, size = process_image(image, QWEN_7B)
    expected, _ = process_image(load_image(image), QWEN_7B)
    assert torch.equal(pixels, expected)
    assert size == (80, 50)
    assert image.mode == "RGBA"
    assert image.tobytes() == before


@SPECS
def test_grayscale_equals_its_rgb_copy(spec: VisionSpec):
    grey = Image.fromarray(np.random.default_rng(2).integers(0, 256, (60, 90), dtype=np.uint8))
    pixels, _ = process_image(grey, spec)
    expected, _ = process_image(grey.convert("RGB"), spec)
    assert torch.equal(pixels, expected)
    frames = process_frames([grey, grey.convert("RGB")], spec)
    assert torch.equal(frames[0], frames[1])


@SPECS
def test_frames_of_any_size(spec: VisionSpec):
    frames = [noise_image(1, 1), noise_image(10, 300, 1), noise_image(640, 360, 2)]
    pixels = process_frames(frames, spec)
    assert tuple(pixels.shape) == (3, 3, spec.image_size, spec.image_size)
    assert video_token_count(len(frames), spec) == 3 * math.ceil(spec.patches_per_side / 2) ** 2


def test_clip_frames_keep_the_centre():
    # a wide frame with a bright centre column: CLIP resizes the short side and crops the centre
    array = np.zeros((100, 300, 3), dtype=np.uint8)
    array[:, 120:180] = 255  # resized to 1008x336 this is columns 403-605, crop 336-672
    pixels = process_frames([Image.fromarray(array)], VICUNA_7B)[0]
    white = torch.tensor(
        [(1 - m) / s for m, s in zip(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, strict=True)]
    )
    assert torch.allclose(pixels[:, 168, 168], white, atol=1e-5)
    assert pixels[0, 168, 40] < 0 and pixels[0, 168, 300] < 0  # dark either side, inside the crop


@SPECS
def test_pad_and_square_modes(spec: VisionSpec):
    side = spec.image_size
    wide = noise_image(300, 100)
    for mode in ("pad", "square"):
        other = VisionSpec(**{**spec.to_dict(), "image_aspect_ratio": mode, "grid_pinpoints": ()})
        pixels, size = process_image(wide, other)
        assert tuple(pixels.shape) == (1, 3, side, side)
        assert size == (300, 100)
        assert image_token_count(size, other) == spec.patches_per_side**2
    padded = VisionSpec(**{**spec.to_dict(), "image_aspect_ratio": "pad", "grid_pinpoints": ()})
    top_left = process_image(wide, padded)[0][0, :, 0, 0]
    fill = torch.tensor(
        [(int(m * 255) / 255 - m) / s for m, s in zip(spec.mean, spec.std, strict=True)],
        dtype=torch.float32,
    )
    assert torch.allclose(top_left, fill, atol=1e-5)  # the mean colour fills the padding


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(InstitTypeError, match="load_image"):
        process_image(np.zeros((10, 10, 3), dtype=np.uint8), QWEN_7B)  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="at least one frame"):
        process_frames([], QWEN_7B)
    with pytest.raises(InstitTypeError, match="list of PIL images"):
        process_frames(noise_image(5, 5), QWEN_7B)  # type: ignore[arg-type]
    with pytest.raises(InstitTypeError, match=r"frames\[1\]"):
        process_frames([noise_image(5, 5), "frame.png"], QWEN_7B)  # type: ignore[list-item]
    with pytest.raises(MediaError):
        video_token_count(0, QWEN_7B)
    with pytest.raises(InstitTypeError):
        video_token_count(2.0, QWEN_7B)  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="empty"):
        image_token_count((0, 5), QWEN_7B)
    with pytest.raises(InstitTypeError):
        image_token_count("640x480", QWEN_7B)  # type: ignore[arg-type]


def test_bad_vision_settings_raise_checkpoint_errors():
    base = QWEN_7B.to_dict()
    for change in (
        {"tower": "eva"},
        {"image_aspect_ratio": "highres"},
        {"grid_pinpoints": ()},
        {"grid_pinpoints": ((384, 500),)},
        {"patch_merge_type": "maxpool2x2"},
        {"std": (0.5, 0.0, 0.5)},
        {"patch_size": 0},
    ):
        with pytest.raises(CheckpointError, match=r"config\.json"):
            VisionSpec(**{**base, **change})
    with pytest.raises(CheckpointError, match="mm_vision_tower"):
        VisionSpec.from_llava_config({"model_type": "qwen2"})
    with pytest.raises(CheckpointError, match="neither CLIP nor SigLIP"):
        VisionSpec.from_llava_config({"mm_vision_tower": "eva02-large"})
    with pytest.raises(CheckpointError, match="tower_config"):
        VisionSpec.from_llava_config({"mm_vision_tower": "my-siglip"})
    with pytest.raises(CheckpointError, match="image_grid_pinpoints"):
        VisionSpec.from_llava_config(
            {
                "mm_vision_tower": "google/siglip-so400m-patch14-384",
                "image_aspect_ratio": "anyres",
                "image_grid_pinpoints": "not pinpoints",
            }
        )


# -- video frames against transformers' PIL-backend processors -----------------------------------


def _pil_processors() -> dict[str, tuple[object, VisionSpec]]:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    clip = CLIPImageProcessorPil(
        size={"shortest_edge": VICUNA_7B.image_size},
        crop_size={"height": VICUNA_7B.image_size, "width": VICUNA_7B.image_size},
    )
    siglip = SiglipImageProcessorPil(
        size={"height": QWEN_7B.image_size, "width": QWEN_7B.image_size},
        image_mean=list(QWEN_7B.mean),
        image_std=list(QWEN_7B.std),
    )
    return {"clip": (clip, VICUNA_7B), "siglip": (siglip, QWEN_7B)}


def test_clip_frame_of_854x480_is_resized_to_597_then_cropped():
    # shortest edge 336, long edge int(336 * 854 / 480) = int(597.8) = 597, as the reference's
    # get_resize_output_image_size truncates; rounding (598) shifts the crop by one column
    frame = noise_image(854, 480, seed=3)
    expected = frame.resize((597, 336), Image.Resampling.BICUBIC).crop((130, 0, 466, 336))
    rounded = frame.resize((598, 336), Image.Resampling.BICUBIC).crop((131, 0, 467, 336))
    ours = process_frames([frame], VICUNA_7B)[0].numpy()
    lut = (np.arange(256) / 255 - np.array(OPENAI_CLIP_MEAN)[:, None]) / np.array(OPENAI_CLIP_STD)[
        :, None
    ]

    def normalised(view: Image.Image) -> np.ndarray:
        pixels = np.asarray(view)
        return np.stack([lut[c][pixels[:, :, c]] for c in range(3)])

    np.testing.assert_allclose(ours, normalised(expected), atol=1e-5)
    assert np.abs(ours - normalised(rounded)).max() > 0.1
    clip, _ = _pil_processors()["clip"]
    reference = clip(images=[frame], return_tensors="np")["pixel_values"][0]  # type: ignore[operator]
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("tower", ["clip", "siglip"])
def test_video_frames_equal_transformers_pil_processors_over_many_sizes(tower: str):
    processor, spec = _pil_processors()[tower]
    rng = np.random.default_rng(7)
    sizes = [(854, 480), (480, 854), (1, 1), (3, 200), (200, 3), (335, 336), (337, 336)]
    sizes += [(1280, 720), (640, 360), (1920, 1080), (383, 385), (2, 3)]
    sizes += [tuple(int(v) for v in pair) for pair in rng.integers(1, 1000, size=(28, 2))]
    for index, (width, height) in enumerate(sizes):
        frame = noise_image(width, height, seed=index)
        reference = processor(images=[frame], return_tensors="np")["pixel_values"][0]  # type: ignore[operator]
        ours = process_frames([frame], spec)[0].numpy()
        assert ours.shape == reference.shape, (width, height)
        np.testing.assert_array_equal(ours, reference, err_msg=f"{tower} {width}x{height}")


def test_anyres_max_is_read_in_one_place():
    """``VisionSpec.max_tiles`` and the model's downscale read ``anyres_max_N`` the same way."""
    assert anyres_max_patches("anyres_max_9") == 9
    assert anyres_max_patches("anyres") is None
    assert anyres_max_patches("anyres_max_9x") is None  # the whole value, not a prefix
    spec = dataclasses.replace(QWEN_7B, image_aspect_ratio="anyres_max_4")
    assert spec.max_tiles == 4 and spec.anyres


def test_tower_mean_std_one_rule_for_both_layouts():
    """SigLIP ignores the original tower folder's preprocessor file (as the reference does);
    CLIP takes its statistics from it; an exported checkpoint's file counts for both."""
    stats = {"image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6]}
    assert tower_mean_std("siglip") == (SIGLIP_MEAN, SIGLIP_STD)
    assert tower_mean_std("clip") == (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    assert tower_mean_std("siglip", stats) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    config = {
        "image_aspect_ratio": "anyres",
        "image_grid_pinpoints": "(1x1),...,(2x2)",
        "mm_patch_merge_type": "spatial_unpad",
    }
    siglip = VisionSpec.from_llava_config(
        {**config, "mm_vision_tower": "google/siglip-so400m-patch14-384"},
        preprocessor_config=stats,
    )
    assert (siglip.mean, siglip.std) == (SIGLIP_MEAN, SIGLIP_STD)
    clip = VisionSpec.from_llava_config(
        {**config, "mm_vision_tower": "openai/clip-vit-large-patch14-336"},
        preprocessor_config=stats,
    )
    assert (clip.mean, clip.std) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
