"""``save_pretrained`` / ``convert`` / ``instit convert``: plain transformers runs the output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoTokenizer,
    LlavaOnevisionForConditionalGeneration,
)

from instit.cli import main
from instit.errors import InstitValueError
from instit.model import InstIt, convert
from model_checkpoints import ARCHS, image, read_tensors, tiny

QUESTION = "What is [1] doing?"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {arch: tiny(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def exported(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exported")
    return {arch: convert(src, root / arch, progress=False) for arch, src in sources.items()}


def load(path: Path, **kwargs: object) -> InstIt:
    return InstIt.from_pretrained(path, device="cpu", dtype="float32", progress=False, **kwargs)  # type: ignore[arg-type]


def plain(path: Path) -> LlavaOnevisionForConditionalGeneration:
    return LlavaOnevisionForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_plain_transformers_gives_the_same_image_logits(
    sources: dict[str, Path], exported: dict[str, Path], arch: str
) -> None:
    model = load(sources[arch])
    other = plain(exported[arch])
    assert type(AutoModelForImageTextToText.from_config(other.config)) is type(other)
    inputs = model.prepare(image(400, 300), QUESTION)
    with torch.inference_mode():
        ours = model.module(**inputs).logits
        theirs = other(**inputs).logits
    vocab = ours.shape[-1]
    assert theirs.shape[-1] == vocab + 2  # <image> and <video> became real tokens
    assert (ours - theirs[..., :vocab]).abs().max().item() < 1e-4
    # greedy decoding with the exported generation_config: the same answer
    with torch.inference_mode():
        out = other.generate(**inputs, max_new_tokens=6, do_sample=False)
    tokenizer = AutoTokenizer.from_pretrained(exported[arch])
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip() == model.generate([image(400, 300)], [QUESTION], max_new_tokens=6)[0]


def test_video_differs_by_transformers_one_newline_token(
    sources: dict[str, Path], exported: dict[str, Path]
) -> None:
    """Documented deviation: plain LLaVA-OneVision appends one newline per video."""
    model = load(sources["qwen2-siglip"])
    other = plain(exported["qwen2-siglip"])
    frames = [image(320, 240, seed=s) for s in range(3)]
    ours = model.encode_media(frames).features
    pixels = model.prepare(frames, QUESTION)["pixel_values_videos"]
    with torch.inference_mode():
        theirs = other.model.get_video_features(pixels).pooler_output[0]
    assert ours.shape[0] == 3 * 196
    assert theirs.shape[0] == 3 * 196 + 1
    assert (theirs[:-1] - ours).abs().max().item() < 1e-5
    assert torch.equal(theirs[-1], other.model.image_newline)


@pytest.mark.parametrize("arch", ARCHS)
def test_export_round_trips_through_instit(
    sources: dict[str, Path], exported: dict[str, Path], arch: str
) -> None:
    original, converted = load(sources[arch]), load(exported[arch])
    assert converted.spec.layout == "transformers"
    assert converted.template == original.template
    assert converted.vision == original.vision or arch == "vicuna-clip"
    frames = [image(300, 200, seed=s) for s in range(2)]
    for media in (image(640, 360), frames):
        a = original.module(**original.prepare(media, QUESTION)).logits
        b = converted.module(**converted.prepare(media, QUESTION)).logits
        assert (a - b[..., : a.shape[-1]]).abs().max().item() < 1e-4
    assert converted.generate([frames], ["Hi"], max_new_tokens=4) == original.generate(
        [frames], ["Hi"], max_new_tokens=4
    )


def test_convert_keeps_the_stored_dtype_and_never_touches_the_source(
    sources: dict[str, Path], exported: dict[str, Path], tmp_path: Path
) -> None:
    before = fingerprint(sources["vicuna-clip"])
    stored = read_tensors(exported["vicuna-clip"])
    assert {t.dtype for t in stored.values()} == {torch.bfloat16}  # as the source stores them
    dst = convert(sources["vicuna-clip"], tmp_path / "out", progress=False)
    assert (dst / "model.safetensors.index.json").exists()
    assert fingerprint(sources["vicuna-clip"]) == before


def test_destination_rules(sources: dict[str, Path], tmp_path: Path) -> None:
    src = sources["qwen2-siglip"]
    before = fingerprint(src)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InstitValueError, match=r"not empty.*overwrite=True"):
        convert(src, busy, progress=False)
    assert (busy / "keep.txt").read_text() == "mine"
    convert(src, busy, overwrite=True, progress=False)
    assert not (busy / "keep.txt").exists()
    assert (busy / "config.json").exists()

    for dst in (src, src / "inside", src.parent):
        with pytest.raises(InstitValueError, match="overlaps the source"):
            convert(src, dst, overwrite=True, progress=False)
    model = load(src)
    with pytest.raises(InstitValueError, match="overlaps the source"):
        model.save_pretrained(src, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InstitValueError, match="is a file"):
        model.save_pretrained(tmp_path / "file")
    assert fingerprint(src) == before


def test_quantized_models_are_not_exported(sources: dict[str, Path], tmp_path: Path) -> None:
    model = load(sources["qwen2-siglip"])
    model.quantization = "4bit"
    with pytest.raises(InstitValueError, match="quantized model cannot be saved"):
        model.save_pretrained(tmp_path / "out")


def test_cli_convert(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "cli"
    assert main(["convert", str(sources["vicuna-clip"]), str(dst)]) == 0
    assert "wrote a transformers-layout checkpoint" in capsys.readouterr().out
    pinpoints = plain(dst).config.image_grid_pinpoints  # (height, width) in transformers
    assert pinpoints == [[336, 336], [672, 336], [336, 672], [672, 672]]
    assert main(["convert", str(sources["vicuna-clip"]), str(dst)]) != 0
    assert "not empty" in capsys.readouterr().err
    assert main(["convert", str(sources["vicuna-clip"]), str(dst), "--overwrite"]) == 0
