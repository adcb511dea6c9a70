"""instit: instance-level image and video understanding with the Inst-It models.

``import instit`` is cheap: heavy dependencies (torch, transformers, OpenCV, PyAV) are imported
only when the feature that needs them is first used.  Public names are resolved lazily from the
module that owns them (see ``_EXPORTS``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "InstitError": "instit.errors",
    "InstitValueError": "instit.errors",
    "InstitTypeError": "instit.errors",
    "MediaError": "instit.errors",
    "InstancesError": "instit.errors",
    "VideoError": "instit.errors",
    "CheckpointError": "instit.errors",
    "ModelInputError": "instit.errors",
    "DependencyError": "instit.errors",
    "DatasetError": "instit.errors",
    "JudgeError": "instit.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'instit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from instit.errors import (
        CheckpointError as CheckpointError,
        DatasetError as DatasetError,
        DependencyError as DependencyError,
        InstancesError as InstancesError,
        InstitError as InstitError,
        InstitTypeError as InstitTypeError,
        InstitValueError as InstitValueError,
        JudgeError as JudgeError,
        MediaError as MediaError,
        ModelInputError as ModelInputError,
        VideoError as VideoError,
    )
