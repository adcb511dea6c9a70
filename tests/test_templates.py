"""Conversation templates and split tokenisation (instit.prompting.templates).

The golden prompt strings and token ids of the conformance cases are checked in
tests/test_processing_conformance.py; this file covers the rest of the behaviour with strings
written out from LLaVA-NeXT's ``Conversation.get_prompt`` rules.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from instit.errors import CheckpointError, InstitTypeError, InstitValueError
from instit.prompting import (
    IMAGE_TOKEN_INDEX,
    TEMPLATES,
    ConversationTemplate,
    build_chat,
    build_prompt,
    expanded_length,
    get_template,
    template_for,
    tokenize_prompt,
)

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)
QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


@cache
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def test_qwen_prompt_is_chatml_with_open_assistant_turn():
    assert build_prompt("What is [1]?", "qwen_1_5") == (
        QWEN_SYSTEM + "<|im_start|>user\n<image>\nWhat is [1]?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_vicuna_prompt_uses_two_separators():
    assert build_prompt("What is [1]?", "vicuna_v1") == (
        VICUNA_SYSTEM + " USER: <image>\nWhat is [1]? ASSISTANT:"
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_media_false_leaves_out_the_placeholder(name):
    with_media = build_prompt("Describe [2].", name)
    without = build_prompt("Describe [2].", name, media=False)
    assert "<image>" not in without
    assert with_media.replace("<image>\n", "", 1) == without


def test_multi_turn_chat_vicuna():
    prompt = build_chat([("What is [1]?", "A dog."), ("And [2]?", None)], "vicuna_v1")
    assert prompt == (
        VICUNA_SYSTEM
        + " USER: <image>\nWhat is [1]? ASSISTANT: A dog.</s>USER: And [2]? ASSISTANT:"
    )


def test_multi_turn_chat_qwen_with_closed_last_turn():
    prompt = build_chat([("What is [1]?", "A dog."), ("And [2]?", "A cat.")], "qwen_1_5")
    assert prompt == (
        QWEN_SYSTEM
        + "<|im_start|>user\n<image>\nWhat is [1]?<|im_end|>\n"
        + "<|im_start|>assistant\nA dog.<|im_end|>\n"
        + "<|im_start|>user\nAnd [2]?<|im_end|>\n"
        + "<|im_start|>assistant\nA cat.<|im_end|>\n"
    )


def test_single_turn_chat_equals_build_prompt():
    assert build_chat([("Q?", None)], "qwen_1_5") == build_prompt("Q?", "qwen_1_5")


def test_templates_accepted_as_objects_and_serialise():
    template = get_template("qwen_1_5")
    assert get_template(template) is template
    assert build_prompt("Q", template) == build_prompt("Q", "qwen_1_5")
    data = json.loads(json.dumps(template.to_dict()))
    assert ConversationTemplate(**{**data, "roles": tuple(data["roles"])}) == template


def test_template_for_reads_model_type_then_architectures():
    assert template_for({"model_type": "qwen2"}) == "qwen_1_5"
    assert template_for({"model_type": "llama"}) == "vicuna_v1"
    assert template_for({"architectures": ["LlavaQwenForCausalLM"]}) == "qwen_1_5"
    assert template_for({"model_type": "llava", "architectures": ["LlavaLlamaForCausalLM"]}) == (
        "vicuna_v1"
    )


def test_template_for_checkpoint_configs(conformance_dir: Path):
    names = {}
    for checkpoint in ("tiny-qwen2-siglip", "tiny-vicuna-clip"):
        config = json.loads(
            (conformance_dir / "checkpoints" / checkpoint / "config.json").read_text()
        )
        names[checkpoint] = template_for(config)
    assert names == {"tiny-qwen2-siglip": "qwen_1_5", "tiny-vicuna-clip": "vicuna_v1"}


def test_template_for_unknown_model_names_the_fix():
    with pytest.raises(CheckpointError, match="qwen_1_5"):
        template_for({"model_type": "mistral"})
    with pytest.raises(InstitTypeError, match="dict"):
        template_for("qwen2")  # type: ignore[arg-type]


def test_bad_template_and_bad_turns_raise_typed_errors():
    with pytest.raises(InstitValueError, match="vicuna_v1"):
        build_prompt("Q", "chatml")
    with pytest.raises(InstitTypeError):
        build_prompt(b"Q", "qwen_1_5")  # type: ignore[arg-type]
    with pytest.raises(InstitValueError, match="placeholder"):
        build_prompt("<image>\nQ", "qwen_1_5")
    with pytest.raises(InstitValueError, match="only the last answer"):
        build_chat([("Q1", None), ("Q2", None)], "qwen_1_5")
    with pytest.raises(InstitValueError, match="at least one"):
        build_chat([], "qwen_1_5")
    with pytest.raises(InstitTypeError, match="pair"):
        build_chat([("Q1",)], "qwen_1_5")  # type: ignore[list-item]
    with pytest.raises(InstitTypeError):
        build_chat("Q", "qwen_1_5")  # type: ignore[arg-type]


def test_turns_are_not_modified():
    turns = [("What is [1]?", "A dog."), ("And [2]?", None)]
    before = [tuple(turn) for turn in turns]
    build_chat(turns, "qwen_1_5")
    assert turns == before


def test_split_tokenisation_vicuna_keeps_the_space_token_after_the_image(conformance_dir):
    tokenizer = load_tokenizer(str(conformance_dir / "checkpoints" / "tiny-vicuna-clip"))
    prompt = build_prompt("What is [1]?", "vicuna_v1")
    ids = tokenize_prompt(prompt, tokenizer)
    before, after = prompt.split("<image>")
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1  # the second piece's BOS is dropped
    position = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[:position] == tokenizer(before).input_ids
    assert ids[position + 1 :] == tokenizer(after).input_ids[1:]
    # a whole-prompt tokenisation does not produce the reference's ids after the image
    whole = tokenizer(prompt.replace("<image>", "")).input_ids
    assert ids[position + 1 :] != whole[position:]


def test_split_tokenisation_qwen_has_no_bos(conformance_dir):
    tokenizer = load_tokenizer(str(conformance_dir / "checkpoints" / "tiny-qwen2-siglip"))
    prompt = build_prompt("What is [1]?", "qwen_1_5")
    ids = tokenize_prompt(prompt, tokenizer)
    before, after = prompt.split("<image>")
    assert ids == [*tokenizer(before).input_ids, IMAGE_TOKEN_INDEX, *tokenizer(after).input_ids]
    assert (
        tokenize_prompt(build_prompt("Q", "qwen_1_5", media=False), tokenizer).count(
            IMAGE_TOKEN_INDEX
        )
        == 0
    )


def test_several_placeholders_and_custom_media_token(conformance_dir):
    tokenizer = load_tokenizer(str(conformance_dir / "checkpoints" / "tiny-vicuna-clip"))
    ids = tokenize_prompt("A <image> B <image> C", tokenizer)
    assert ids.count(IMAGE_TOKEN_INDEX) == 2
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenize_prompt("A <video> B", tokenizer, media_token="<video>").count(-200) == 1
    with pytest.raises(InstitValueError):
        tokenize_prompt("A", tokenizer, media_token="")
    with pytest.raises(InstitTypeError):
        tokenize_prompt("A", object())


def test_expanded_length():
    ids = [1, 2, IMAGE_TOKEN_INDEX, 3]
    assert expanded_length(ids, 10) == 13
    assert expanded_length([IMAGE_TOKEN_INDEX, 5, IMAGE_TOKEN_INDEX], [4, 6]) == 11
    assert expanded_length([1, 2], []) == 2
    with pytest.raises(InstitValueError, match="one count per placeholder"):
        expanded_length(ids, [1, 2])


def _render_jinja(template: str, messages: list[dict[str, object]], generation: bool) -> str:
    """Render a chat template with the environment transformers' ``apply_chat_template`` uses."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=generation)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_jinja_chat_template_is_generated_from_the_conversation_template(name):
    """The exported chat template renders build_chat's prompt, for one turn and several."""
    template = get_template(name)
    media = "<image>\n" if name == "qwen_1_5" else "<image> \n"  # docs/model.md: Vicuna's space
    turns = [("What is [1]?", "A dog."), ("And [2] at <3>?", "A cat."), ("Where?", None)]
    messages: list[dict[str, object]] = []
    for index, (question, answer) in enumerate(turns):
        parts = [{"type": "image"}] if index == 0 else []
        messages.append({"role": "user", "content": [*parts, {"type": "text", "text": question}]})
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
    rendered = _render_jinja(template.chat_template(), messages, generation=True)
    assert rendered == build_chat(turns, name).replace("<image>\n", media)
    closed = _render_jinja(template.chat_template(), messages[:2], generation=False)
    assert closed == build_chat(turns[:1], name).replace("<image>\n", media)
    video = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q"}]}]
    assert _render_jinja(template.chat_template(), video, generation=True) == build_prompt(
        "Q", name
    ).replace("<image>\n", media.replace("image", "video"))


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_jinja_chat_template_follows_a_changed_system_text(name):
    """One source: a template with another system text exports that text."""
    from dataclasses import replace

    template = get_template(name)
    custom = replace(template, system=template.system.replace("helpful", "terse"))
    messages = [{"role": "user", "content": "Hi"}]
    rendered = _render_jinja(custom.chat_template(), messages, generation=True)
    assert rendered == build_prompt("Hi", custom, media=False)
    assert "terse" in rendered and "helpful assistant." not in rendered
