"""Build the transformers model for a :class:`~instit.model.checkpoint.CheckpointSpec` and load it.

Loading goes through transformers' own ``from_pretrained`` with ``key_mapping``: the model is
created on the meta device and every tensor is streamed from its safetensors shard, renamed on the
fly (no second copy of the model, quantization and ``device_map`` for free). The renames from
LLaVA-NeXT's names are :data:`ORIGINAL_KEY_MAPPING`.

The vocabulary follows the reference: embedding and ``lm_head`` are cut to ``len(tokenizer)``
rows (Qwen: 152064 -> 151646) so the logits have the reference's width.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instit.errors import CheckpointError
from instit.prompting.templates import get_template

if TYPE_CHECKING:
    import torch

    from instit.model.checkpoint import CheckpointSpec
    from instit.model.modeling import InstItLlavaForConditionalGeneration
    from instit.model.processing import VisionSpec

__all__ = [
    "ORIGINAL_KEY_MAPPING",
    "TRANSFORMERS_KEY_MAPPING",
    "build_config",
    "checked_config",
    "load_module",
    "load_processor",
]

#: regex -> replacement from LLaVA-NeXT's weight names to transformers' LLaVA-OneVision names.
ORIGINAL_KEY_MAPPING: dict[str, str] = {
    r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
    r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
    r"^model\.(embed_tokens|layers|norm)\.": r"model.language_model.\1.",
}

#: regex -> replacement from the older transformers names (llava-hf's hub checkpoints,
#: transformers 5's ``save_pretrained``) to the current ones; current names pass unchanged.
TRANSFORMERS_KEY_MAPPING: dict[str, str] = {
    r"^language_model\.model\.": "model.language_model.",
    r"^language_model\.lm_head\.": "lm_head.",
    r"^(model\.)?vision_tower\.(vision_model\.)?": "model.vision_tower.",
    r"^multi_modal_projector\.": "model.multi_modal_projector.",
    r"^image_newline$": "model.image_newline",
}


def build_config(spec: CheckpointSpec, vocab_size: int) -> Any:
    """The ``LlavaOnevisionConfig`` for ``spec`` (text vocabulary = the checkpoint's rows).

    For the original layout the placeholders get ids ``vocab_size`` (image) and
    ``vocab_size + 1`` (video): outside the reference-sized vocabulary.
    """
    from transformers import CONFIG_MAPPING, LlavaOnevisionConfig

    text_type = spec.text_model_type
    text = CONFIG_MAPPING[text_type].from_dict(
        {**spec.text_config, "vocab_size": spec.embedding_rows}
    )
    vision = CONFIG_MAPPING[spec.vision_config["model_type"]].from_dict(spec.vision_config)
    if spec.layout == "original":
        image_id, video_id = vocab_size, vocab_size + 1
        projector_act = "gelu"
        projector_bias = True
    else:
        cfg = spec.config
        image_id = cfg.get("image_token_id", cfg.get("image_token_index"))
        video_id = cfg.get("video_token_id", cfg.get("video_token_index"))
        if video_id is None:  # LLaVA-NeXT has no video token: use one nothing else uses
            video_id = max(spec.embedding_rows, vocab_size) + 1
        projector_act = cfg.get("projector_hidden_act", "gelu")
        projector_bias = cfg.get("multimodal_projector_bias", True)
    return LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=image_id,
        video_token_id=video_id,
        projector_hidden_act=projector_act,
        multimodal_projector_bias=projector_bias,
        vision_feature_select_strategy=spec.vision_feature_select_strategy,
        vision_feature_layer=spec.vision_feature_layer,
        vision_aspect_ratio=spec.image_aspect_ratio,
        image_grid_pinpoints=[[h, w] for w, h in spec.grid_pinpoints],  # transformers: (h, w)
        tie_word_embeddings=bool(spec.text_config.get("tie_word_embeddings", False)),
    )


def checked_config(spec: CheckpointSpec, vocab_size: int) -> Any:
    """:func:`build_config`, with transformers' validation of every field (a string where a
    number or flag belongs, ``null``, a bad ``id2label`` ...) as a :class:`CheckpointError`
    naming the field."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import CONFIG_MAPPING
    from transformers.activations import ACT2FN

    file = spec.path / "config.json"
    try:
        config = build_config(spec, vocab_size)
        # the file as transformers' AutoConfig reads it (the tokenizer and plain users do)
        CONFIG_MAPPING[spec.config["model_type"]].from_dict(spec.config)
    except (
        StrictDataclassError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
    ) as exc:
        reason = f"{type(exc).__name__}: " + " ".join(str(exc).split())
        raise CheckpointError(
            f"{file} does not describe a model transformers can build ({reason}); fix that "
            "field or re-download the checkpoint"
        ) from exc
    for name, act in [
        ("hidden_act", config.text_config.hidden_act),
        ("vision_config.hidden_act", config.vision_config.hidden_act),
        ("projector_hidden_act", config.projector_hidden_act),
    ]:
        if not isinstance(act, str) or act not in ACT2FN:
            raise CheckpointError(
                f"{file}: {name} is {act!r}, not an activation transformers knows (such as "
                "'silu', 'gelu', 'gelu_pytorch_tanh', 'quick_gelu'); fix the field"
            )
    return config


