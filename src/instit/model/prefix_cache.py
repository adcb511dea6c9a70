"""The KV prefix cache: many questions about one image or video cost one prefill of the media.

Both Inst-It templates put the media before the question, and LLaVA-NeXT tokenises the text
before and after ``<image>`` separately (:func:`instit.prompting.templates.tokenize_prompt`), so
every prompt about one media item starts with the same positions: the template head (system
prompt and user role, the ids before the placeholder) followed by the visual tokens.  A
:class:`PrefixCache` holds the language model's keys and values of those positions; a question
then costs only its *suffix*, the ids after the placeholder (for Vicuna's sentencepiece
tokenizer they begin with the extra ``▁`` the reference has after the image, exactly as in a
whole prompt).

A batch of suffixes shares one prefix: row ``i`` of the inputs is ``[prefix][pad ...][suffix i]``
with the padding masked out, so each suffix keeps the positions it has in its own prompt
(transformers derives positions from the attention mask) and attends to the prefix and to
itself only, as in a left-padded batch of whole prompts.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from instit.errors import InstitError

if TYPE_CHECKING:
    import torch

    from instit.model.core import EncodedMedia, InstIt

__all__ = ["PrefixCache", "build_prefix", "suffix_inputs"]


@dataclass(frozen=True, eq=False)
class PrefixCache:
    """Keys and values of ``template head + media`` in every layer of the language model.

    Attributes:
        head_ids: the template's ids before the media placeholder (system prompt, user role).
        length: the positions cached: ``len(head_ids)`` plus the media's visual tokens.
        layers: ``(keys, values)`` per layer, each ``[1, kv_heads, length, head_dim]``.
    """

    head_ids: tuple[int, ...]
    length: int
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...] = field(repr=False)

    @property
    def nbytes(self) -> int:
        """Memory the cached keys and values take."""
        return sum(k.nbytes + v.nbytes for k, v in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the tensors)."""
        return {"length": self.length, "head_tokens": len(self.head_ids), "bytes": self.nbytes}


def _cache_name(module: Any) -> str:
    """The keyword transformers' forward/generate take the KV cache under (5.x renamed it)."""
    parameters = inspect.signature(module.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def split_ids(model: InstIt, question: str) -> tuple[list[int], list[int]]:
    """``(head ids, suffix ids)`` of the prompt for ``question`` about a media item."""
    from instit.prompting.templates import IMAGE_TOKEN_INDEX

    ids = model._token_ids(question, True)
    at = ids.index(IMAGE_TOKEN_INDEX)
    return ids[:at], ids[at + 1 :]


def build_prefix(model: InstIt, encoded: EncodedMedia) -> PrefixCache:
    """Run the language model once over ``template head + media``; keep its keys and values."""
    import torch

    head, _ = split_ids(model, "")
    model._check_length(len(head) + encoded.num_tokens, "the template head with its media")
    embed = model.module.get_input_embeddings()
    language_model = model.module.model.language_model
    with torch.inference_mode():
        text = embed(torch.tensor(head, device=model.device))
        visual = encoded.features.to(text.device, text.dtype)
        embeds = torch.cat((text, visual), dim=0)[None]
        out = language_model(inputs_embeds=embeds, use_cache=True)
    cache = out.cache if _cache_name(language_model) == "cache" else out.past_key_values
    layers = tuple((layer.keys, layer.values) for layer in cache.layers)
    return PrefixCache(tuple(head), int(embeds.shape[1]), layers)


def suffix_inputs(
    model: InstIt,
    prefix: PrefixCache,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    rows: int,
) -> dict[str, Any]:
    """Keyword arguments for ``module.generate``: each prompt's suffix after the shared prefix.

    ``inputs_embeds`` has the full length (transformers slices off the cached positions; they
    are never read), the attention mask masks the padding between the prefix and shorter
    suffixes, and the cache is a fresh ``DynamicCache`` holding the prefix ``rows`` times (one
    per prompt and beam); the :class:`PrefixCache` itself is never modified.
    """
    import torch
    from transformers import DynamicCache

    embed = model.module.get_input_embeddings()
    suffixes = []
    for question in prompts:
        head, suffix = split_ids(model, question)
        if tuple(head) != prefix.head_ids:
            raise InstitError(
                "the prompt's template head differs from the cached prefix's; the prefix cache "
                "was made by another model or template: encode the media with this model"
            )
        total = prefix.length + len(suffix) + max_new_tokens
        model._check_length(total, "the prompt, its media and max_new_tokens")
        suffixes.append(embed(torch.tensor(suffix, device=model.device)))
    longest = max(s.shape[0] for s in suffixes)
    pad = embed(torch.tensor([model._pad_id()], device=model.device))[0]
    width = prefix.length + longest
    embeds = pad.new_zeros(len(suffixes), width, pad.shape[0])
    mask = torch.ones(len(suffixes), width, dtype=torch.long, device=model.device)
    for i, suffix in enumerate(suffixes):
        start = width - suffix.shape[0]
        embeds[i, prefix.length : start] = pad
        embeds[i, start:] = suffix
        mask[i, prefix.length : start] = 0
    copies = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefix.layers]
    config = model.module.config.get_text_config(decoder=True)
    cache = DynamicCache(ddp_cache_data=copies, config=config)
    return {
        "inputs_embeds": embeds,
        "attention_mask": mask,
        _cache_name(model.module): cache,
    }
