"""Loading checkpoints: layouts, hub cache, settings read from the checkpoint, the vision tower.

Every checkpoint here is a real safetensors checkpoint written to a temporary folder (tiny random
weights with the Inst-It checkpoints' real visual geometry), or one of the conformance checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from instit.errors import CheckpointError
from instit.model import InstIt
from instit.model.checkpoint import KNOWN_TOWERS, read_checkpoint
from model_checkpoints import (
    ARCHS,
    TOWER_PREFIX,
    copy_checkpoint,
    edit_json,
    image,
    last_logits,
    read_json,
    read_tensors,
    tiny,
    write_tensors,
)

QWEN_PINPOINTS = tuple((a * 384, b * 384) for a in range(1, 7) for b in range(1, 7))
VICUNA_PINPOINTS = ((336, 336), (336, 672), (672, 336), (672, 672))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {arch: tiny(root / arch, arch) for arch in ARCHS}


def load(path: Path | str, **kwargs: object) -> InstIt:
    return InstIt.from_pretrained(path, device="cpu", progress=False, **kwargs)  # type: ignore[arg-type]


# -- layouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_original_layout_sharded_and_single_file_load_the_same_model(
    checkpoints: dict[str, Path], arch: str, tmp_path: Path
) -> None:
    sharded = checkpoints[arch]
    assert (sharded / "model.safetensors.index.json").exists()
    single = copy_checkpoint(sharded, tmp_path / "single")
    write_tensors(single, read_tensors(sharded), parts=1)
    assert not (single / "model.safetensors.index.json").exists()

    a, b = load(sharded), load(single)
    assert a.spec.layout == b.spec.layout == "original"
    picture = image()
    assert torch.equal(
        last_logits(a, picture, "What is [1]?"), last_logits(b, picture, "What is [1]?")
    )


def _plain_transformers_checkpoint(folder: Path, kind: str, source: Path) -> torch.nn.Module:
    """Save a tiny model with plain transformers ``save_pretrained``; return the model."""
    from transformers import (
        AutoTokenizer,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_tokens(["<image>", "<video>"], special_tokens=True)
    vocab = len(tokenizer)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    torch.manual_seed(3)
    if kind == "llava_onevision":
        config = LlavaOnevisionConfig(
            text_config=Qwen2Config(
                vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6,
            ).to_dict(),
            vision_config=SiglipVisionConfig(
                hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                image_size=384, patch_size=14, vision_use_head=False,
            ).to_dict(),
            image_token_id=image_id,
            video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
            image_grid_pinpoints=[[h, w] for w, h in QWEN_PINPOINTS],
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
        )  # fmt: skip
        model = LlavaOnevisionForConditionalGeneration(config)
    else:
        config = LlavaNextConfig(
            text_config=LlamaConfig(
                vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4,
            ).to_dict(),
            vision_config=CLIPVisionConfig(
                hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                image_size=336, patch_size=14, projection_dim=16,
            ).to_dict(),
            image_token_id=image_id,
            image_grid_pinpoints=[[h, w] for w, h in VICUNA_PINPOINTS],
        )  # fmt: skip
        model = LlavaNextForConditionalGeneration(config)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 2.0 / param.shape[-1] ** 0.5)
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.mark.parametrize(
    ("kind", "arch"), [("llava_onevision", "qwen2-siglip"), ("llava_next", "vicuna-clip")]
)
def test_transformers_layouts_load_through_the_same_api(
    checkpoints: dict[str, Path], tmp_path: Path, kind: str, arch: str
) -> None:
    folder = tmp_path / kind
    plain = _plain_transformers_checkpoint(folder, kind, checkpoints[arch])
    model = load(folder)
    assert model.spec.layout == "transformers"
    assert model.spec.grid_pinpoints == (
        QWEN_PINPOINTS if arch == "qwen2-siglip" else VICUNA_PINPOINTS
    )
    assert model.template == ("qwen_1_5" if arch == "qwen2-siglip" else "vicuna_v1")
    inputs = model.prepare(image(700, 300), "Describe [1].")
    with torch.inference_mode():
        ours = model.module(**inputs).logits
        theirs = plain(**inputs).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4


def test_legacy_llava_hf_weight_names_load(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """llava-hf's hub checkpoints predate transformers 5: ``language_model.model.*`` names."""
    folder = tmp_path / "legacy"
    _plain_transformers_checkpoint(folder, "llava_onevision", checkpoints["qwen2-siglip"])
    current = load(folder)
    renamed = {}
    for name, tensor in read_tensors(folder).items():
        if name.startswith("model.language_model."):
            name = "language_model.model." + name.removeprefix("model.language_model.")
        elif name == "lm_head.weight":
            name = "language_model.lm_head.weight"
        elif name.startswith("model.vision_tower."):
            name = "vision_tower.vision_model." + name.removeprefix("model.vision_tower.")
        else:
            name = name.removeprefix("model.")
        renamed[name] = tensor
    write_tensors(folder, renamed, parts=2)
    legacy = load(folder)
    picture = image()
    assert torch.equal(last_logits(current, picture, "Hi"), last_logits(legacy, picture, "Hi"))


