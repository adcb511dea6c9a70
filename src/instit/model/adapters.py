"""LoRA adapters (PEFT) on a loaded :class:`~instit.model.core.InstIt`.

:func:`instit.finetune` writes an adapter folder: PEFT's ``adapter_config.json`` and
``adapter_model.safetensors`` plus instit's ``instit_finetune.json`` manifest (base checkpoint,
settings, data fingerprint).  :func:`attach_adapter` puts such an adapter on a loaded model, in
place: the LoRA layers are injected into ``model.module`` (still the transformers model, so every
instit verb works unchanged), or merged into its weights with ``merge=True``.

Only safetensors are read: a folder with only ``adapter_model.bin`` (a pickle) is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instit.errors import CheckpointError, DependencyError, InstitValueError

if TYPE_CHECKING:  # pragma: no cover
    from instit.model.core import InstIt

MANIFEST = "instit_finetune.json"
"""instit's record of how an adapter was trained (base checkpoint, settings, data)."""

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def import_peft() -> Any:
    """The ``peft`` module, or a :class:`DependencyError` naming the install command.

    peft imports bitsandbytes when it is installed: instit imports it first, its own way (no
    kernel download from the Hub, see :func:`instit.model.quantization.import_bitsandbytes`).
    """
    from instit.model.quantization import has_bitsandbytes, import_bitsandbytes

    if has_bitsandbytes():
        import_bitsandbytes()
    try:
        import peft
    except ImportError as exc:
        raise DependencyError(
            "LoRA adapters need peft: pip install peft (or the instit[finetune] extra)"
        ) from exc
    return peft


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The adapter folder's ``instit_finetune.json`` (``None`` when it has none)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc}); re-run the training") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object; re-run the training")
    return data


def check_adapter_folder(folder: str | os.PathLike[str]) -> Path:
    """Return ``folder`` as a path after checking it holds a safetensors LoRA adapter."""
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(
            f"adapter folder {path} does not exist; pass the output_dir that instit.finetune "
            "wrote (it holds adapter_config.json and adapter_model.safetensors)"
        )
    if not (path / ADAPTER_CONFIG).is_file():
        raise CheckpointError(f"{path} has no {ADAPTER_CONFIG}: it is not a PEFT adapter folder")
    if not (path / ADAPTER_WEIGHTS).is_file():
        pickled = " (only a pickled adapter_model.bin, which instit never loads)"
        found = pickled if (path / "adapter_model.bin").exists() else ""
        raise CheckpointError(
            f"{path} has no {ADAPTER_WEIGHTS}{found}; save adapters as safetensors"
        )
    return path


def attach_adapter(model: InstIt, folder: str | os.PathLike[str], *, merge: bool = False) -> None:
    """Put the LoRA adapter in ``folder`` on ``model`` (in place).

    Args:
        model: a loaded model; its ``module`` gets the adapter's LoRA layers.
        folder: an adapter folder written by :func:`instit.finetune` (or any PEFT LoRA adapter
            for the same architecture, saved as safetensors).
        merge: fold the adapter into the weights (no LoRA layers left; needs an unquantized
            model).

    Raises:
        CheckpointError: not an adapter folder, pickled weights only, or an adapter for another
            architecture.
        InstitValueError: ``merge=True`` on a 4-/8-bit model.
    """
    path = check_adapter_folder(folder)
    peft = import_peft()
    if merge and model.quantization not in (None, "none"):
        raise InstitValueError(
            f"merge=True needs an unquantized base, but this model is {model.quantization}; "
            "load it with quantization=None to merge, or keep the adapter unmerged"
        )
    try:
        wrapped = peft.PeftModel.from_pretrained(model.module, str(path), is_trainable=False)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"the adapter in {path} does not fit this model ({exc}); load the base checkpoint it "
            "was trained on (see its instit_finetune.json)"
        ) from exc
    model.module = wrapped.merge_and_unload() if merge else wrapped.get_base_model()
    model.module.eval()
    model.adapter = {"path": str(path), "merged": merge}
