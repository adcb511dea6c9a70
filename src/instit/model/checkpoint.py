"""Read a checkpoint folder: its layout, settings, weight index and vision tower architecture.

Two on-disk layouts are understood:

* ``"original"`` - LLaVA-NeXT's own (both Inst-It checkpoints): ``config.json`` is the text
  model's config (``model_type`` ``qwen2``/``llama``) plus LLaVA's ``mm_*`` fields, weights are
  named ``model.layers.*``, ``model.mm_projector.*``, ``model.image_newline``,
  ``model.vision_tower.vision_tower.*``; the vision tower's *architecture* comes from
  ``mm_vision_tower`` (its weights come from the checkpoint).
* ``"transformers"`` - transformers' LLaVA-OneVision / LLaVA-NeXT classes (``model_type``
  ``llava_onevision`` / ``llava_next``: llava-hf baselines and :func:`instit.model.convert`
  output); preprocessing settings come from ``preprocessor_config.json``.

Nothing here touches weights beyond the safetensors headers, so reading a 16 GB checkpoint's spec
costs milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from instit import _json
from instit._files import inside
from instit.errors import CheckpointError

__all__ = [
    "HUB_ALLOW_PATTERNS",
    "HUB_IGNORE_PATTERNS",
    "KNOWN_TOWERS",
    "CheckpointSpec",
    "TowerGeometry",
    "read_checkpoint",
    "resolve_vision_tower",
    "snapshot",
    "stored_dtype",
    "tensor_index",
]

ORIGINAL_PREFIX = "model.vision_tower.vision_tower.vision_model."
# transformers' layouts name the tower ``model.vision_tower.`` (instit's export),
# ``vision_tower.`` (transformers 5 save_pretrained) or ``vision_tower.vision_model.`` (llava-hf)
_PATCH_EMBEDDING = "embeddings.patch_embedding.weight"
LLAVA_TYPES = ("llava_onevision", "llava_next")

# Architectures of the towers the Inst-It checkpoints were trained from, so a stale or unreachable
# ``mm_vision_tower`` still loads offline. Checked against the checkpoint's tensors before use.
KNOWN_TOWERS: dict[str, dict[str, Any]] = {
    "google/siglip-so400m-patch14-384": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    },
    "openai/clip-vit-large-patch14-336": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": 768,
    },
}

_TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
]

#: What :func:`snapshot` downloads from the hub: configs, safetensors, tokenizer files and the
#: vision tower's config ...
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", *_TOKENIZER_FILES, "*/config.json"]
#: ... and never pickles (``pytorch_model.bin``, ``training_args.bin``, optimizer states).
HUB_IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl"]


@dataclass(frozen=True)
class TowerGeometry:
    """What the checkpoint's own vision weights say about the tower."""

    kind: Literal["siglip", "clip"]
    hidden_size: int
    intermediate_size: int
    num_layers: int
    patch_size: int
    patches_per_side: int


