"""Conversation templates and the reference's split tokenisation.

The two Inst-It checkpoints were trained and evaluated with LLaVA-NeXT's ``conv_templates``:

* ``qwen_1_5`` (Qwen2-7B): ChatML with the system line "You are a helpful assistant.";
* ``vicuna_v1`` (Vicuna-7B): ``"<system> USER: <msg> ASSISTANT:"`` with ``" "`` / ``"</s>"``
  separators.

:func:`build_prompt` renders a one-question prompt exactly as the Inst-It bench scripts do (user
message ``"<image>\\n" + question``, assistant turn left open); :func:`build_chat` renders several
turns.  :func:`tokenize_prompt` reproduces LLaVA-NeXT's ``tokenizer_image_token``: the text around
each ``<image>`` is tokenised separately and the pieces are joined around the placeholder id
:data:`IMAGE_TOKEN_INDEX`.  For sentencepiece (Vicuna) tokenisers this keeps the extra ``▁`` token
the reference has right after the image, which a whole-prompt tokenisation would not produce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from instit.errors import CheckpointError, InstitTypeError, InstitValueError

IMAGE_TOKEN_INDEX = -200
"""Placeholder id that marks where the visual tokens go in ``input_ids`` (LLaVA's value)."""

MEDIA_TOKEN = "<image>"
"""The text placeholder for an image or a whole video in a prompt."""


@dataclass(frozen=True)
class ConversationTemplate:
    """One of LLaVA-NeXT's conversation templates (only the two separator styles Inst-It uses).

    Attributes:
        name: key in :data:`TEMPLATES` (LLaVA-NeXT's ``conv_templates`` key).
        system: the system text, rendered first.
        roles: (user role, assistant role) as they appear in the prompt.
        style: ``"chatml"`` (LLaVA's ``SeparatorStyle.CHATML``) or ``"two"``
            (``SeparatorStyle.TWO``).
        sep: separator after the system text and after every message (ChatML: ``<|im_end|>``).
        sep2: ``"two"`` style only: separator after assistant messages (``</s>``).
    """

    name: str
    system: str
    roles: tuple[str, str]
    style: Literal["chatml", "two"]
    sep: str
    sep2: str = ""

    def render(self, messages: Sequence[tuple[str, str | None]]) -> str:
        """Render ``(role, message)`` pairs like LLaVA-NeXT's ``Conversation.get_prompt``.

        A message that is ``None`` or empty renders as the bare role marker, i.e. an open turn
        for the model to complete.
        """
        if self.style == "chatml":
            out = self.system + self.sep + "\n" if self.system else ""
            for role, message in messages:
                out += f"{role}\n{message}{self.sep}\n" if message else f"{role}\n"
            return out
        seps = (self.sep, self.sep2)
        out = self.system + seps[0]
        for index, (role, message) in enumerate(messages):
            out += f"{role}: {message}{seps[index % 2]}" if message else f"{role}:"
        return out

    def chat_template(self) -> str:
        """This template as a Jinja chat template (what an exported tokenizer carries).

        ``apply_chat_template`` with it renders the prompt :meth:`render` gives for the same
        turns (a leading ``system`` message replaces the default system text), with one
        deliberate difference in the ``"two"`` (Vicuna) style: the media placeholder is followed
        by ``" \\n"``.  The reference tokenises the text after the image on its own and
        sentencepiece starts that piece with a ``▁``; the space gives the same ids when the whole
        prompt is tokenised at once.
        """
        media_sep = "\n" if self.style == "chatml" else " \n"
        content = (
            "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
            "{% for part in message['content'] %}"
            f"{{% if part['type'] == 'image' %}}{MEDIA_TOKEN}{media_sep}"
            f"{{% elif part['type'] == 'video' %}}<video>{media_sep}"
            "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        )
        user, assistant = self.roles
        if self.style == "chatml":
            start = user.removesuffix("user")  # ChatML role markers: "<|im_start|>" + role
            return (
                "{% for message in messages %}"
                "{% if loop.first and message['role'] != 'system' %}"
                f"{self.system}{self.sep}\n{{% endif %}}"
                f"{start}{{{{ message['role'] }}}}\n{content}{self.sep}\n{{% endfor %}}"
                f"{{% if add_generation_prompt %}}{assistant}\n{{% endif %}}"
            )
        return (
            "{% if messages[0]['role'] == 'system' %}"
            f"{{{{ messages[0]['content'] }}}}{self.sep}{{% else %}}{self.system}{self.sep}"
            "{% endif %}{% for message in messages if message['role'] != 'system' %}"
            f"{{% if message['role'] == 'user' %}}{user}: {{% else %}}{assistant}: {{% endif %}}"
            f"{content}{{% if message['role'] == 'user' %}}{self.sep}{{% else %}}{self.sep2}"
            f"{{% endif %}}{{% endfor %}}{{% if add_generation_prompt %}}{assistant}:{{% endif %}}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


TEMPLATES: dict[str, ConversationTemplate] = {
    "qwen_1_5": ConversationTemplate(
        name="qwen_1_5",
        system="<|im_start|>system\nYou are a helpful assistant.",
        roles=("<|im_start|>user", "<|im_start|>assistant"),
        style="chatml",
        sep="<|im_end|>",
    ),
    "vicuna_v1": ConversationTemplate(
        name="vicuna_v1",
        system="A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
        roles=("USER", "ASSISTANT"),
        style="two",
        sep=" ",
        sep2="</s>",
    ),
}
"""The conversation templates of the two Inst-It checkpoints, keyed like LLaVA-NeXT's."""

_BY_MODEL_TYPE = {"qwen2": "qwen_1_5", "llama": "vicuna_v1"}
_BY_ARCHITECTURE = {"LlavaQwenForCausalLM": "qwen_1_5", "LlavaLlamaForCausalLM": "vicuna_v1"}


def template_for(config: Mapping[str, Any]) -> str:
    """Name of the conversation template for a checkpoint's ``config.json`` contents.

    ``model_type`` ``"qwen2"`` gives ``"qwen_1_5"`` and ``"llama"`` gives ``"vicuna_v1"``; a config
    without a known ``model_type`` is recognised by its LLaVA ``architectures`` entry.

    Raises:
        CheckpointError: the config names neither a Qwen2 nor a Llama language model.
    """
    if not isinstance(config, Mapping):
        raise InstitTypeError(
            f"template_for expects the checkpoint config as a dict, got {type(config).__name__}; "
            "pass json.load(open('config.json')) or config.to_dict()"
        )
    name = _BY_MODEL_TYPE.get(str(config.get("model_type", "")))
    if name is None:
        for architecture in config.get("architectures") or ():
            name = _BY_ARCHITECTURE.get(architecture)
            if name is not None:
                break
    if name is None:
        raise CheckpointError(
            f"no conversation template is known for model_type={config.get('model_type')!r} "
            f"(architectures={config.get('architectures')!r}); Inst-It checkpoints use 'qwen2' "
            f"or 'llama'; pass the template name explicitly (one of {sorted(TEMPLATES)})"
        )
    return name


def get_template(template: str | ConversationTemplate) -> ConversationTemplate:
    """Look up a template by name (or return a :class:`ConversationTemplate` unchanged)."""
    if isinstance(template, ConversationTemplate):
        return template
    if not isinstance(template, str):
        raise InstitTypeError(
            f"template must be a template name or a ConversationTemplate, got "
            f"{type(template).__name__}; use one of {sorted(TEMPLATES)}"
        )
    try:
        return TEMPLATES[template]
    except KeyError:
        raise InstitValueError(
            f"unknown conversation template {template!r}; use one of {sorted(TEMPLATES)}"
        ) from None


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InstitTypeError(f"{what} must be a str, got {type(value).__name__}; pass the text")
    if MEDIA_TOKEN in value:
        raise InstitValueError(
            f"{what} contains the media placeholder {MEDIA_TOKEN!r}; remove it: the prompt "
            "builder inserts the placeholder itself (media=True)"
        )
    return value


def build_chat(
    turns: Sequence[tuple[str, str | None]],
    template: str | ConversationTemplate,
    *,
    media: bool = True,
) -> str:
    """Render a multi-turn conversation.

    Args:
        turns: ``(user message, assistant answer)`` pairs in order.  Only the last answer may be
            ``None``: the prompt then ends with the open assistant turn for the model to complete.
        template: a :data:`TEMPLATES` key (see :func:`template_for`) or a template.
        media: put ``"<image>\\n"`` in front of the first user message (the media, image or
            video, is attached to the first turn, as in LLaVA-NeXT training data).

    Returns:
        The full prompt string.

    Example:
        >>> build_chat([("What is [1]?", "A dog."), ("And [2]?", None)], "vicuna_v1")[-40:]
        'A dog.</s>USER: And [2]? ASSISTANT:'
    """
    conv = get_template(template)
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Sequence):
        raise InstitTypeError(
            f"turns must be a list of (question, answer) pairs, got {type(turns).__name__}"
        )
    if not turns:
        raise InstitValueError("turns is empty; pass at least one (question, None) pair")
    messages: list[tuple[str, str | None]] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, (tuple, list)) or len(turn) != 2:
            raise InstitTypeError(
                f"turns[{index}] must be a (question, answer) pair, got {turn!r}; "
                "use None as the answer of the last turn to leave it open"
            )
        question, answer = turn
        question = _check_text(question, f"turns[{index}] question")
        last = index == len(turns) - 1
        if answer is None or answer == "":
            if not last:
                raise InstitValueError(
                    f"turns[{index}] has no answer but is not the last turn; give every earlier "
                    "turn its answer text (only the last answer may be None)"
                )
        else:
            answer = _check_text(answer, f"turns[{index}] answer")
        if media and index == 0:
            question = MEDIA_TOKEN + "\n" + question
        messages.append((conv.roles[0], question))
        messages.append((conv.roles[1], answer))
    return conv.render(messages)


def build_prompt(question: str, template: str | ConversationTemplate, *, media: bool = True) -> str:
    """Render a one-question prompt, exactly as the Inst-It bench scripts build it.

    The user message is ``"<image>\\n" + question`` (``question`` alone with ``media=False``) and
    the assistant turn is left open.

    Example:
        >>> build_prompt("What is [1] doing?", "qwen_1_5")
        '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<image>\\nWhat is [1] doing?<|im_end|>\\n<|im_start|>assistant\\n'
    """  # noqa: E501
    return build_chat([(question, None)], template, media=media)


def tokenize_prompt(prompt: str, tokenizer: Any, *, media_token: str = MEDIA_TOKEN) -> list[int]:
    """Token ids of a prompt the way LLaVA-NeXT's ``tokenizer_image_token`` makes them.

    The text between media placeholders is tokenised piece by piece with the tokenizer's own
    special tokens (a BOS where the tokenizer adds one); when the first piece starts with BOS,
    the first token of every later piece (its BOS) is dropped.  Each placeholder becomes one
    :data:`IMAGE_TOKEN_INDEX`.

    Args:
        prompt: the full prompt, e.g. from :func:`build_prompt`.
        tokenizer: a Hugging Face tokenizer (callable, returning ``input_ids``).
        media_token: the placeholder text to split on.

    Returns:
        The ids, with one ``-200`` per placeholder.  They are not truncated: see
        :func:`expanded_length` for the length after the visual tokens are spliced in.
    """
    if not isinstance(prompt, str):
        raise InstitTypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not callable(tokenizer):
        raise InstitTypeError(
            f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__}; "
            "load one with transformers.AutoTokenizer.from_pretrained(checkpoint)"
        )
    if not media_token:
        raise InstitValueError("media_token is empty; pass the placeholder text, e.g. '<image>'")
    pieces = [list(tokenizer(piece).input_ids) for piece in prompt.split(media_token)]
    bos = getattr(tokenizer, "bos_token_id", None)
    skip = 1 if bos is not None and pieces[0] and pieces[0][0] == bos else 0
    ids = list(pieces[0])
    for piece in pieces[1:]:
        ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(piece[skip:])
    return ids


def expanded_length(input_ids: Sequence[int], visual_tokens: int | Sequence[int]) -> int:
    """Sequence length after each :data:`IMAGE_TOKEN_INDEX` is replaced by its visual tokens.

    The reference cuts the expanded sequence to the checkpoint's ``tokenizer_model_max_length``
    without a warning (32768 for Qwen2, 4096 for Vicuna); instit refuses such inputs instead.

    Args:
        input_ids: ids from :func:`tokenize_prompt`.
        visual_tokens: the visual token count of each placeholder, in order (an int for one).
    """
    counts = [visual_tokens] if isinstance(visual_tokens, int) else list(visual_tokens)
    placeholders = sum(1 for token in input_ids if token == IMAGE_TOKEN_INDEX)
    if placeholders != len(counts):
        raise InstitValueError(
            f"input_ids hold {placeholders} media placeholder(s) but {len(counts)} visual token "
            "count(s) were given; pass one count per placeholder"
        )
    return len(input_ids) - placeholders + sum(counts)
