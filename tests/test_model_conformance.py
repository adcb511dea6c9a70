"""The loaded model reproduces the reference implementation's golden outputs (fp32, CPU).

For every conformance case of both tiny checkpoints (original LLaVA-NeXT layout):

* the visual features spliced into the sequence (within 1e-4),
* logits at the last position, at every text position before and after the media and at the
  sampled visual positions (within 1e-3),
* the 8 greedy tokens (exact),

first with the reference's own ``input_ids`` and pixel tensor fed to ``model.module`` (so only
loading and modelling are under test), then end to end from the case's PNG files through
``InstIt.prepare``, ``InstIt.encode_media`` and ``InstIt.generate`` (preprocessing, prompt and
tokenisation included): token ids, pixel and feature checksums, the generated ids and the
logits of every generation step, not only the decoded text.

The end-to-end test runs twice: on the full set in ``../shared`` (every case; CI fails when it
is missing) and on the compact set vendored in ``tests/fixtures/conformance`` (both families,
the cases whose media are vendored), which never skips, so a plain clone runs it too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_shared
from instit.model.core import InstIt
from instit.prompting.templates import IMAGE_TOKEN_INDEX
from reference_specs import (
    CASES,
    CHECKPOINTS,
    VENDORED,
    VENDORED_MEDIA_CASES,
    compact_case,
    load_compact,
)

FEATURE_TOL = 1e-4
LOGIT_TOL = 1e-3
PIXEL_TOL = 1e-5

_MODELS: dict[Path, InstIt] = {}


def _model(root: Path, checkpoint: str) -> InstIt:
    """One model per checkpoint folder for the whole module (loading is the slow part)."""
    folder = root / "checkpoints" / checkpoint
    if folder not in _MODELS:
        _MODELS[folder] = InstIt.from_pretrained(
            folder, device="cpu", dtype="float32", progress=False
        )
    return _MODELS[folder]


def _case(root: Path, checkpoint: str, case: str) -> tuple[Path, dict[str, np.ndarray]]:
    folder = root / "cases" / checkpoint / case
    with np.load(folder / "case.npz") as data:
        arrays = {key: data[key] for key in data.files}
    return folder, arrays


def _reference_inputs(model: InstIt, folder: Path, golden: dict[str, np.ndarray]) -> dict:
    """The reference's ids (placeholder expanded) and exact pixel tensor, for ``model.module``."""
    with np.load(folder / "pixel_values.npz") as data:
        pixels = torch.from_numpy(data["pixel_values"])
    ids = golden["input_ids"].tolist()
    at = ids.index(IMAGE_TOKEN_INDEX)
    count = int(golden["num_visual_tokens"])
    image = str(golden["modality"]) == "image"
    placeholder = model.config.image_token_id if image else model.config.video_token_id
    expanded = ids[:at] + [placeholder] * count + ids[at + 1 :]
    assert len(expanded) == int(golden["expanded_seq_len"])
    inputs = {"input_ids": torch.tensor([expanded])}
    if image:
        width, height = golden["image_sizes"][0].tolist()
        inputs["pixel_values"] = pixels
        inputs["image_sizes"] = torch.tensor([[height, width]])
    else:
        inputs["pixel_values_videos"] = pixels[None]
    return inputs


def _media(folder: Path) -> Image.Image | list[Image.Image]:
    frames = sorted(folder.glob("frame_*.png"))
    if frames:
        return [Image.open(f).convert("RGB") for f in frames]
    return Image.open(folder / "image.png").convert("RGB")


def _question(prompt: str, template: str) -> str:
    """The user question inside a reference prompt (``<image>\\n`` + question)."""
    body = prompt.split("<image>\n", 1)[1]
    if template == "qwen_1_5":
        return body.rsplit("<|im_end|>\n<|im_start|>assistant\n", 1)[0]
    return body.rsplit(" ASSISTANT:", 1)[0]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_features_and_logits_match_reference(
    conformance_dir: Path, checkpoint: str, case: str
) -> None:
    model = _model(conformance_dir, checkpoint)
    folder, golden = _case(conformance_dir, checkpoint, case)
    inputs = _reference_inputs(model, folder, golden)
    inner = model.module.model
    with torch.inference_mode():
        if "pixel_values" in inputs:
            out = inner.get_image_features(inputs["pixel_values"][0], inputs["image_sizes"])
            features = out.pooler_output[0]
        else:
            features = inner.get_video_features(inputs["pixel_values_videos"]).pooler_output[0]
        logits = model.module(**inputs).logits[0]
    expected = torch.from_numpy(golden["image_features"])
    assert features.shape == expected.shape
    assert (features - expected).abs().max().item() <= FEATURE_TOL
    assert logits.shape[-1] == golden["logits_last"].shape[-1]  # reference's vocabulary width
    checks = {
        "last": (logits[-1], golden["logits_last"]),
        "text before": (logits[golden["text_before_positions"]], golden["logits_text_before"]),
        "text after": (logits[golden["text_after_positions"]], golden["logits_text_after"]),
        "visual": (logits[golden["visual_sample_positions"]], golden["logits_visual_sample"]),
    }
    for name, (ours, reference) in checks.items():
        diff = (ours - torch.from_numpy(reference)).abs().max().item()
        assert diff <= LOGIT_TOL, f"{name} logits differ by {diff}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_greedy_tokens_match_reference(conformance_dir: Path, checkpoint: str, case: str) -> None:
    model = _model(conformance_dir, checkpoint)
    folder, golden = _case(conformance_dir, checkpoint, case)
    inputs = _reference_inputs(model, folder, golden)
    with torch.inference_mode():
        out = model.module.generate(
            **inputs,
            attention_mask=torch.ones_like(inputs["input_ids"]),
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=model.tokenizer.pad_token_id,
        )
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert new == golden["generated_ids"].tolist()