@contextlib.contextmanager
def _quiet_progress(progress: bool) -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def parameter_names(spec: CheckpointSpec) -> list[str]:
    """The model's parameter names (transformers' names), from a weightless meta-device model."""
    import torch

    from instit.model.modeling import InstItLlavaForConditionalGeneration

    with torch.device("meta"):
        model = InstItLlavaForConditionalGeneration(checked_config(spec, spec.embedding_rows))
    return [name for name, _ in model.named_parameters()]


def load_module(
    spec: CheckpointSpec,
    vocab_size: int,
    *,
    dtype: torch.dtype,
    device: str,
    quantization_config: Any = None,
    attn_implementation: str = "sdpa",
    progress: bool = True,
    device_map: str | dict[str, int | str] | None = None,
    max_memory: dict[int | str, int | str] | None = None,
) -> InstItLlavaForConditionalGeneration:
    """Create the model and stream ``spec``'s weights into it; check names; size the vocabulary.

    ``device_map`` / ``max_memory`` (resolved by :func:`instit.model.placement.resolve_placement`)
    spread the model over several devices; otherwise it goes whole to ``device``.

    Raises :class:`CheckpointError` listing unexpected, missing or mis-shaped weights, and when the
    tokenizer has more tokens than the checkpoint has embedding rows.
    """
    from safetensors import SafetensorError

    from instit.model.modeling import InstItLlavaForConditionalGeneration

    if vocab_size > spec.embedding_rows:
        raise CheckpointError(
            f"the tokenizer has {vocab_size} tokens but the checkpoint only {spec.embedding_rows} "
            "embedding rows; the tokenizer does not belong to this checkpoint"
        )
    config = checked_config(spec, vocab_size)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "output_loading_info": True,
        "ignore_mismatched_sizes": True,  # reported (and refused) by _check_loading_info
        "use_safetensors": True,
    }
    kwargs["key_mapping"] = (
        ORIGINAL_KEY_MAPPING if spec.layout == "original" else TRANSFORMERS_KEY_MAPPING
    )
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs.update(device_map=device_map, max_memory=max_memory)
    elif device != "cpu":
        kwargs["device_map"] = {"": device}
    with _quiet_progress(progress):
        try:
            module, info = InstItLlavaForConditionalGeneration.from_pretrained(
                str(spec.path), **kwargs
            )
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(
                f"could not load the weights of {spec.path}: {exc}; check that the checkpoint "
                "is complete and matches its config.json"
            ) from exc
    _check_loading_info(spec, info)
    if spec.layout == "original" and vocab_size < spec.embedding_rows:
        _shrink_vocabulary(module, vocab_size)
    module.eval()
    return module


def _check_loading_info(spec: CheckpointSpec, info: dict[str, Any]) -> None:
    problems = []
    if info.get("unexpected_keys"):
        problems.append(f"unexpected weights {sorted(info['unexpected_keys'])[:20]}")
    if info.get("missing_keys"):
        problems.append(f"missing weights {sorted(info['missing_keys'])[:20]}")
    if info.get("mismatched_keys"):
        problems.append(f"weights with the wrong shape {sorted(info['mismatched_keys'])[:20]}")
    if problems:
        names = "transformers'" if spec.layout == "transformers" else "LLaVA-NeXT's"
        raise CheckpointError(
            f"checkpoint {spec.path} does not match the model its config.json describes: "
            + "; ".join(problems)
            + f". Use a checkpoint with {names} weight names, or fix its config.json"
        )


