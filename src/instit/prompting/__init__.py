"""Prompt templates and tokenisation that reproduce LLaVA-NeXT's (see :mod:`.templates`)."""

from __future__ import annotations

from instit.prompting.templates import (
    IMAGE_TOKEN_INDEX,
    MEDIA_TOKEN,
    TEMPLATES,
    ConversationTemplate,
    build_chat,
    build_prompt,
    expanded_length,
    get_template,
    template_for,
    tokenize_prompt,
)

__all__ = [
    "IMAGE_TOKEN_INDEX",
    "MEDIA_TOKEN",
    "TEMPLATES",
    "ConversationTemplate",
    "build_chat",
    "build_prompt",
    "expanded_length",
    "get_template",
    "template_for",
    "tokenize_prompt",
]
