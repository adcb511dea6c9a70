"""An exported checkpoint used the way a transformers user uses it.

``AutoProcessor`` (``apply_chat_template`` + ``__call__``), ``AutoModelForImageTextToText`` and
``pipeline("image-text-to-text")`` on the folder ``convert`` writes for the two conformance
checkpoints (``../shared/conformance``): the processor's ids must be the ids instit builds (the
reference's), and the model must run on them. Nothing here feeds instit's inputs to the export.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionImageProcessorPil,
    pipeline,
)

from conftest import require_shared
from instit.errors import CheckpointError, DependencyError
from instit.model import InstIt, convert, load_processor
from instit.model.processing import image_layout, image_token_count
from model_checkpoints import image
from reference_specs import rounding_matters

FAMILIES = ["tiny-qwen2-siglip", "tiny-vicuna-clip"]
# the sizes of issue 16 (W x H): wide, tall, square, extreme, upscaled and downscaled
SIZES = [
    (500, 300),
    (640, 480),
    (336, 336),
    (1000, 250),
    (300, 500),
    (1024, 768),
    (800, 600),
    (1280, 720),
]
QUESTION = "What is [1] doing?"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exported")
    checkpoints = require_shared("conformance", "checkpoints")
    return {name: convert(checkpoints / name, root / name, progress=False) for name in FAMILIES}


@pytest.fixture(scope="module")
def models() -> dict[str, InstIt]:
    checkpoints = require_shared("conformance", "checkpoints")
    return {
        name: InstIt.from_pretrained(
            checkpoints / name, device="cpu", dtype="float32", progress=False
        )
        for name in FAMILIES
    }


@pytest.fixture(scope="module")
def plain_models(exported: dict[str, Path]) -> dict[str, torch.nn.Module]:
    return {
        name: AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        for name, folder in exported.items()
    }


@pytest.fixture(scope="module")
def processors(exported: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per family: ``AutoProcessor.from_pretrained`` as is, and instit's ``load_processor``."""
    return {
        name: {"default": AutoProcessor.from_pretrained(folder), "pil": load_processor(folder)}
        for name, folder in exported.items()
    }


def messages(kind: str = "image", text: str = QUESTION) -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": text}]}]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_processor_gives_instits_ids_and_the_model_runs(
    processors: dict[str, dict[str, Any]],
    models: dict[str, InstIt],
    plain_models: dict[str, torch.nn.Module],
    family: str,
    size: tuple[int, int],
) -> None:
    """Regression (issue 16): the Vicuna export was one image token short at every size."""
    model, other = models[family], plain_models[family]
    picture = image(*size, seed=size[0])
    ours = model.prepare(picture, QUESTION)
    with torch.inference_mode():
        our_logits = model.module(**ours).logits[0, -1]
    vocab = our_logits.shape[-1]
    for processor in processors[family].values():
        prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
        inputs = processor(images=picture, text=prompt, return_tensors="pt")
        assert inputs["input_ids"][0].tolist() == ours["input_ids"][0].tolist()
        assert torch.equal(inputs["image_sizes"], ours["image_sizes"])
        with torch.inference_mode():
            logits = other(**inputs).logits[0, -1, :vocab]  # no token/feature mismatch error
        if isinstance(processor.image_processor, LlavaOnevisionImageProcessorPil):
            assert (inputs["pixel_values"] - ours["pixel_values"]).abs().max().item() < 1e-5
            assert (logits - our_logits).abs().max().item() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_template_is_instits_prompt(
    processors: dict[str, dict[str, Any]], models: dict[str, InstIt], family: str
) -> None:
    processor = processors[family]["default"]
    prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
    expected = models[family].prompt(QUESTION)
    if family == "tiny-vicuna-clip":
        # the one deliberate difference: "<image> \n" makes whole-prompt tokenisation produce the
        # "▁" that the reference's split tokenisation puts after the image
        assert prompt == expected.replace("<image>\n", "<image> \n")
    else:
        assert prompt == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_token_counts_follow_instit_except_where_transformers_rounds(
    processors: dict[str, dict[str, Any]], models: dict[str, InstIt], family: str
) -> None:
    """A scan of image sizes through the exported processor's own count.

    transformers rounds the unpadded grid to 7 decimals where the reference truncates: the counts
    agree wherever that makes no difference, and differ at the known sizes where it does.
    """
    processor = processors[family]["default"]
    spec = models[family].vision
    rounded = (1375, 1500) if family == "tiny-qwen2-siglip" else (328, 205)
    rng = np.random.default_rng(16)
    sizes = [tuple(int(v) for v in pair) for pair in rng.integers(1, 2500, size=(1500, 2))]
    sizes += [rounded, (1, 4000), (4000, 1), *SIZES]
    counts = processor._get_num_multimodal_tokens(image_sizes=[(h, w) for w, h in sizes])
    theirs = dict(zip(sizes, counts["num_image_tokens"], strict=True))
    for size in sizes:
        if not rounding_matters(size, image_layout(size, spec).grid_hw):
            assert theirs[size] == image_token_count(size, spec), size
    assert rounding_matters(rounded, image_layout(rounded, spec).grid_hw)
    assert theirs[rounded] != image_token_count(rounded, spec)


