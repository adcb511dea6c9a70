"""Broken checkpoints and inputs that do not fit: each a package error naming the problem."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from instit.errors import (
    CheckpointError,
    InstancesError,
    InstitError,
    InstitTypeError,
    InstitValueError,
    ModelInputError,
)
from instit.instances import Instances
from instit.model import InstIt, convert
from model_checkpoints import (
    ARCHS,
    copy_checkpoint,
    edit_json,
    image,
    read_json,
    read_tensors,
    tiny,
    write_tensors,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {arch: tiny(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def vicuna(checkpoints: dict[str, Path]) -> InstIt:
    return InstIt.from_pretrained(checkpoints["vicuna-clip"], device="cpu", progress=False)


@pytest.fixture
def qwen_copy(checkpoints: dict[str, Path], tmp_path: Path) -> Path:
    return copy_checkpoint(checkpoints["qwen2-siglip"], tmp_path / "ckpt")


def load(path: Path | str) -> InstIt:
    return InstIt.from_pretrained(path, device="cpu", progress=False)


# -- files and weights --------------------------------------------------------------------------


def test_missing_shard(qwen_copy: Path) -> None:
    (qwen_copy / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing shard file\(s\) \['model-00002-of-00002"):
        load(qwen_copy)


def test_index_entry_without_its_tensor(qwen_copy: Path) -> None:
    index = read_json(qwen_copy / "model.safetensors.index.json")
    index["weight_map"]["model.layers.0.mlp.extra.weight"] = "model-00001-of-00002.safetensors"
    (qwen_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"not in their shard: \['model.layers.0.mlp.extra"):
        load(qwen_copy)


def test_tensor_missing_from_the_index(qwen_copy: Path) -> None:
    index = read_json(qwen_copy / "model.safetensors.index.json")
    del index["weight_map"]["model.layers.1.mlp.up_proj.weight"]
    (qwen_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"no entry in .*\['model\.layers\.1\.mlp\.up_proj"):
        load(qwen_copy)


def test_unexpected_and_missing_weights_are_listed(qwen_copy: Path) -> None:
    tensors = read_tensors(qwen_copy)
    tensors["model.layers.0.mlp.surprise.weight"] = torch.zeros(2, 2)
    del tensors["model.layers.1.mlp.down_proj.weight"]
    del tensors["model.mm_projector.2.bias"]
    write_tensors(qwen_copy, tensors)
    with pytest.raises(CheckpointError) as caught:
        load(qwen_copy)
    message = str(caught.value)
    assert "unexpected weights" in message and "mlp.surprise.weight" in message
    assert "missing weights" in message
    assert "layers.1.mlp.down_proj.weight" in message
    assert "multi_modal_projector.linear_2.bias" in message


def test_weight_with_the_wrong_shape(qwen_copy: Path) -> None:
    tensors = read_tensors(qwen_copy)
    tensors["model.layers.0.mlp.gate_proj.weight"] = torch.zeros(7, 64, dtype=torch.bfloat16)
    write_tensors(qwen_copy, tensors)
    with pytest.raises(CheckpointError, match=r"wrong shape.*layers\.0\.mlp\.gate_proj"):
        load(qwen_copy)


def test_pickle_only_checkpoint_is_refused_without_unpickling(
    qwen_copy: Path, tmp_path: Path
) -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.mkdir, (str(tmp_path / "unpickled"),)

    for shard in qwen_copy.glob("*.safetensors"):
        shard.unlink()
    (qwen_copy / "model.safetensors.index.json").unlink()
    (qwen_copy / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match=r"no safetensors weights.*pytorch_model\.bin"):
        load(qwen_copy)
    assert not (tmp_path / "unpickled").exists()


def test_missing_config_and_bad_paths(qwen_copy: Path, tmp_path: Path) -> None:
    (qwen_copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load(qwen_copy)
    with pytest.raises(CheckpointError, match="is a file"):
        load(qwen_copy / "tokenizer.json")
    with pytest.raises(CheckpointError, match=r"folder' does not exist: .* has no 'no'"):
        load(tmp_path / "no" / "such" / "folder")


# -- architecture and tokenizer -----------------------------------------------------------------


def test_unknown_architecture(qwen_copy: Path) -> None:
    edit_json(qwen_copy / "config.json", model_type="mistral")
    with pytest.raises(CheckpointError, match=r"unknown architecture.*'mistral'"):
        load(qwen_copy)
    edit_json(qwen_copy / "config.json", model_type="qwen2", mm_vision_tower=None)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load(qwen_copy)


def test_unsupported_llava_settings(qwen_copy: Path) -> None:
    edit_json(qwen_copy / "config.json", image_aspect_ratio="pad")
    with pytest.raises(CheckpointError, match="image_aspect_ratio 'pad' is not supported"):
        load(qwen_copy)
    edit_json(
        qwen_copy / "config.json", image_aspect_ratio="anyres_max_9", mm_patch_merge_type="flat"
    )
    with pytest.raises(CheckpointError, match="mm_patch_merge_type 'flat'"):
        load(qwen_copy)


def test_tokenizer_without_the_templates_special_tokens(
    qwen_copy: Path, checkpoints: dict[str, Path]
) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(checkpoints["vicuna-clip"] / name, qwen_copy / name)
    with pytest.raises(CheckpointError, match=r"lacks the special token\(s\) \['<\|im_start\|>'"):
        load(qwen_copy)


def test_tokenizer_larger_than_the_embedding(qwen_copy: Path) -> None:
    tensors = read_tensors(qwen_copy)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tensors[name] = tensors[name][:300].clone()
    write_tensors(qwen_copy, tensors)
    with pytest.raises(CheckpointError, match="400 tokens but the checkpoint only 300"):
        load(qwen_copy)


def test_missing_tokenizer(qwen_copy: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (qwen_copy / name).unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        load(qwen_copy)


# -- inputs -------------------------------------------------------------------------------------


def test_too_many_frames_for_the_context(vicuna: InstIt) -> None:
    frames = [image(64, 48, seed=s) for s in range(29)]  # 29 * 144 = 4176 > 4096
    with pytest.raises(ModelInputError, match=r"context is 4096.*fewer video frames"):
        vicuna.encode_media(frames)
    with pytest.raises(ModelInputError, match="context is 4096"):
        vicuna.prepare(frames[:28], "Describe the video. " * 20)
    with pytest.raises(ModelInputError, match="max_new_tokens"):
        vicuna.generate([frames[:27]], ["What happens?"], max_new_tokens=200)


def test_media_and_instances_mismatch(vicuna: InstIt) -> None:
    masks = np.zeros((1, 40, 50), dtype=bool)
    masks[0, 5:20, 5:20] = True
    instances = Instances.from_masks(masks, ids=[1])
    with pytest.raises(InstancesError, match="50"):
        vicuna.ask(image(300, 220), "What is [1]?", instances=instances, max_new_tokens=2)
    frames = [image(50, 40, seed=s) for s in range(2)]
    with pytest.raises(InstancesError, match="frame position 3"):
        vicuna.ask(frames, "What is [1]?", instances={3: instances}, max_new_tokens=2)


def test_generate_argument_errors(vicuna: InstIt) -> None:
    picture = image()
    for kwargs, match in [
        ({"max_new_tokens": 0}, "max_new_tokens=0"),
        ({"temperature": -1.0}, "temperature=-1.0"),
        ({"batch_size": 0}, "batch_size=0"),
    ]:
        with pytest.raises(InstitError, match=match):
            vicuna.generate([picture], ["Hi"], **kwargs)
    with pytest.raises(InstitError, match="one media item per prompt"):
        vicuna.generate([picture, picture], ["Hi"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_new_tokens": "3"}, InstitTypeError, "max_new_tokens='3' is not an int"),
        ({"max_new_tokens": -2}, InstitValueError, "max_new_tokens=-2"),
        ({"temperature": None}, InstitTypeError, "temperature=None is not a number"),
        ({"temperature": -0.5}, InstitValueError, "temperature=-0.5"),
    ],
)
def test_generation_settings_are_checked_once_for_every_entry_point(
    vicuna: InstIt, kwargs: dict[str, Any], error: type, match: str
) -> None:
    """Regression: generate raised a bare TypeError for max_new_tokens='3' where ask raised an
    InstitTypeError, and the messages differed; now every entry point gives the same error."""
    picture = image()
    with pytest.raises(error, match=match) as from_generate:
        vicuna.generate([picture], ["Hi"], **kwargs)
    with pytest.raises(error, match=match) as from_stream:
        next(iter(vicuna.stream(picture, "Hi", **kwargs)))
    with pytest.raises(error, match=match) as from_ask:
        vicuna.ask(picture, "Hi", **kwargs)
    with pytest.raises(error, match=match) as from_describe:
        vicuna.describe_instances(picture, **kwargs)
    messages = {str(e.value) for e in (from_generate, from_stream, from_ask, from_describe)}
    assert len(messages) == 1


def test_top_p_is_checked(vicuna: InstIt) -> None:
    with pytest.raises(InstitValueError, match="top_p=0; pass a number in"):
        vicuna.generate([image()], ["Hi"], temperature=0.7, top_p=0)
    with pytest.raises(InstitTypeError, match="top_p='high'"):
        vicuna.generate([image()], ["Hi"], temperature=0.7, top_p="high")
    with pytest.raises(InstitError, match="no frames"):
        vicuna.encode_media([])


# -- hardening: files outside the folder, damaged files, mistyped paths ---------------------------


def _point_index_at(folder: Path, shard: str) -> None:
    index = read_json(folder / "model.safetensors.index.json")
    index["weight_map"] = {
        n: shard if f == "model-00002-of-00002.safetensors" else f
        for n, f in index["weight_map"].items()
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_shards_outside_the_folder_are_refused(qwen_copy: Path, tmp_path: Path, how: str) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(qwen_copy / "model-00002-of-00002.safetensors", outside)
    if how == "absolute":
        _point_index_at(qwen_copy, str(outside))
    elif how == "dotdot":
        _point_index_at(qwen_copy, "../elsewhere.safetensors")
    else:
        (qwen_copy / "model-00002-of-00002.safetensors").symlink_to(outside)
    refusal = "link leading out of the checkpoint" if how == "symlink" else "leaves the checkpoint"
    with pytest.raises(CheckpointError, match=refusal):
        load(qwen_copy)
    with pytest.raises(CheckpointError, match=refusal):
        convert(qwen_copy, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()


def test_tokenizer_and_config_links_out_of_the_folder_are_refused(
    qwen_copy: Path, tmp_path: Path
) -> None:
    for name in ("tokenizer.json", "config.json"):
        shutil.move(qwen_copy / name, tmp_path / name)
        (qwen_copy / name).symlink_to(tmp_path / name)
        with pytest.raises(CheckpointError, match=rf"{name} is a link leading out"):
            load(qwen_copy)
        (qwen_copy / name).unlink()
        shutil.move(tmp_path / name, qwen_copy / name)
    # a link that stays inside is fine
    (qwen_copy / "tokenizer-copy.json").symlink_to(qwen_copy / "tokenizer.json")
    assert load(qwen_copy).spec.path == qwen_copy


def test_a_hub_cache_snapshot_whose_files_link_to_its_blobs_still_loads(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # the hub cache's layout: snapshots/<commit>/<file> -> ../../blobs/<hash>
    repo = tmp_path / "models--Inst-IT--tiny"
    snapshot_dir = repo / "snapshots" / "0123abc"
    (repo / "blobs").mkdir(parents=True)
    snapshot_dir.mkdir(parents=True)
    for file in checkpoints["qwen2-siglip"].iterdir():
        if file.is_dir():
            shutil.copytree(file, snapshot_dir / file.name)
            continue
        blob = repo / "blobs" / file.name
        shutil.copy(file, blob)
        (snapshot_dir / file.name).symlink_to(Path("..", "..", "blobs", file.name))
    model = load(snapshot_dir)
    assert model.spec.path == snapshot_dir


@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_damaged_shards_are_checkpoint_errors_naming_the_file(
    qwen_copy: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from instit.cli import main

    shard = qwen_copy / "model-00001-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(4096)}[damage]
    )
    with pytest.raises(CheckpointError, match=r"model-00001-of-00002\.safetensors is not a"):
        load(qwen_copy)
    with pytest.raises(CheckpointError, match=r"model-00001-of-00002\.safetensors"):
        convert(qwen_copy, tmp_path / "converted")
    picture = tmp_path / "p.png"
    image().save(picture)
    code = main(["ask", str(picture), "Hi?", "--model", str(qwen_copy), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "model-00001-of-00002.safetensors" in err and "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ([1, 2], "JSON list"),
        ({"hidden_size": "64"}, "hidden_size is '64', not a number"),
        ({"mm_vision_select_layer": "last"}, "mm_vision_select_layer is 'last'"),
        ({"tokenizer_model_max_length": "4k"}, "tokenizer_model_max_length is '4k'"),
        ({"num_hidden_layers": True}, "num_hidden_layers is True"),
        ({"rope_theta": None}, "rope_theta is None, not a number"),
        ({"use_cache": "yes"}, "field 'use_cache'"),
        ({"id2label": "x"}, "AttributeError"),
        ({"hidden_act": "swishy"}, "hidden_act is 'swishy', not an activation"),
    ],
)
def test_config_json_of_the_wrong_shape_names_the_field(
    qwen_copy: Path, config: object, field: str
) -> None:
    if isinstance(config, dict):  # set the values (None included) as given
        config = {**read_json(qwen_copy / "config.json"), **config}
    (qwen_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=re.escape(field)):
        load(qwen_copy)


def test_transformers_config_of_the_wrong_shape_names_the_field(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    out = convert(checkpoints["qwen2-siglip"], tmp_path / "hf", progress=False)
    original = read_json(out / "config.json")
    config = read_json(out / "config.json")
    config["text_config"]["num_attention_heads"] = "four"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"text_config\.num_attention_heads is 'four'"):
        load(out)
    config["text_config"] = ["qwen2"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="text_config is a JSON list"):
        load(out)
    for key, value, message in [
        ("image_grid_pinpoints", "x", "image_grid_pinpoints 'x' is not a list"),
        ("dtype", "x", "module 'torch' has no attribute 'x'"),
        ("vision_config", {**original["vision_config"], "model_type": "x"}, "KeyError: 'x'"),
        ("tie_word_embeddings", "x", "field 'tie_word_embeddings'"),
    ]:
        (out / "config.json").write_text(json.dumps({**original, key: value}))
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load(out)


@pytest.mark.parametrize("typo", ["ck/typo", "./typo", "ck/sub/typo", "ABSOLUTE"])
def test_a_mistyped_local_path_says_the_folder_does_not_exist(
    qwen_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typo: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "ck").mkdir()
    name = str(tmp_path / "ck" / "typo") if typo == "ABSOLUTE" else typo
    with pytest.raises(CheckpointError, match="does not exist") as caught:
        load(name)
    assert "hub (" not in str(caught.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        convert(name, tmp_path / "out")


def test_hub_downloads_never_include_pickles() -> None:
    from huggingface_hub.utils import filter_repo_objects

    from instit.model.checkpoint import HUB_ALLOW_PATTERNS, HUB_IGNORE_PATTERNS

    wanted = [
        "config.json",
        "generation_config.json",
        "model-00001-of-00004.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "vision_tower/config.json",
    ]
    pickles = [
        "pytorch_model.bin",
        "pytorch_model-00001-of-00002.bin",
        "training_args.bin",
        "optimizer.pt",
        "rng_state.pth",
        "model.ckpt",
        "scheduler.pkl",
        "vision_tower/pytorch_model.bin",
        "global_step100/mp_rank_00_model_states.pt",
    ]
    kept = list(
        filter_repo_objects(
            wanted + pickles,
            allow_patterns=HUB_ALLOW_PATTERNS,
            ignore_patterns=HUB_IGNORE_PATTERNS,
        )
    )
    assert kept == wanted
    for pattern in ("*.bin", "*.pt", "*.pkl", "*.pth", "*.ckpt"):
        assert pattern in HUB_IGNORE_PATTERNS  # even if an allow pattern grows to match them
