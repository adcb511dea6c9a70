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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from instit.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from instit.model.checkpoint import CheckpointSpec
    from instit.model.modeling import InstItLlavaForConditionalGeneration

__all__ = ["ORIGINAL_KEY_MAPPING", "build_config", "load_module"]

#: regex -> replacement from LLaVA-NeXT's weight names to transformers' LLaVA-OneVision names.
ORIGINAL_KEY_MAPPING: dict[str, str] = {
    r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
    r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
    r"^model\.(embed_tokens|layers|norm)\.": r"model.language_model.\1.",
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
        image_grid_pinpoints=[list(p) for p in spec.grid_pinpoints],
        tie_word_embeddings=bool(spec.text_config.get("tie_word_embeddings", False)),
    )


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


def load_module(
    spec: CheckpointSpec,
    vocab_size: int,
    *,
    dtype: torch.dtype,
    device: str,
    quantization_config: Any = None,
    attn_implementation: str = "sdpa",
    progress: bool = True,
) -> InstItLlavaForConditionalGeneration:
    """Create the model and stream ``spec``'s weights into it; check names; size the vocabulary.

    Raises :class:`CheckpointError` listing unexpected, missing or mis-shaped weights, and when the
    tokenizer has more tokens than the checkpoint has embedding rows.
    """
    from instit.model.modeling import InstItLlavaForConditionalGeneration

    if vocab_size > spec.embedding_rows:
        raise CheckpointError(
            f"the tokenizer has {vocab_size} tokens but the checkpoint only {spec.embedding_rows} "
            "embedding rows; the tokenizer does not belong to this checkpoint"
        )
    config = build_config(spec, vocab_size)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "output_loading_info": True,
        "use_safetensors": True,
    }
    if spec.layout == "original":
        kwargs["key_mapping"] = ORIGINAL_KEY_MAPPING
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device != "cpu":
        kwargs["device_map"] = {"": device}
    with _quiet_progress(progress):
        try:
            module, info = InstItLlavaForConditionalGeneration.from_pretrained(
                str(spec.path), **kwargs
            )
        except (OSError, ValueError, RuntimeError) as exc:
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