def test_saved_config_cannot_choose_the_pil_backend(exported: dict[str, Path]) -> None:
    """Why load_processor exists: transformers picks the backend from arguments only."""
    folder = exported["tiny-qwen2-siglip"]
    assert '"LlavaOnevisionImageProcessorPil"' in (folder / "preprocessor_config.json").read_text()
    default = AutoProcessor.from_pretrained(folder).image_processor
    assert type(default) is LlavaOnevisionImageProcessor  # torchvision is installed
    assert type(load_processor(folder).image_processor) is LlavaOnevisionImageProcessorPil


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_answers_like_instit(
    exported: dict[str, Path], models: dict[str, InstIt], family: str
) -> None:
    picture = image(640, 480, seed=3)
    expected = models[family].generate([picture], [QUESTION], max_new_tokens=8)[0]
    chat = [
        {
            "role": "user",
            "content": [{"type": "image", "image": picture}, {"type": "text", "text": QUESTION}],
        }
    ]
    for extra in ({}, {"processor": load_processor(exported[family])}):
        pipe = pipeline(
            "image-text-to-text", model=str(exported[family]), dtype=torch.float32, **extra
        )
        out = pipe(text=chat, max_new_tokens=8, return_full_text=False)
        # the reference (and instit) strip the decoded answer; the pipeline does not
        assert out[0]["generated_text"].strip() == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_model_card_snippet_runs_and_matches_instit(
    exported: dict[str, Path], models: dict[str, InstIt], family: str
) -> None:
    card = (exported[family] / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", card, re.S)
    assert snippet is not None
    picture = image(336, 336, seed=5)
    code = snippet.group(1)
    assert code.count("max_new_tokens=64") == 1
    scope: dict[str, object] = {"path": str(exported[family]), "picture": picture}
    exec(
        code.replace("max_new_tokens=64", "max_new_tokens=8"), scope
    )  # a shorter answer  # the card's own example, run as users run it
    model = models[family]
    ours = model.prepare(picture, QUESTION)
    inputs = scope["inputs"]
    assert inputs["input_ids"][0].tolist() == ours["input_ids"][0].tolist()  # type: ignore[index]
    assert (inputs["pixel_values"] - ours["pixel_values"]).abs().max().item() < 1e-5  # type: ignore[index]
    # the card loads the stored dtype (bfloat16 here): the same answer as instit in bfloat16
    stored = InstIt.from_pretrained(model.spec.path, device="cpu", dtype="bfloat16", progress=False)
    output = scope["output"]
    start = ours["input_ids"].shape[1]
    text = model.tokenizer.decode(output[0, start:], skip_special_tokens=True).strip()  # type: ignore[index]
    assert text == stored.generate([picture], [QUESTION], max_new_tokens=8)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_video_through_the_exported_processor(
    processors: dict[str, dict[str, Any]], models: dict[str, InstIt], family: str
) -> None:
    """Frame geometry is the reference's; transformers adds its one newline token per video."""
    model = models[family]
    frames = np.stack([np.asarray(image(640, 360, seed=s)) for s in range(3)])
    processor = processors[family]["default"]
    prompt = processor.apply_chat_template(messages("video"), add_generation_prompt=True)
    inputs = processor(videos=[frames], text=prompt, return_tensors="pt")
    ours = model.prepare(list(frames), QUESTION)
    per_frame = model.vision.video_side**2
    assert (inputs["input_ids"][0] == processor.video_token_id).sum().item() == 3 * per_frame + 1
    theirs, exact = inputs["pixel_values_videos"], ours["pixel_values_videos"]
    assert theirs.shape == exact.shape
    # torchvision's bicubic resampler: a few levels, not another crop (which differs by ~1)
    assert (theirs - exact).abs().max().item() < 0.1


def test_load_processor_errors(
    exported: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = require_shared("conformance", "checkpoints", "tiny-qwen2-siglip")
    with pytest.raises(CheckpointError, match=r"no processor_config\.json.*instit convert"):
        load_processor(original)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        load_processor(tmp_path / "file")
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(DependencyError, match=r"instit\[processor\]"):
        load_processor(exported["tiny-qwen2-siglip"])