def _shrink_vocabulary(module: Any, vocab_size: int) -> None:
    """Keep the first ``vocab_size`` embedding / lm_head rows, as the reference's resize does.

    Row slices are views: no transient copy of the (large) matrices.
    """
    import torch

    embed = module.get_input_embeddings()
    embed.weight = torch.nn.Parameter(embed.weight.data[:vocab_size], requires_grad=False)
    embed.num_embeddings = vocab_size
    head = module.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.data[:vocab_size], requires_grad=False)
    head.out_features = vocab_size
    module.config.text_config.vocab_size = vocab_size
    module.model.vocab_size = vocab_size


# -- export ----------------------------------------------------------------------------------------


def _write_shards(state: dict[str, Any], folder: Any, shard_bytes: int) -> None:
    import json

    from safetensors.torch import save_file

    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map: dict[str, str] = {}
    for number, part in enumerate(shards, start=1):
        file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        save_file(
            {n: t.detach().contiguous() for n, t in part.items()},
            str(folder / file),
            metadata={"format": "pt"},
        )
        weight_map.update(dict.fromkeys(part, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def export_transformers(model: Any, folder: Any, shard_bytes: int = 4 * 1024**3) -> Any:
    """Write ``model`` (an :class:`~instit.InstIt`) as a plain LLaVA-OneVision checkpoint.

    Placeholder ids outside the vocabulary (the original layout keeps the reference's
    ``len(tokenizer)`` rows) become real tokens ``<image>``/``<video>``: the tokenizer gains them,
    the embedding and ``lm_head`` gain two zero rows and ``generation_config.json`` suppresses
    them, so the first ``len(tokenizer)`` logits are unchanged. ``"anyres"`` (no downscale) is
    written as ``anyres_max_<tiles of the largest pinpoint>``, which never downscales.
    """
    import copy
    import json

    import torch
    from tokenizers import AddedToken
    from transformers import AutoTokenizer, GenerationConfig

    from instit.errors import InstitValueError
    from instit.model.processing import anyres_max_patches

    if model.quantization is not None:
        raise InstitValueError(
            "a quantized model cannot be saved as a full-precision checkpoint; load it with "
            "quantization=None (for example on the CPU) and save that"
        )
    module = model.module
    config = copy.deepcopy(module.config)
    tokenizer = AutoTokenizer.from_pretrained(str(model.spec.path))  # a fresh copy to extend
    rows = module.get_input_embeddings().weight.shape[0]
    state = dict(module.state_dict())
    needed = max(config.image_token_id, config.video_token_id) + 1
    if needed > rows:
        if (config.image_token_id, config.video_token_id) != (rows, rows + 1):
            raise InstitValueError(
                f"placeholder ids {config.image_token_id}/{config.video_token_id} do not follow "
                f"the {rows}-token vocabulary; this model cannot be exported"
            )
        tokenizer.add_tokens(
            [AddedToken("<image>", special=True), AddedToken("<video>", special=True)],
            special_tokens=True,
        )
        for name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
            weight = state[name]
            state[name] = torch.cat((weight, weight.new_zeros(2, weight.shape[1])))
        config.text_config.vocab_size = rows + 2
    if anyres_max_patches(config.vision_aspect_ratio) is None:
        tile = config.vision_config.image_size
        largest = max(h * w for h, w in config.image_grid_pinpoints) // (tile * tile)
        config.vision_aspect_ratio = f"anyres_max_{largest}"
    config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    folder.mkdir(parents=True, exist_ok=True)
    _write_shards(state, folder, shard_bytes)
    config.save_pretrained(str(folder))
    generation = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=model.tokenizer.eos_token_id,
        pad_token_id=model._pad_id(),
        suppress_tokens=[config.image_token_id, config.video_token_id],
    )
    generation.save_pretrained(str(folder))
    tokenizer.chat_template = get_template(model.template).chat_template()
    tokenizer.save_pretrained(str(folder))
    tower_tokens = module.model.vision_tower.embeddings.num_positions
    for name, content in _processor_configs(model.vision, config, tower_tokens).items():
        (folder / name).write_text(json.dumps(content, indent=1))
    (folder / "README.md").write_text(_model_card(model.vision.tower))
    return folder


def _processor_configs(vision: VisionSpec, config: Any, tower_tokens: int) -> dict[str, Any]:
    """``preprocessor_config.json``, ``video_preprocessor_config.json``, ``processor_config.json``.

    ``tower_tokens`` is the tower's output length *including* CLIP's CLS token (577 for
    CLIP-336, 729 for SigLIP-384): ``LlavaOnevisionProcessor`` counts ``num_image_tokens`` per
    view and removes one token again when ``vision_feature_select_strategy`` is ``"default"``
    (CLS dropped), exactly as the model does with the features.
    """
    side = vision.image_size
    # pixels: resize bicubic, rescale to [0, 1], normalise with the tower's mean/std, RGB
    pixels = {
        "processor_class": "LlavaOnevisionProcessor",
        "do_resize": True,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(vision.mean),
        "image_std": list(vision.std),
        "do_convert_rgb": True,
    }
    image = {
        # the PIL class reproduces the reference's bicubic resizing exactly; AutoImageProcessor
        # still resolves it to the torchvision class when torchvision is installed (see
        # load_processor)
        "image_processor_type": "LlavaOnevisionImageProcessorPil",
        **pixels,
        "size": {"height": side, "width": side},
        "do_pad": True,
        "image_grid_pinpoints": [list(p) for p in config.image_grid_pinpoints],
    }
    # video frames go through the tower's own processor in the reference: SigLIP squashes to
    # S x S, CLIP resizes the shortest edge to S and crops the centre
    frame = (
        {"size": {"shortest_edge": side}, "do_center_crop": True}
        if vision.tower == "clip"
        else {"size": {"height": side, "width": side}, "do_center_crop": False}
    )
    video = {
        "video_processor_type": "LlavaOnevisionVideoProcessor",
        **pixels,
        **frame,
        "crop_size": {"height": side, "width": side},
        "do_sample_frames": False,
    }
    processor = {
        "processor_class": "LlavaOnevisionProcessor",
        "num_image_tokens": tower_tokens,
        "vision_feature_select_strategy": config.vision_feature_select_strategy,
        "vision_aspect_ratio": config.vision_aspect_ratio,
        "image_token": "<image>",
        "video_token": "<video>",
    }
    return {
        "preprocessor_config.json": image,
        "video_preprocessor_config.json": video,
        "processor_config.json": processor,
    }


def _model_card(tower: str) -> str:
    """The exported folder's ``README.md`` (how to run it with plain transformers, its limits)."""
    from importlib import resources
    from string import Template

    text = resources.files("instit").joinpath("assets", "export_README.md").read_text()
    frames = "squashed to S x S" if tower == "siglip" else "shortest edge to S, centre crop"
    return Template(text).substitute(video_frames=frames)


def load_processor(name_or_path: str | os.PathLike[str]) -> Any:
    """transformers' ``LlavaOnevisionProcessor`` for an exported checkpoint, PIL image backend.

    Equivalent to ``AutoProcessor.from_pretrained(path, image_processor=
    AutoImageProcessor.from_pretrained(path, backend="pil"))``: token ids, pixel values and
    logits are then the reference's (a plain ``AutoProcessor.from_pretrained(path)`` uses the
    torchvision resampler whenever torchvision is installed). Needs torchvision, which
    transformers' video processor requires.
    """
    from instit.errors import DependencyError

    path = Path(name_or_path).expanduser()
    if path.is_dir() and not (path / "processor_config.json").is_file():
        raise CheckpointError(
            f"{path} has no processor_config.json; pass a folder written by instit convert "
            "(or InstIt.save_pretrained); load original checkpoints with InstIt.from_pretrained"
        )
    if not path.is_dir() and path.exists():
        raise CheckpointError(f"{path} is a file; pass the exported checkpoint's folder")
    if importlib.util.find_spec("torchvision") is None:
        raise DependencyError(
            "transformers' LLaVA-OneVision processor needs torchvision for its video processor; "
            'pip install "instit[processor]" (or the torchvision build matching your torch)'
        )
    from transformers import AutoImageProcessor, AutoProcessor

    source = str(path) if path.is_dir() else str(name_or_path)
    try:
        image_processor = AutoImageProcessor.from_pretrained(source, backend="pil")
        return AutoProcessor.from_pretrained(source, image_processor=image_processor)
    except OSError as exc:
        raise CheckpointError(
            f"could not load the processor of {source} ({exc}); pass an exported checkpoint "
            "folder or hub id"
        ) from exc
