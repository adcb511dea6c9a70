"""Pick the device, dtype and quantization for a load; pure functions, testable without a GPU.

Decisions:

* ``dtype="auto"``: bfloat16 on CUDA GPUs that support it, float16 on older GPUs, float32 on
  CPU (float16 matmuls on CPU are slow and lose precision).
* ``quantization="auto"``: 4-bit NF4 with double quantization and bfloat16/float16 compute on
  CUDA (a 7B model then fits in ~5 GB), none elsewhere (bitsandbytes 4/8-bit needs CUDA).
* Kept unquantized, via ``llm_int8_skip_modules``: the vision tower (Inst-It fine-tuned its
  layers; SigLIP/CLIP are small, ~0.4B, and quantizing them shifts every visual token), the
  multi-modal projector (two small matrices that map every visual token into the LLM; errors
  there reach every image position) and ``lm_head`` (the greedy choice between close logits;
  bitsandbytes also skips it by default). Only the language model's decoder layers are quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from instit.errors import DependencyError, InstitValueError

__all__ = [
    "SKIP_MODULES",
    "LoadPlan",
    "bitsandbytes_config",
    "resolve_device",
    "resolve_dtype",
    "resolve_quantization",
]

# Module-name prefixes (transformers matches them from the start of the full module name).
SKIP_MODULES = ["model.vision_tower", "model.multi_modal_projector", "lm_head"]
_MODES = ("auto", "4bit", "8bit", None)


@dataclass(frozen=True)
class LoadPlan:
    """The resolved device, dtype name and quantization mode of a load."""

    device: str
    dtype: str
    quantization: Literal["4bit", "8bit"] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"device": self.device, "dtype": self.dtype, "quantization": self.quantization}


def resolve_device(device: str = "auto", *, cuda_available: bool | None = None) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; others pass through."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if cuda_available else "cpu"
    if str(device).startswith("cuda") and not cuda_available:
        raise DependencyError(
            f"device={device!r} but no CUDA GPU is visible to torch; use device='cpu' (or 'auto')"
        )
    return str(device)


def resolve_dtype(
    dtype: Any = "auto", device: str = "cpu", *, bf16_supported: bool | None = None
) -> str:
    """The torch dtype name to load in: ``"bfloat16"``, ``"float16"`` or ``"float32"``."""
    names = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16"}
    if dtype != "auto":
        name = str(dtype).removeprefix("torch.")
        name = names.get(name, name)
        if name not in ("bfloat16", "float16", "float32"):
            raise InstitValueError(
                f"dtype={dtype!r} is not supported; use 'auto', 'bfloat16', 'float16' or 'float32'"
            )
        return name
    if not device.startswith("cuda"):
        return "float32"
    if bf16_supported is None:
        import torch

        bf16_supported = torch.cuda.is_bf16_supported()
    return "bfloat16" if bf16_supported else "float16"


def _bitsandbytes_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def resolve_quantization(
    quantization: Any = "auto",
    device: str = "cpu",
    *,
    bitsandbytes_available: bool | None = None,
) -> Any:
    """Decide the quantization: ``"4bit"``, ``"8bit"``, ``None`` or the caller's config object.

    ``"auto"`` means 4-bit on CUDA (when bitsandbytes is installed), none elsewhere. An explicit
    ``"4bit"``/``"8bit"`` without CUDA or bitsandbytes raises :class:`DependencyError`.
    A ``transformers.BitsAndBytesConfig`` is used as given (its own ``llm_int8_skip_modules``,
    see :data:`SKIP_MODULES`) and needs CUDA and bitsandbytes too.
    """
    custom = type(quantization).__name__ == "BitsAndBytesConfig"
    if quantization not in _MODES and not custom:
        raise InstitValueError(
            f"quantization={quantization!r} is not supported; use 'auto', '4bit', '8bit', None "
            "or a transformers.BitsAndBytesConfig"
        )
    if bitsandbytes_available is None:
        bitsandbytes_available = _bitsandbytes_available()
    cuda = device.startswith("cuda")
    if quantization == "auto":
        return "4bit" if cuda and bitsandbytes_available else None
    if quantization is None:
        return None
    what = "a BitsAndBytesConfig" if custom else f"quantization={quantization!r}"
    if not cuda:
        raise DependencyError(
            f"{what} needs a CUDA GPU (bitsandbytes), but the model is "
            f"loading on {device!r}; pass quantization=None to load unquantized"
        )
    if not bitsandbytes_available:
        raise DependencyError(
            f"{what} needs the bitsandbytes package; install it with "
            "`pip install bitsandbytes` or pass quantization=None"
        )
    return quantization


def bitsandbytes_config(mode: Any, compute_dtype: str) -> Any:
    """The ``BitsAndBytesConfig`` for a resolved mode (``None`` stays ``None``)."""
    if mode is None or type(mode).__name__ == "BitsAndBytesConfig":
        return mode
    import torch
    from transformers import BitsAndBytesConfig

    if mode == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
            llm_int8_skip_modules=list(SKIP_MODULES),
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(SKIP_MODULES))