# -- the hub -------------------------------------------------------------------------------------


def _cache_repo(cache: Path, repo: str, source: Path, refs: dict[str, str]) -> None:
    """Lay ``source`` out as huggingface_hub's cache does: snapshots/<commit> + refs/<name>."""
    base = cache / ("models--" + repo.replace("/", "--"))
    for ref, commit in refs.items():
        snapshot = base / "snapshots" / commit
        if not snapshot.exists():
            shutil.copytree(source, snapshot)
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / ref).write_text(commit)


def test_hub_id_loads_from_the_cache_offline_with_revision(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    main, other = checkpoints["qwen2-siglip"], tiny(tmp_path / "seed1", seed=1)
    _cache_repo(cache, "Inst-IT/tiny", main, {"main": "a" * 40})
    _cache_repo(cache, "Inst-IT/tiny", other, {"v1": "b" * 40})

    default = InstIt.from_pretrained(
        "Inst-IT/tiny", cache_dir=cache, local_files_only=True, device="cpu", progress=False
    )
    tagged = InstIt.from_pretrained(
        "Inst-IT/tiny",
        revision="v1",
        cache_dir=cache,
        local_files_only=True,
        device="cpu",
        progress=False,
    )
    assert default.spec.path.name == "a" * 40
    assert tagged.spec.path.name == "b" * 40
    picture = image()
    assert torch.equal(last_logits(default, picture, "Hi"), last_logits(load(main), picture, "Hi"))
    assert torch.equal(last_logits(tagged, picture, "Hi"), last_logits(load(other), picture, "Hi"))

    with pytest.raises(CheckpointError, match="Inst-IT/absent"):
        InstIt.from_pretrained("Inst-IT/absent", cache_dir=cache, local_files_only=True)
    with pytest.raises(CheckpointError, match="Inst-IT/tiny"):
        InstIt.from_pretrained(
            "Inst-IT/tiny", revision="v2", cache_dir=cache, local_files_only=True
        )


# -- weights and settings ---------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_vision_tower_weights_come_from_the_checkpoint(
    checkpoints: dict[str, Path], arch: str
) -> None:
    folder = checkpoints[arch]
    model = load(folder, dtype="float32")
    stored = {
        n.removeprefix(TOWER_PREFIX): t
        for n, t in read_tensors(folder).items()
        if n.startswith(TOWER_PREFIX)
    }
    tower_dir = folder / model.spec.config["mm_vision_tower"]
    stock = load_file(str(tower_dir / "model.safetensors"))
    loaded = model.module.model.vision_tower.state_dict()
    assert set(loaded) == set(stored)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, stored[name].float()), name
        assert not torch.equal(tensor, stock[name]), name


def test_checkpoint_settings_are_read(checkpoints: dict[str, Path]) -> None:
    qwen = load(checkpoints["qwen2-siglip"])
    assert qwen.spec.image_aspect_ratio == "anyres_max_9"
    assert qwen.spec.grid_pinpoints == QWEN_PINPOINTS
    # LLaVA-NeXT drops SigLIP's last layer and reads the last remaining one, all patches
    assert (qwen.spec.vision_feature_layer, qwen.spec.vision_feature_select_strategy) == (
        -1,
        "full",
    )
    assert qwen.module.config.vision_config.num_hidden_layers == 2  # tower config says 3
    assert qwen.context_length == 32768

    vicuna = load(checkpoints["vicuna-clip"])
    assert vicuna.spec.image_aspect_ratio == "anyres"
    assert vicuna.spec.grid_pinpoints == VICUNA_PINPOINTS  # not LLaVA-1.6's default grid
    assert (vicuna.spec.vision_feature_layer, vicuna.spec.vision_feature_select_strategy) == (
        -2,
        "default",
    )
    assert vicuna.context_length == 4096

    edited = copy_checkpoint(checkpoints["vicuna-clip"], checkpoints["vicuna-clip"].parent / "e")
    edit_json(
        edited / "config.json",
        mm_vision_select_layer=-3,
        image_grid_pinpoints="(1x1),...,(2x2)",
        tokenizer_model_max_length=2048,
    )
    spec = read_checkpoint(edited)
    assert spec.vision_feature_layer == -3
    assert spec.grid_pinpoints == VICUNA_PINPOINTS
    assert spec.context_length == 2048
    assert json.loads(spec.to_json())["grid_pinpoints"][1] == [336, 672]


