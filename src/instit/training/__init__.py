"""Fine-tuning Inst-It checkpoints on your own instances (LoRA, QLoRA, full).

``import instit.training`` is cheap; torch, transformers and peft load when training starts.
"""

from __future__ import annotations

from instit.training.data import Conversation, read_conversations
from instit.training.features import IGNORE_INDEX, conversation_ids, training_features
from instit.training.finetune import TARGETS, finetune

__all__ = [
    "IGNORE_INDEX",
    "TARGETS",
    "Conversation",
    "conversation_ids",
    "finetune",
    "read_conversations",
    "training_features",
]
