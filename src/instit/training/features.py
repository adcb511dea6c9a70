"""One training conversation -> the tensors the model is trained on.

The ids are made exactly as at inference: the conversation is rendered with the checkpoint's own
template (:func:`~instit.prompting.templates.build_chat`), tokenised the reference's way
(:func:`~instit.prompting.templates.tokenize_prompt`, text around ``<image>`` tokenised
separately), and the media placeholder is expanded to the media's visual tokens by
:meth:`InstIt.prepare_ids`, which also makes the pixel values.  So the first turn's prompt part is
token for token what :meth:`InstIt.prepare` builds for that question.

Loss is on the assistant tokens only: each answer and its end-of-turn token (``<|im_end|>`` for
ChatML/Qwen2, ``</s>`` for vicuna_v1).  Everything else -- system text, user turns, the assistant
role marker, the visual tokens, and ChatML's ``"\\n"`` after ``<|im_end|>`` -- is label ``-100``.
(LLaVA-NeXT's own ``preprocess_qwen`` also supervises the ``<|im_start|>``/``<|im_end|>``/``\\n``
tokens of every turn; instit follows the narrower rule, the one an answer-quality loss needs.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from instit.errors import ModelInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from instit.model.core import InstIt

IGNORE_INDEX = -100
"""Label of a token that is not supervised (PyTorch's cross-entropy ``ignore_index``)."""


def conversation_ids(
    model: InstIt, turns: Sequence[tuple[str, str]]
) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation (with one ``-200`` media placeholder) and its labels.

    Args:
        model: gives the template and tokenizer.
        turns: ``(question, answer)`` pairs; the media is attached to the first question.

    Returns:
        ``(ids, labels)`` of equal length; labels are ``-100`` except on each answer and its
        end-of-turn token.
    """
    from instit.prompting.templates import build_chat, get_template, tokenize_prompt

    template = get_template(model.template)
    end_token = template.sep if template.style == "chatml" else template.sep2
    end_id = model.tokenizer.convert_tokens_to_ids(end_token)
    ids: list[int] = []
    labels: list[int] = []

    def tokens(chat: list[tuple[str, str | None]]) -> list[int]:
        return tokenize_prompt(build_chat(chat, model.template), model.tokenizer)

    for k in range(len(turns)):
        opened = tokens([*turns[:k], (turns[k][0], None)])
        closed = tokens(list(turns[: k + 1]))
        if closed[: len(opened)] != opened or opened[: len(ids)] != ids:
            raise ModelInputError(
                f"turn {k + 1}: the tokenizer does not split the conversation at the turn "
                "boundary (the prompt's tokens are not a prefix of the answered turn's); check "
                "that answers do not start with text that merges with the role marker"
            )
        answer = closed[len(opened) :]
        if end_id not in answer:
            raise ModelInputError(
                f"turn {k + 1}: the answer has no end-of-turn token {end_token!r} after "
                "tokenisation; does the answer contain it as text?"
            )
        supervised = answer.index(end_id) + 1
        labels += [IGNORE_INDEX] * (len(opened) - len(ids))
        labels += answer[:supervised] + [IGNORE_INDEX] * (len(answer) - supervised)
        ids = closed
    return ids, labels


def training_features(
    model: InstIt, media: Any, turns: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Model inputs plus ``labels`` for one conversation about one media item.

    ``media`` is what the model sees (marks already drawn): a PIL image or a list of frames.
    Tensors are on the CPU without a batch dimension (the collator batches them).
    """
    import torch

    from instit.prompting.templates import IMAGE_TOKEN_INDEX

    ids, labels = conversation_ids(model, turns)
    inputs = model.prepare_ids(media, ids)
    expanded = inputs["input_ids"][0].tolist()
    at = ids.index(IMAGE_TOKEN_INDEX)
    visual = len(expanded) - len(ids) + 1
    full_labels = labels[:at] + [IGNORE_INDEX] * visual + labels[at + 1 :]
    features = {name: value[0].cpu() for name, value in inputs.items()}
    features["labels"] = torch.tensor(full_labels, dtype=torch.long)
    return features