@pytest.mark.parametrize(("arch", "per_frame"), [("qwen2-siglip", 196), ("vicuna-clip", 144)])
def test_video_and_image_token_counts(
    checkpoints: dict[str, Path], arch: str, per_frame: int
) -> None:
    from instit.model.processing import image_token_count

    model = load(checkpoints[arch])
    frames = [image(320, 240, seed=s) for s in range(3)]
    video = model.encode_media(frames)
    assert (video.modality, video.num_frames, video.num_tokens) == ("video", 3, 3 * per_frame)
    picture = image(900, 300)
    still = model.encode_media(picture)
    assert still.num_tokens == image_token_count(picture.size, model.vision)
    assert json.loads(still.to_json())["num_tokens"] == still.num_tokens


@pytest.mark.parametrize(
    ("tower", "side", "per_frame"),
    [
        ("google/siglip-so400m-patch14-384", 384, 196),
        ("openai/clip-vit-large-patch14-336", 336, 144),
    ],
)
def test_full_size_towers_pool_video_frames_like_inst_it(
    tower: str, side: int, per_frame: int
) -> None:
    """The real towers' geometry on the meta device (no weights, no memory)."""
    from transformers import CONFIG_MAPPING, LlavaOnevisionConfig, Qwen2Config

    from instit.model.modeling import InstItLlavaModel

    table = dict(KNOWN_TOWERS[tower])
    vision = CONFIG_MAPPING[table.pop("model_type")](**table)
    text = Qwen2Config(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=8)
    siglip = "siglip" in tower
    config = LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        vision_feature_layer=-1 if siglip else -2,
        vision_feature_select_strategy="full" if siglip else "default",
        image_token_id=8,
        video_token_id=9,
    )
    with torch.device("meta"):
        model = InstItLlavaModel(config)
        out = model.get_video_features(torch.empty(1, 4, 3, side, side))
    assert tuple(out.pooler_output.shape) == (1, 4 * per_frame, 64)


# -- vision tower resolution -------------------------------------------------------------------


