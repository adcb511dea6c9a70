"""Pick the device, dtype and quantization for a load; pure functions, testable without a GPU.

Decisions:

* ``dtype="auto"``: bfloat16 on CUDA GPUs that support it, float16 on older GPUs, float32 on
  CPU (float16 matmuls on CPU are slow and lose precision).
* ``quantization="auto"``: 4-bit NF4 with double quantization and bfloat16/float16 compute on
  CUDA (a 7B model then fits in ~5 GB); none on the CPU unless the float32 load would not fit
  in the available memory (:mod:`instit.model.memory` then picks the most faithful setting
  that fits). ``"4bit"``/``"8bit"`` work on the CPU through bitsandbytes' CPU backend.
* Kept unquantized, via ``llm_int8_skip_modules``: the vision tower (Inst-It fine-tuned its
  layers; SigLIP/CLIP are small, ~0.4B, and quantizing them shifts every visual token), the
  multi-modal projector (two small matrices that map every visual token into the LLM; errors
  there reach every image position) and ``lm_head`` (the greedy choice between close logits;
  bitsandbytes also skips it by default). Only the language model's decoder layers are quantized.
"""

from __future__ import annotations

import logging
from typing import Any

from instit.errors import DependencyError, InstitValueError

__all__ = [
    "SKIP_MODULES",
    "bitsandbytes_config",
    "has_bitsandbytes",
    "import_bitsandbytes",
    "resolve_device",
    "resolve_dtype",
    "resolve_quantization",
]

# Module-name prefixes (transformers matches them from the start of the full module name).
SKIP_MODULES = ["model.vision_tower", "model.multi_modal_projector", "lm_head"]
_MODES = ("auto", "4bit", "8bit", None)


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


def has_bitsandbytes() -> bool:
    """Whether the bitsandbytes package is installed (it is not imported)."""
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def resolve_quantization(
    quantization: Any = "auto",
    device: str = "cpu",
    *,
    bitsandbytes_available: bool | None = None,
) -> Any:
    """Decide the quantization: ``"4bit"``, ``"8bit"``, ``None`` or the caller's config object.

    ``"auto"`` means 4-bit on CUDA (when bitsandbytes is installed), none elsewhere (on the CPU
    the memory check may still pick a quantized setting). An explicit ``"4bit"``/``"8bit"`` on
    a device other than CUDA or the CPU, or without bitsandbytes, raises
    :class:`DependencyError`. A ``transformers.BitsAndBytesConfig`` is used as given (its own
    ``llm_int8_skip_modules``, see :data:`SKIP_MODULES`) under the same conditions.
    """
    custom = type(quantization).__name__ == "BitsAndBytesConfig"
    if quantization not in _MODES and not custom:
        raise InstitValueError(
            f"quantization={quantization!r} is not supported; use 'auto', '4bit', '8bit', None "
            "or a transformers.BitsAndBytesConfig"
        )
    if bitsandbytes_available is None:
        bitsandbytes_available = has_bitsandbytes()
    cuda = device.startswith("cuda")
    if quantization == "auto":
        return "4bit" if cuda and bitsandbytes_available else None
    if quantization is None:
        return None
    what = "a BitsAndBytesConfig" if custom else f"quantization={quantization!r}"
    if not cuda and device != "cpu":
        raise DependencyError(
            f"{what} needs a CUDA GPU or the CPU (bitsandbytes), but the model is "
            f"loading on {device!r}; pass quantization=None to load unquantized"
        )
    if not bitsandbytes_available:
        raise DependencyError(
            f"{what} needs the bitsandbytes package; install it with "
            "`pip install bitsandbytes` or pass quantization=None"
        )
    return quantization


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def import_bitsandbytes() -> Any:
    """Import bitsandbytes without letting it fetch code from the Hugging Face Hub.

    On CPUs with AVX512-BF16, importing bitsandbytes calls
    ``kernels.get_kernel("kernels-community/quantization-bitsandbytes")``: an HTTP request to the
    Hub to check the publisher, then the download and loading of a compiled kernel (remote
    code); offline it fails and logs a warning.  instit imports bitsandbytes with the
    ``kernels`` package hidden, so that step fails at once, locally, and bitsandbytes uses the
    kernels it ships (the same NF4 arithmetic); the warning about it is dropped.  Also dropped,
    for good: LLM.int8's warning, logged on every 8-bit layer call with float32 or bfloat16
    inputs, that it quantizes them from float16 (that is how LLM.int8 works; see
    docs/model.md).
    """
    import sys

    if "bitsandbytes" in sys.modules:
        return sys.modules["bitsandbytes"]
    quiet = _DropMessages("Failed to load CPU gemm_4bit_forward from kernels-community")
    cpu_ops = logging.getLogger("bitsandbytes.backends.cpu.ops")
    cpu_ops.addFilter(quiet)
    hidden = sys.modules.get("kernels")
    sys.modules["kernels"] = None  # type: ignore[assignment] - makes `import kernels` fail
    try:
        import bitsandbytes
    finally:
        if hidden is None:
            del sys.modules["kernels"]
        else:
            sys.modules["kernels"] = hidden
        cpu_ops.removeFilter(quiet)
    logging.getLogger("bitsandbytes.autograd._functions").addFilter(
        _DropMessages("MatMul8bitLt: inputs will be cast")
    )
    return bitsandbytes


def bitsandbytes_config(mode: Any, compute_dtype: str, *, cpu_offload: bool = False) -> Any:
    """The ``BitsAndBytesConfig`` for a resolved mode (``None`` stays ``None``).

    ``cpu_offload``: a ``device_map`` may put modules on the CPU; those stay unquantized
    (float32), as bitsandbytes requires.  Imports bitsandbytes through
    :func:`import_bitsandbytes` first, so that transformers finds it already imported.
    """
    if mode is None:
        return mode
    import_bitsandbytes()
    if type(mode).__name__ == "BitsAndBytesConfig":
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
            llm_int8_enable_fp32_cpu_offload=cpu_offload,
        )
    return BitsAndBytesConfig(
        load_in_8bit=True,
        llm_int8_skip_modules=list(SKIP_MODULES),
        llm_int8_enable_fp32_cpu_offload=cpu_offload,
    )
