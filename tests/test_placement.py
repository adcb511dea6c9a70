"""device / device_map / max_memory: where the model's parts go.

No GPU here: the placement rules are checked as a table (with the number of visible GPUs given),
accelerate's own placement is run on a weightless model with two GPUs' worth of ``max_memory``,
and real loads on the CPU check that a device map without GPUs gives the same model as
``device="cpu"``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from instit.errors import DependencyError, InstitTypeError, InstitValueError
from instit.model import InstIt
from instit.model.checkpoint import read_checkpoint
from instit.model.placement import Placement, check_map_names, resolve_placement
from instit.model.weights import checked_config, parameter_names
from model_checkpoints import image, last_logits, tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("placement") / "qwen", num_layers=4)


# -- the rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "device_map", "max_memory", "gpus", "expected"),
    [
        ("cpu", None, None, 2, Placement("cpu")),
        ("cuda:1", None, None, 2, Placement("cuda:1")),
        ("auto", None, None, 0, Placement("cpu")),
        ("auto", None, None, 2, Placement("cuda")),
        ("auto", "auto", None, 0, Placement("cpu")),
        ("auto", "balanced", None, 0, Placement("cpu")),
        ("auto", "auto", None, 2, Placement("cuda", "auto")),
        (
            "auto",
            "sequential",
            {0: "10GiB", 1: "20GiB"},
            2,
            Placement("cuda", "sequential", {0: "10GiB", 1: "20GiB"}),
        ),
        ("auto", {"": "cpu"}, None, 0, Placement("cpu")),
        ("auto", {"model": "cpu", "lm_head": "cpu"}, None, 2, Placement("cpu")),
        ("auto", {"": 1}, None, 2, Placement("cuda:1")),
        ("auto", {"model": "cuda", "lm_head": "cuda:0"}, None, 1, Placement("cuda:0")),
        (
            "auto",
            {"model.vision_tower": 1, "model.language_model": "cuda:0", "lm_head": "cpu"},
            None,
            2,
            Placement(
                "cuda:0", {"model.vision_tower": 1, "model.language_model": 0, "lm_head": "cpu"}
            ),
        ),
    ],
)
def test_placement_rules(
    device: str, device_map: object, max_memory: object, gpus: int, expected: Placement
) -> None:
    got = resolve_placement(device, device_map, max_memory, cuda_count=gpus)  # type: ignore[arg-type]
    assert got == expected


@pytest.mark.parametrize(
    ("device", "device_map", "max_memory", "gpus", "error", "words"),
    [
        ("cuda:1", "auto", None, 2, InstitValueError, "either device="),
        ("auto", "fastest", None, 2, InstitValueError, "not a strategy"),
        ("auto", {"model": "disk", "lm_head": 0}, None, 2, InstitValueError, "disk"),
        ("auto", {"model": 0, "lm_head": "meta"}, None, 2, InstitValueError, "disk"),
        ("auto", {"model": 2, "lm_head": 0}, None, 2, DependencyError, "GPU 2 but 2 CUDA"),
        ("auto", {"": 0}, None, 0, DependencyError, "no CUDA GPU is visible"),
        ("auto", {"": "gpu7"}, None, 2, InstitValueError, "not a device"),
        ("auto", {"": True}, None, 2, InstitTypeError, "not a device"),
        ("auto", {}, None, 2, InstitTypeError, "non-empty dict"),
        ("auto", ["auto"], None, 2, InstitTypeError, "strategy"),
        ("cuda", None, None, 0, DependencyError, "no CUDA GPU"),
        ("auto", None, {0: "1GiB"}, 2, InstitValueError, "max_memory bounds a device_map"),
        ("auto", "auto", "20GiB", 2, InstitTypeError, "max_memory must be a dict"),
    ],
)
def test_placement_errors_name_the_problem(
    device: str,
    device_map: object,
    max_memory: object,
    gpus: int,
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        resolve_placement(
            device,
            device_map,  # type: ignore[arg-type]
            max_memory,  # type: ignore[arg-type]
            cuda_count=gpus,
        )


def test_map_names_are_modules_and_cover_every_weight(checkpoint: Path) -> None:
    names = parameter_names(read_checkpoint(checkpoint))
    assert "lm_head.weight" in names
    assert any(n.startswith("model.language_model.layers.3.") for n in names)
    check_map_names({"": "cpu"}, names)
    check_map_names({"model": 0, "lm_head": 1}, names)
    check_map_names({"model.vision_tower": 0, "model.language_model.layers.0": 1, "": 1}, names)
    with pytest.raises(InstitValueError, match=r"\['model.langauge_model'\] which are not modules"):
        check_map_names({"model.langauge_model": 0, "": 1}, names)
    with pytest.raises(InstitValueError, match="not modules"):  # a name cut inside a word
        check_map_names({"model.language": 0, "": 1}, names)
    with pytest.raises(InstitValueError, match=r"leaves \d+ weights without a device.*lm_head"):
        check_map_names({"model": 0}, names)


# -- accelerate's placement on this model ----------------------------------------------------------


def test_auto_map_over_two_gpus_never_splits_a_layer_or_the_projector(checkpoint: Path) -> None:
    from accelerate import infer_auto_device_map
    from accelerate.utils import compute_module_sizes

    from instit.model.modeling import InstItLlavaForConditionalGeneration

    spec = read_checkpoint(checkpoint)
    with torch.device("meta"):
        model = InstItLlavaForConditionalGeneration(checked_config(spec, spec.embedding_rows))
    no_split = sorted(model._no_split_modules)
    assert "LlavaOnevisionMultiModalProjector" in no_split
    assert any("DecoderLayer" in name for name in no_split)
    assert any("EncoderLayer" in name for name in no_split)
    total = compute_module_sizes(model)[""]
    # GPU 0 too small for everything: the model has to be cut somewhere
    device_map = infer_auto_device_map(
        model,
        max_memory={0: total // 3, 1: total, "cpu": 0},
        no_split_module_classes=no_split,
    )
    assert set(device_map.values()) == {0, 1}
    whole = re.compile(
        r"^(model\.image_newline|model\.multi_modal_projector|lm_head"
        r"|model\.vision_tower(\..*\.layers\.\d+|\..*embeddings|\..*post_layernorm|\..*head)?"
        r"|model\.language_model(\.layers\.\d+|\.embed_tokens|\.norm|\.rotary_emb)?)$"
    )
    assert all(whole.match(key) for key in device_map), device_map
    check_map_names(device_map, [n for n, _ in model.named_parameters()])


# -- real loads (CPU) ------------------------------------------------------------------------------


def test_a_cpu_device_map_loads_the_same_model_as_cpu(checkpoint: Path) -> None:
    plain = InstIt.from_pretrained(checkpoint, device="cpu", progress=False)
    expected = last_logits(plain, image(), "Describe [1].")
    maps: list[str | dict[str, str]] = [{"model": "cpu", "lm_head": "cpu"}]
    if not torch.cuda.is_available():  # a strategy without GPUs loads on the CPU
        maps.append("auto")
    for device_map in maps:
        model = InstIt.from_pretrained(checkpoint, device_map=device_map, progress=False)
        assert model.device == torch.device("cpu")
        assert model.memory is not None  # the CPU memory check ran
        torch.testing.assert_close(last_logits(model, image(), "Describe [1]."), expected)
        assert model.info()["device"] == "cpu"


def test_bad_device_map_is_refused_before_any_weight_is_read(checkpoint: Path) -> None:
    with pytest.raises(InstitValueError, match="not modules of this model"):
        InstIt.from_pretrained(checkpoint, device_map={"model.vision": "cpu", "": "cpu"})
    with pytest.raises(InstitValueError, match="without a device"):
        InstIt.from_pretrained(checkpoint, device_map={"model": "cpu"})
    with pytest.raises(InstitValueError, match="either device="):
        InstIt.from_pretrained(checkpoint, device="cpu", device_map="auto")


def test_cli_has_one_device_map_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from instit.cli import build_parser

    parser = build_parser()
    for verb in (["ask"], ["describe"], ["bench", "run"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*verb, "--help"])
        assert "--device-map" in capsys.readouterr().out, verb
    with pytest.raises(SystemExit):
        parser.parse_args(["ask", "x.png", "q", "--device-map", "fastest"])
    assert "invalid choice" in capsys.readouterr().err
    assert isinstance(parser, argparse.ArgumentParser)


def test_bench_run_refuses_device_map_under_several_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from instit.cli import EXIT_USAGE, main

    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["bench", "run", "--model", str(tmp_path / "none"), "--device-map", "auto"]
    assert main([*argv, "--output-dir", str(tmp_path / "out"), "--no-progress"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--device-map spreads one model over every GPU, but this is one of 2 processes" in err
    assert not (tmp_path / "out").exists()  # refused before any output is checked or written
