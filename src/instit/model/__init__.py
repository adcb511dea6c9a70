"""Loading and running the Inst-It models (LLaVA-NeXT checkpoints) on transformers.

Importing this package is cheap; torch and transformers load with the first use of
:class:`InstIt` or :func:`convert`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "InstIt": "instit.model.core",
    "EncodedMedia": "instit.model.core",
    "convert": "instit.model.core",
    "PrefixCache": "instit.model.prefix_cache",
    "CheckpointSpec": "instit.model.checkpoint",
    "read_checkpoint": "instit.model.checkpoint",
    "load_processor": "instit.model.weights",
    "resolve_quantization": "instit.model.quantization",
    "resolve_dtype": "instit.model.quantization",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'instit.model' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from instit.model.checkpoint import (
        CheckpointSpec as CheckpointSpec,
        read_checkpoint as read_checkpoint,
    )
    from instit.model.core import (
        EncodedMedia as EncodedMedia,
        InstIt as InstIt,
        convert as convert,
    )
    from instit.model.prefix_cache import (
        PrefixCache as PrefixCache,
    )
    from instit.model.quantization import (
        resolve_dtype as resolve_dtype,
        resolve_quantization as resolve_quantization,
    )
    from instit.model.weights import (
        load_processor as load_processor,
    )
