"""The transformers model instit runs: LLaVA-OneVision with the reference's exact visual path.

:class:`InstItLlavaForConditionalGeneration` is ``LlavaOnevisionForConditionalGeneration`` with
three targeted changes, each one measured against the reference's golden outputs:

* **Feature packing** follows LLaVA-NeXT's ``spatial_unpad`` with the arithmetic of
  :mod:`instit.model.processing` (the same functions count the visual tokens, so counts and
  features cannot disagree): the unpadded grid size is truncated (``int(orig * scale)``) where
  transformers rounds to 7 decimals, and plain ``"anyres"`` (no ``_max_N`` downscale, the
  Vicuna checkpoint) is supported.
* **Video** features are pooled exactly as transformers does (projector, then bilinear
  ``ceil(h/2) x ceil(w/2)``) but *without* the one newline token per video that transformers
  appends: the reference's ``mm_newline_position="no_token"``.
* **Placeholder ids** may lie outside the (reference-sized) vocabulary: the checkpoint keeps the
  reference's logits width ``len(tokenizer)`` and the ``<image>``/``<video>`` placeholders get ids
  ``len(tokenizer)`` and ``len(tokenizer) + 1``; their rows are never looked up (their embedding is
  replaced by visual features anyway).

Everything else (towers, projector, language model, generation, quantization) is transformers'.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration
from transformers.models.llava_onevision.modeling_llava_onevision import (
    LlavaOnevisionModel,
    LlavaOnevisionPreTrainedModel,
)

from instit.model.processing import (
    anyres_max_patches,
    anyres_max_size,
    select_best_resolution,
    unpadded_grid,
)

__all__ = ["InstItLlavaForConditionalGeneration", "InstItLlavaModel"]


def _placeholder_safe_ids(module: nn.Embedding, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: map placeholder ids beyond the vocabulary to 0 before the lookup."""
    (ids,) = args
    return (ids.masked_fill(ids >= module.num_embeddings, 0),)


class InstItLlavaModel(LlavaOnevisionModel):
    """``LlavaOnevisionModel`` with LLaVA-NeXT's unpadding and the newline-free video path."""

    def __init__(self, config: LlavaOnevisionConfig) -> None:
        super().__init__(config)
        self.language_model.get_input_embeddings().register_forward_pre_hook(_placeholder_safe_ids)

    def pack_image_features(
        self,
        image_features: list[torch.Tensor],
        image_sizes: torch.Tensor,
        image_newline: torch.Tensor | None = None,
        vision_aspect_ratio: str | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Unpad, optionally downscale (``anyres_max_N``) and append one newline per grid row.

        ``image_sizes`` rows are ``(height, width)`` (transformers' convention).
        """
        aspect = vision_aspect_ratio or self.config.vision_aspect_ratio
        max_patches = anyres_max_patches(aspect)
        tile = self.config.vision_config.image_size
        side = tile // self.config.vision_config.patch_size
        # transformers stores pinpoints as (height, width); LLaVA-NeXT's arithmetic uses (w, h)
        pinpoints = [(int(w), int(h)) for h, w in self.config.image_grid_pinpoints]
        packed: list[torch.Tensor] = []
        for feature, size in zip(image_features, image_sizes, strict=True):
            height, width = (int(v) for v in size)
            if feature.shape[0] == 1:
                merged = feature[0]
                if image_newline is not None:
                    merged = torch.cat((merged, image_newline[None].to(merged)), dim=0)
                packed.append(merged)
                continue
            base, tiles = feature[0], feature[1:]
            best_w, best_h = select_best_resolution((width, height), pinpoints)
            rows, cols = best_h // tile, best_w // tile
            grid = tiles.view(rows, cols, side, side, -1).permute(4, 0, 2, 1, 3).contiguous()
            grid = grid.flatten(1, 2).flatten(2, 3)
            keep_rows, keep_cols = unpadded_grid((width, height), (grid.shape[1], grid.shape[2]))
            grid = grid[:, keep_rows, keep_cols]
            if max_patches is not None:
                resized = anyres_max_size((grid.shape[1], grid.shape[2]), side, max_patches)
                if resized is not None:
                    grid = nn.functional.interpolate(grid[None], list(resized), mode="bilinear")[0]
            if image_newline is not None:
                newline = image_newline[:, None, None].expand(*grid.shape[:-1], 1).to(grid)
                grid = torch.cat((grid, newline), dim=-1)
            packed.append(torch.cat((base, grid.flatten(1, 2).transpose(0, 1)), dim=0))
        device = image_features[0].device
        lengths = torch.tensor([p.shape[0] for p in packed], dtype=torch.long, device=device)
        return packed, lengths

    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """transformers' video features (projector, bilinear 2x2 pooling), no video newline."""
        return_dict = kwargs.pop("return_dict", True)
        outputs = super().get_video_features(
            pixel_values_videos,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            return_dict=True,
            **kwargs,
        )
        outputs.pooler_output = outputs.pooler_output[:, :-1]
        return outputs if return_dict else outputs.to_tuple()


class InstItLlavaForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    """LLaVA-OneVision for generation, built on :class:`InstItLlavaModel`."""

    # Kept whole on one device by a device_map (transformers adds its encoder/decoder layers):
    # the projector's two matrices run back to back on every visual token.
    _no_split_modules: ClassVar[list[str]] = ["LlavaOnevisionMultiModalProjector"]

    def __init__(self, config: LlavaOnevisionConfig) -> None:
        # Not super().__init__: that would build (and initialise) a second, stock inner model.
        LlavaOnevisionPreTrainedModel.__init__(self, config)
        self.model = InstItLlavaModel(config)
        text = config.text_config
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        self.post_init()
