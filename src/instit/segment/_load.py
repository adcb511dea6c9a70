"""What segmentation and detection share: the optional dependencies and loading a checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from instit.errors import CheckpointError, DependencyError

INSTALL = "pip install 'instit[segment]'"
DEFAULT_SEGMENTER = "facebook/sam2.1-hiera-small"
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"


def require(feature: str, *, timm: bool = False) -> None:
    """Raise :class:`DependencyError` naming the pip command unless the extra is installed."""
    needed = ["torchvision", "timm"] if timm else ["torchvision"]
    missing = []
    for name in needed:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise DependencyError(
            f"{feature} needs the optional package(s) {', '.join(missing)}; install them with "
            f"{INSTALL}"
        )


def model_type(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool | None,
) -> tuple[Path, str]:
    """The local folder of a checkpoint (downloading safetensors and configs only) and the
    ``model_type`` its ``config.json`` names."""
    from instit.model.checkpoint import snapshot

    folder = snapshot(
        name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    )
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(
            f"{folder} has no config.json; pass a transformers checkpoint folder (saved with "
            "save_pretrained) or a hub id"
        )
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{config} is not a readable JSON config ({exc})") from exc
    if not isinstance(kind, str):
        raise CheckpointError(f"{config} names no model_type; is this a transformers checkpoint?")
    return folder, kind


def load(class_name: str, folder: Path, device: str, dtype: Any) -> Any:
    """``transformers.<class_name>.from_pretrained(folder)`` on ``device`` (safetensors only,
    no remote code), in eval mode; processors load without device and dtype.

    A checkpoint that leaves any of the model's weights out is refused: transformers would fill
    them with random numbers and only log it, and every mask would then be noise."""
    import transformers

    cls = getattr(transformers, class_name)
    try:
        if class_name.endswith("Processor"):
            return cls.from_pretrained(str(folder))
        module, info = cls.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, output_loading_info=True
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"could not load {class_name} from {folder} ({exc}); the folder needs the model's "
            "config.json, model.safetensors and processor files"
        ) from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise CheckpointError(
            f"{folder} lacks {len(missing)} of the weights of {class_name} (such as "
            f"{missing[0]!r}), which would be random; pass a checkpoint of this model as "
            "transformers' save_pretrained writes it"
        )
    return module.to(device).eval()


def placement(device: str, dtype: Any) -> tuple[str, Any]:
    """The resolved device name and torch dtype (see :mod:`instit.model.quantization`)."""
    import torch

    from instit.model.quantization import resolve_device, resolve_dtype

    resolved = resolve_device(device)
    return resolved, getattr(torch, resolve_dtype(dtype, resolved))