def test_tower_folder_relative_to_the_checkpoint_or_absolute(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    relative = read_checkpoint(checkpoints["qwen2-siglip"])
    assert (
        relative.tower_source == f"folder {checkpoints['qwen2-siglip'] / 'siglip-tiny-patch14-384'}"
    )

    moved = copy_checkpoint(checkpoints["qwen2-siglip"], tmp_path / "moved")
    tower = shutil.move(moved / "siglip-tiny-patch14-384", tmp_path / "towers" / "siglip")
    edit_json(moved / "config.json", mm_vision_tower=str(tower))
    assert read_checkpoint(moved).tower_source == f"folder {tower}"


def test_tower_hub_id_from_the_cache(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_checkpoint(checkpoints["vicuna-clip"], tmp_path / "ckpt")
    cache = tmp_path / "hub"
    _cache_repo(cache, "openai/clip-tiny", folder / "clip-vit-tiny-patch14-336", {"main": "c" * 40})
    shutil.rmtree(folder / "clip-vit-tiny-patch14-336")
    edit_json(folder / "config.json", mm_vision_tower="openai/clip-tiny")
    model = load(folder, cache_dir=cache, local_files_only=True)
    assert model.spec.tower_source == "hub openai/clip-tiny"
    assert model.module.config.vision_config.num_hidden_layers == 3


def _full_width_tower(folder: Path, arch: str) -> None:
    """Give the checkpoint a one-layer tower with the real tower's width (real shapes, small)."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    name = "openai/clip-vit-large-patch14-336" if arch == "vicuna-clip" else (
        "google/siglip-so400m-patch14-384"
    )  # fmt: skip
    table = {k: v for k, v in KNOWN_TOWERS[name].items() if k != "model_type"}
    table["num_hidden_layers"] = 1
    if arch == "vicuna-clip":
        tower = CLIPVisionModel(CLIPVisionConfig(**table))
    else:
        tower = SiglipVisionModel(SiglipVisionConfig(**table, vision_use_head=False))
    tensors = {n: t for n, t in read_tensors(folder).items() if not n.startswith(TOWER_PREFIX)}
    for name_, tensor in tower.state_dict().items():
        tensors[TOWER_PREFIX + name_.removeprefix("vision_model.")] = tensor.to(torch.bfloat16)
    hidden = table["hidden_size"]
    tensors["model.mm_projector.0.weight"] = torch.randn(64, hidden).to(torch.bfloat16) / 32
    write_tensors(folder, tensors)
    edit_json(folder / "config.json", mm_hidden_size=hidden)


@pytest.mark.parametrize(
    ("arch", "named", "known"),
    [
        # the released Vicuna config names a training-time path that exists nowhere
        (
            "vicuna-clip",
            "checkpoints/clip-vit-large-patch14-336",
            "openai/clip-vit-large-patch14-336",
        ),
        # a hub id that is not in the (offline) cache
        ("qwen2-siglip", "google/siglip-so400m-patch14-384", "google/siglip-so400m-patch14-384"),
    ],
)  # fmt: skip
def test_unreachable_tower_falls_back_to_known_towers_by_shape(
    checkpoints: dict[str, Path], tmp_path: Path, arch: str, named: str, known: str
) -> None:
    folder = copy_checkpoint(checkpoints[arch], tmp_path / "ckpt")
    _full_width_tower(folder, arch)
    edit_json(folder / "config.json", mm_vision_tower=named)
    model = load(folder, cache_dir=tmp_path / "empty-cache", local_files_only=True)
    assert model.spec.tower_source == f"built-in {known}"
    vision = model.module.config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers) == (KNOWN_TOWERS[known]["hidden_size"], 1)
    tokens = model.encode_media([image(200, 200)]).num_tokens
    assert tokens == (196 if arch == "qwen2-siglip" else 144)


def test_unresolvable_or_mismatched_tower_is_a_clear_error(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_checkpoint(checkpoints["vicuna-clip"], tmp_path / "ckpt")
    edit_json(folder / "config.json", mm_vision_tower="checkpoints/clip-vit-large-patch14-336")
    with pytest.raises(CheckpointError, match=r"unknown vision tower .*clip-vit-large"):
        read_checkpoint(folder, cache_dir=tmp_path / "empty", local_files_only=True)

    tower = folder / "clip-vit-tiny-patch14-336"
    config = read_json(tower / "config.json")
    config["vision_config"]["hidden_size"] = 48
    (tower / "config.json").write_text(json.dumps(config))
    edit_json(folder / "config.json", mm_vision_tower="clip-vit-tiny-patch14-336")
    with pytest.raises(CheckpointError, match="does not match the checkpoint's tower weights"):
        read_checkpoint(folder)


def test_spec_is_json_and_reads_only_headers(checkpoints: dict[str, Path]) -> None:
    spec = read_checkpoint(checkpoints["qwen2-siglip"])
    data = json.loads(spec.to_json())
    assert data["layout"] == "original"
    assert data["tower"] == "siglip"
    assert data["embedding_rows"] == 448
    assert "weight_map" not in data
    assert spec.text_model_type == "qwen2"


def test_known_tower_names_need_no_network(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the released Qwen2 config names google/siglip-so400m-patch14-384: its architecture is
    # built in, so an offline machine without HF_HUB_OFFLINE must not wait on the hub for it
    import huggingface_hub

    asked: list[object] = []

    def no_hub(*args: object, **kwargs: object) -> None:
        asked.append(args)
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    folder = copy_checkpoint(checkpoints["qwen2-siglip"], tmp_path / "ckpt")
    _full_width_tower(folder, "qwen2-siglip")
    edit_json(folder / "config.json", mm_vision_tower="google/siglip-so400m-patch14-384")
    spec = read_checkpoint(folder, local_files_only=False)
    assert spec.tower_source == "built-in google/siglip-so400m-patch14-384"
    assert asked == []