def _shared_golden(checkpoint: str, case: str) -> tuple[Path, Path, dict[str, np.ndarray]]:
    root = require_shared("conformance")
    folder = root / "cases" / checkpoint / case
    return root, folder, compact_case(folder)


def _vendored_golden(checkpoint: str, case: str) -> tuple[Path, Path, dict[str, np.ndarray]]:
    golden = load_compact(VENDORED / "cases" / checkpoint / case / "golden.npz")
    return VENDORED, VENDORED / "media" / case, golden


GOLDEN: dict[str, Callable[[str, str], tuple[Path, Path, dict[str, np.ndarray]]]] = {
    "shared": _shared_golden,
    "vendored": _vendored_golden,
}
END_TO_END = [("shared", c, n) for c in CHECKPOINTS for n in CASES] + [
    ("vendored", c, n) for c in CHECKPOINTS for n in VENDORED_MEDIA_CASES
]


def _close(ours: torch.Tensor | np.ndarray, reference: np.ndarray, tol: float, what: str) -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    diff = float(np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max())
    assert diff <= tol, f"{what} differ by {diff} (tolerance {tol})"


def _check_summary(values: torch.Tensor, golden: dict[str, np.ndarray], name: str, tol: float):
    """``values`` against the golden shape, mean and mean absolute value of ``name``."""
    wide = values.detach().cpu().to(torch.float64)
    assert list(wide.shape) == golden[f"{name}_shape"].tolist()
    _close(wide.mean().numpy(), golden[f"{name}_mean"], tol, f"{name} mean")
    _close(wide.abs().mean().numpy(), golden[f"{name}_abs_mean"], tol, f"{name} mean |x|")


@pytest.mark.parametrize(("source", "checkpoint", "case"), END_TO_END)
def test_end_to_end_from_media_files(
    monkeypatch: pytest.MonkeyPatch, source: str, checkpoint: str, case: str
) -> None:
    """PNG files -> prompt -> ids and pixels -> features -> greedy ids and logits via instit."""
    root, media_dir, golden = GOLDEN[source](checkpoint, case)
    model = _model(root, checkpoint)
    media = _media(media_dir)
    question = _question(str(golden["prompt"]), model.template)
    assert model.prompt(question) == str(golden["prompt"])

    inputs = model.prepare(media, question)
    ids = golden["input_ids"].tolist()
    at = ids.index(IMAGE_TOKEN_INDEX)
    placeholder = inputs["input_ids"][0, at].item()
    expanded = ids[:at] + [placeholder] * int(golden["num_visual_tokens"]) + ids[at + 1 :]
    assert inputs["input_ids"][0].tolist() == expanded
    assert placeholder in (model.config.image_token_id, model.config.video_token_id)
    pixels = inputs.get("pixel_values", inputs.get("pixel_values_videos"))
    pixels = pixels.reshape(golden["pixels_shape"].tolist())
    _check_summary(pixels, golden, "pixels", PIXEL_TOL)
    flat = pixels.reshape(-1)[torch.from_numpy(golden["pixels_sample_at"])]
    _close(flat, golden["pixels_samples"], PIXEL_TOL, "pixel samples")

    encoded = model.encode_media(media)
    assert encoded.num_tokens == int(golden["num_visual_tokens"])
    _check_summary(encoded.features, golden, "features", FEATURE_TOL)
    rows = encoded.features[torch.from_numpy(golden["features_rows_at"])]
    _close(rows, golden["features_rows"], FEATURE_TOL, "feature rows")

    seen: dict[str, torch.Tensor] = {}
    generate = model.module.generate

    def observed(*args, **kwargs):  # InstIt.generate's own call, with the logits kept
        keep = {"output_logits": True, "return_dict_in_generate": True}
        if kwargs.get("generation_config") is not None:
            kwargs["generation_config"] = copy.deepcopy(kwargs["generation_config"])
            kwargs["generation_config"].update(**keep)
        else:
            kwargs.update(keep)
        out = generate(*args, **kwargs)
        seen["ids"], seen["logits"] = out.sequences, torch.stack(out.logits, dim=1)
        return out.sequences

    monkeypatch.setattr(model.module, "generate", observed)
    [text] = model.generate([encoded], [question], max_new_tokens=8)
    assert seen["ids"][0].tolist() == golden["generated_ids"].tolist()
    _close(seen["logits"][0, 0], golden["logits_last"], LOGIT_TOL, "last-position logits")
    _close(seen["logits"][0], golden["generate_step_logits"], LOGIT_TOL, "generation-step logits")
    reference = model.tokenizer.decode(golden["generated_ids"], skip_special_tokens=True)
    assert text == reference.strip()