@dataclass(frozen=True)
class CheckpointSpec:
    """Everything instit needs to know about a checkpoint before building the model.

    ``grid_pinpoints`` are ``(width, height)`` pairs, LLaVA-NeXT's convention, whatever the
    layout (transformers' configs store them as ``(height, width)``).
    """

    path: Path
    layout: Literal["original", "transformers"]
    config: dict[str, Any] = field(repr=False)
    text_config: dict[str, Any] = field(repr=False)
    vision_config: dict[str, Any] = field(repr=False)
    tower: Literal["siglip", "clip"]
    tower_source: str
    image_aspect_ratio: str
    grid_pinpoints: tuple[tuple[int, int], ...] = field(repr=False)
    vision_feature_layer: int
    vision_feature_select_strategy: Literal["default", "full"]
    embedding_rows: int
    context_length: int
    weight_map: dict[str, str] = field(repr=False)
    preprocessor: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text_model_type(self) -> str:
        """``"qwen2"`` or ``"llama"`` (the language model's ``model_type``)."""
        return str(self.text_config["model_type"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (paths as strings, no weight map)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["grid_pinpoints"] = [list(p) for p in self.grid_pinpoints]
        data.pop("weight_map")
        return data

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=1)


# -- files -----------------------------------------------------------------------------------------


def snapshot(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Return a local folder for ``name_or_path``: the folder itself, or a hub snapshot.

    Downloads only configs, safetensors shards, tokenizer files and the vision-tower folder;
    never ``*.bin`` (pickles) or ``training_args.bin``.
    """
    from instit._files import looks_like_local_path, missing_path

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the checkpoint folder (or a hub id) instead")
    text = str(name_or_path)
    if looks_like_local_path(text):
        raise CheckpointError(
            missing_path(path, "checkpoint folder")
            + " (a hub id looks like 'Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B')"
        )
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            text,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(local_files_only),
            allow_patterns=HUB_ALLOW_PATTERNS,
            ignore_patterns=HUB_IGNORE_PATTERNS,
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, auth ...)
        raise CheckpointError(
            f"could not get checkpoint {text!r} from the Hugging Face hub ({exc}); check the id "
            "and your network, or download it once and pass the local folder"
        ) from exc
    return Path(folder)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path.name} is missing in {path.parent}; pass a complete checkpoint folder"
        ) from None
    data = _json.loads(text, str(path), error=CheckpointError, fix="; re-download it")
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} holds a JSON {type(data).__name__}, not an object of settings; re-download it"
        )
    return data


def _shard_root(folder: Path) -> Path:
    """Where ``folder``'s shards may live: the folder, or for a hub cache snapshot
    (``models--o--n/snapshots/<commit>``, whose files link to ``models--o--n/blobs``) the repo
    folder."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent
    return folder


def _shard_path(folder: Path, shard: str) -> Path:
    """``folder / shard``, refusing a name that leaves the folder (absolute, ``..``, symlink)."""
    path = folder / shard
    escapes = Path(shard).is_absolute() or ".." in Path(shard).parts
    if escapes or not inside(path, _shard_root(folder)):
        raise CheckpointError(
            f"the weights of {folder} name shard {shard!r}, which leaves the checkpoint folder "
            "(absolute path, '..' or a symlink pointing elsewhere); refusing to read it: put "
            "the shard files themselves into the folder"
        )
    return path


@contextlib.contextmanager
def _open_shard(folder: Path, shard: str) -> Iterator[Any]:
    """``safe_open`` one shard of ``folder``; a damaged file's ``SafetensorError`` becomes a
    :class:`CheckpointError` naming it."""
    from safetensors import SafetensorError, safe_open

    path = _shard_path(folder, shard)
    try:
        with safe_open(str(path), framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"shard {path} is not a readable safetensors file ({exc}); it is truncated, empty "
            "or not safetensors: download it again"
        ) from exc


def tensor_index(folder: Path) -> dict[str, str]:
    """Map every tensor name to its shard file, checking that shards and index entries agree."""
    index_file = folder / "model.safetensors.index.json"
    if index_file.exists():
        weight_map = _read_json(index_file).get("weight_map") or {}
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise CheckpointError(
                f"{index_file}: weight_map must map tensor names to shard file names; "
                "re-download the checkpoint"
            )
        weight_map = dict(weight_map)
        if not weight_map:
            raise CheckpointError(f"{index_file} has no weight_map; re-download the checkpoint")
    elif (folder / "model.safetensors").exists():
        weight_map = {}
    else:
        found = sorted(p.name for p in folder.glob("*.bin"))
        hint = f" (found pickle files {found}: convert them to safetensors)" if found else ""
        raise CheckpointError(
            f"no safetensors weights in {folder}{hint}; a checkpoint needs model.safetensors or "
            "model.safetensors.index.json with its shards"
        )
    shards = sorted(set(weight_map.values())) or ["model.safetensors"]
    missing = [s for s in shards if not _shard_path(folder, s).exists()]
    if missing:
        raise CheckpointError(
            f"checkpoint {folder} is missing shard file(s) {missing} named in its index; "
            "download the complete checkpoint"
        )
    located: dict[str, str] = {}
    for shard in shards:
        with _open_shard(folder, shard) as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open handles are not mappings
                located[name] = shard
    if not weight_map:
        return located
    absent = sorted(n for n, s in weight_map.items() if located.get(n) != s)
    if absent:
        raise CheckpointError(
            f"{len(absent)} tensor(s) listed in model.safetensors.index.json are not in their "
            f"shard: {absent[:10]}; the download is incomplete or the index is stale"
        )
    unlisted = sorted(set(located) - set(weight_map))
    if unlisted:
        raise CheckpointError(
            f"{len(unlisted)} tensor(s) in the shards have no entry in "
            f"model.safetensors.index.json: {unlisted[:10]}; the index is stale, re-download it"
        )
    return weight_map


def _shape(folder: Path, weight_map: dict[str, str], name: str) -> list[int]:
    with _open_shard(folder, weight_map[name]) as handle:
        return list(handle.get_slice(name).get_shape())


# -- vision tower ----------------------------------------------------------------------------------


def _read_tower_geometry(folder: Path, weight_map: dict[str, str], prefix: str) -> TowerGeometry:
    names = [n for n in weight_map if n.startswith(prefix)]
    if not names:
        raise CheckpointError(
            f"checkpoint {folder} has no vision tower weights ({prefix}*); Inst-It checkpoints "
            "carry their fine-tuned tower, so this checkpoint is incomplete or not a LLaVA model"
        )
    kind: Literal["siglip", "clip"] = (
        "clip" if f"{prefix}embeddings.class_embedding" in weight_map else "siglip"
    )
    patch = _shape(folder, weight_map, f"{prefix}embeddings.patch_embedding.weight")
    positions = _shape(folder, weight_map, f"{prefix}embeddings.position_embedding.weight")[0]
    fc1 = _shape(folder, weight_map, f"{prefix}encoder.layers.0.mlp.fc1.weight")
    layers = {
        int(m.group(1))
        for n in names
        if (m := re.match(rf"{re.escape(prefix)}encoder\.layers\.(\d+)\.", n))
    }
    side = math.isqrt(positions - (1 if kind == "clip" else 0))
    return TowerGeometry(
        kind=kind,
        hidden_size=patch[0],
        intermediate_size=fc1[0],
        num_layers=max(layers) + 1,
        patch_size=patch[-1],
        patches_per_side=side,
    )


def _vision_part(file: Path) -> dict[str, Any]:
    """The vision config inside a full SiglipModel/CLIPModel config file, or the config itself."""
    config = _read_json(file)
    return dict(_check_settings(config.get("vision_config", config), file))


def _hub_tower_config(
    name: str, cache_dir: str | Path | None, local_files_only: bool | None
) -> dict[str, Any] | None:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return None
    from huggingface_hub import hf_hub_download

    try:
        file = hf_hub_download(
            name, "config.json", cache_dir=cache_dir, local_files_only=bool(local_files_only)
        )
    except Exception:  # offline, unknown repo, gated: fall back to the built-in table
        return None
    return _vision_part(Path(file))


def resolve_vision_tower(
    name: str,
    checkpoint: Path,
    geometry: TowerGeometry,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> tuple[dict[str, Any], str]:
    """Find the tower architecture named by ``mm_vision_tower``; return ``(config, source)``.

    Tried in order: a local folder (absolute, or relative to the checkpoint); a name in
    :data:`KNOWN_TOWERS` (the Inst-It towers: no network needed, same config as the hub's); a hub
    id (only its ``config.json``); the built-in :data:`KNOWN_TOWERS` matched by the checkpoint's
    tensor shapes (for stale training paths such as ``checkpoints/clip-vit-large-patch14-336``).
    The result is checked against the tensors and its layer count set to the checkpoint's.
    """
    config: dict[str, Any] | None = None
    source = ""
    for candidate in (Path(name).expanduser(), checkpoint / name):
        if (candidate / "config.json").is_file():
            config, source = (
                _vision_part(candidate / "config.json"),
                f"folder {candidate}",
            )
            break
    if config is None and name in KNOWN_TOWERS:
        config, source = dict(KNOWN_TOWERS[name]), f"built-in {name}"
    if config is None:
        config = _hub_tower_config(name, cache_dir, local_files_only)
        source = f"hub {name}" if config is not None else ""
    if config is None:
        for known, table in KNOWN_TOWERS.items():
            if _matches(table, geometry):
                config, source = dict(table), f"built-in {known}"
                break
    if config is None:
        raise CheckpointError(
            f"unknown vision tower {name!r}: no folder, hub config or built-in architecture "
            f"matches the checkpoint's tower ({geometry}); put the tower's config.json in a "
            "folder and set mm_vision_tower in config.json to it"
        )
    if not _matches(config, geometry):
        raise CheckpointError(
            f"vision tower {name!r} ({source}) does not match the checkpoint's tower weights "
            f"({geometry}); point mm_vision_tower at the tower this checkpoint was trained with"
        )
    config["model_type"] = f"{geometry.kind}_vision_model"
    config["num_hidden_layers"] = geometry.num_layers
    return config, source


def _matches(config: dict[str, Any], geometry: TowerGeometry) -> bool:
    kind = str(config.get("model_type", geometry.kind))
    return (
        kind.startswith(geometry.kind)
        and config.get("hidden_size") == geometry.hidden_size
        and config.get("intermediate_size", geometry.intermediate_size)
        == geometry.intermediate_size
        and config.get("patch_size") == geometry.patch_size
        and int(config.get("image_size", 0)) // geometry.patch_size == geometry.patches_per_side
        and "num_attention_heads" in config
    )


# -- the checkpoint --------------------------------------------------------------------------------

#: Settings that must be numbers wherever they appear (text, vision or top-level config).
_NUMBER_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "vocab_size", "rms_norm_eps",
    "layer_norm_eps", "rope_theta", "image_size", "patch_size", "projection_dim",
    "tokenizer_model_max_length", "mm_vision_select_layer", "mm_hidden_size",
    "image_token_id", "image_token_index", "video_token_id", "video_token_index",
    "head_dim", "attention_dropout", "initializer_range",
)  # fmt: skip


#: Of those, the ones that may not be ``null`` either.
_REQUIRED_NUMBERS = frozenset(
    {
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "max_position_embeddings", "rms_norm_eps", "layer_norm_eps", "rope_theta",
        "image_size", "patch_size", "vocab_size",
    }
)  # fmt: skip


def _check_settings(config: Any, file: Path, where: str = "") -> dict[str, Any]:
    """``config`` (a JSON object) with every :data:`_NUMBER_FIELDS` entry present a number
    (``null`` allowed where transformers has a default)."""
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{file}: {where.rstrip('.') or 'the config'} is a JSON {type(config).__name__}, "
            "not an object of settings; re-download the checkpoint or fix the file"
        )
    for name in _NUMBER_FIELDS:
        value = config.get(name)
        if value is None and not (name in config and name in _REQUIRED_NUMBERS):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CheckpointError(
                f"{file}: {where}{name} is {value!r}, not a number; fix the field in the file "
                "or re-download the checkpoint"
            )
    return config


def stored_dtype(folder: Path) -> str:
    """The dtype ``folder``'s weights are stored in per its config.json (``"float32"`` if unsaid).

    Only ``bfloat16``, ``float16`` and ``float32`` are returned; anything else reads as float32.
    """
    config = _read_json(folder / "config.json")
    stored = config.get("torch_dtype") or config.get("dtype")
    return stored if stored in ("bfloat16", "float16", "float32") else "float32"


_LLAVA_KEYS = {
    "add_faster_video", "add_time_instruction", "faster_token_stride", "force_sample",
    "image_aspect_ratio", "image_crop_resolution", "image_grid_pinpoints", "image_split_resolution",
    "pos_skipping_range", "tokenizer_model_max_length", "tokenizer_padding_side", "use_mm_proj",
    "use_pos_skipping", "vision_tower_pretrained", "architectures", "_name_or_path",
}  # fmt: skip


def read_checkpoint(
    folder: str | Path,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> CheckpointSpec:
    """Read ``folder``'s config, weight index and vision tower into a :class:`CheckpointSpec`."""
    folder = Path(folder)
    root = _shard_root(folder)
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.is_symlink() and not inside(entry, root):
            raise CheckpointError(
                f"{entry} is a link leading out of the checkpoint folder {folder}; instit reads "
                "only files inside it: copy the file into the folder"
            )
    config = _check_settings(_read_json(folder / "config.json"), folder / "config.json")
    model_type = config.get("model_type")
    weight_map = tensor_index(folder)
    if model_type in LLAVA_TYPES:
        return _read_transformers(folder, config, weight_map)
    if model_type not in ("qwen2", "llama") or "mm_vision_tower" not in config:
        raise CheckpointError(
            f"unknown architecture in {folder}/config.json (model_type={model_type!r}); instit "
            "loads LLaVA-NeXT checkpoints (qwen2/llama with mm_* fields) and transformers' "
            "llava_onevision / llava_next checkpoints"
        )
    if "lm_head.weight" not in weight_map or "model.embed_tokens.weight" not in weight_map:
        raise CheckpointError(
            f"{folder} lacks model.embed_tokens.weight or lm_head.weight; the checkpoint is "
            "incomplete (re-download it)"
        )
    geometry = _read_tower_geometry(folder, weight_map, ORIGINAL_PREFIX)
    vision, source = resolve_vision_tower(
        str(config["mm_vision_tower"]),
        folder,
        geometry,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    if geometry.kind == "siglip":
        # LLaVA-NeXT deletes SigLIP's last layer and reads the last remaining hidden state.
        layer, strategy = -1, "full"
        vision["vision_use_head"] = False
    else:
        layer = int(config.get("mm_vision_select_layer", -2))
        strategy = (
            "default" if config.get("mm_vision_select_feature", "patch") == "patch" else "full"
        )
    aspect = str(config.get("image_aspect_ratio", "anyres"))
    if not aspect.startswith("anyres"):
        raise CheckpointError(
            f"image_aspect_ratio {aspect!r} is not supported (instit implements LLaVA-NeXT's "
            "anyres / anyres_max_N); set it to 'anyres' in config.json"
        )
    merge = str(config.get("mm_patch_merge_type", "spatial_unpad"))
    if merge != "spatial_unpad":
        raise CheckpointError(
            f"mm_patch_merge_type {merge!r} is not supported (only 'spatial_unpad', as in the "
            "Inst-It checkpoints)"
        )
    text = {k: v for k, v in config.items() if not k.startswith("mm_") and k not in _LLAVA_KEYS}
    text["vocab_size"] = _shape(folder, weight_map, "model.embed_tokens.weight")[0]
    from instit.model.processing import parse_grid_pinpoints

    pinpoints = parse_grid_pinpoints(config.get("image_grid_pinpoints"), int(vision["image_size"]))
    return CheckpointSpec(
        path=folder,
        layout="original",
        config=config,
        text_config=text,
        vision_config=vision,
        tower=geometry.kind,
        tower_source=source,
        image_aspect_ratio=aspect,
        grid_pinpoints=pinpoints,
        vision_feature_layer=layer,
        vision_feature_select_strategy=strategy,
        embedding_rows=text["vocab_size"],
        context_length=int(
            config.get("tokenizer_model_max_length") or config.get("max_position_embeddings", 4096)
        ),
        weight_map=weight_map,
    )


def _read_transformers(
    folder: Path, config: dict[str, Any], weight_map: dict[str, str]
) -> CheckpointSpec:
    file = folder / "config.json"
    text = dict(_check_settings(config.get("text_config") or {}, file, "text_config."))
    vision = dict(_check_settings(config.get("vision_config") or {}, file, "vision_config."))
    if text.get("model_type") not in ("qwen2", "llama") or not vision:
        raise CheckpointError(
            f"unsupported {config['model_type']} checkpoint in {folder}: text model "
            f"{text.get('model_type')!r}; instit supports qwen2 and llama language models"
        )
    prefix = next(
        (n.removesuffix(_PATCH_EMBEDDING) for n in weight_map if n.endswith(_PATCH_EMBEDDING)),
        "vision_tower.",
    )
    geometry = _read_tower_geometry(folder, weight_map, prefix)
    preprocessor_file = folder / "preprocessor_config.json"
    preprocessor = _read_json(preprocessor_file) if preprocessor_file.exists() else {}
    pinpoints = config.get("image_grid_pinpoints") or preprocessor.get("image_grid_pinpoints") or []
    if not isinstance(pinpoints, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)
        for pair in pinpoints
    ):
        raise CheckpointError(
            f"{folder}/config.json: image_grid_pinpoints {pinpoints!r} is not a list of "
            "[height, width] pairs; fix the field or re-download the checkpoint"
        )
    if config["model_type"] == "llava_next":
        aspect = "anyres"
    else:
        aspect = str(config.get("vision_aspect_ratio") or "anyres_max_9")
    layer = config.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise CheckpointError(
            f"vision_feature_layer {layer!r} (several layers) is not supported; use one layer"
        )
    embed = next((n for n in weight_map if n.endswith("embed_tokens.weight")), None)
    if embed is None or not any(n.endswith("lm_head.weight") for n in weight_map):
        raise CheckpointError(
            f"{folder} lacks the language model's embed_tokens or lm_head weights; re-download it"
        )
    return CheckpointSpec(
        path=folder,
        layout="transformers",
        config=config,
        text_config=text,
        vision_config=vision,
        tower=geometry.kind,
        tower_source="config.json vision_config",
        image_aspect_ratio=aspect,
        grid_pinpoints=tuple((int(w), int(h)) for h, w in pinpoints),  # stored as (h, w)
        vision_feature_layer=layer,
        vision_feature_select_strategy=config.get("vision_feature_select_strategy", "default"),
        embedding_rows=_shape(folder, weight_map, embed)[0],
        context_length=int(text.get("max_position_embeddings", 4096)),
        weight_map=weight_map,
        preprocessor=preprocessor,
    )
