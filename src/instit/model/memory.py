"""Will a CPU load fit in memory? What it needs, what is available, and which setting fits.

Before a CPU load reads any weight, :func:`check_cpu_load` compares what the load needs with the
memory that is available:

* **needed** = the weights in the chosen setting + a working overhead.  The weights come from the
  checkpoint's safetensors headers (shapes only, no tensor is read): the language model's decoder
  linear layers are what bitsandbytes quantizes (:data:`QUANTIZED_BYTES` per parameter); every
  other tensor (vision tower, projector, embeddings, ``lm_head``, norms, biases) stays in the load
  dtype.  The overhead (:data:`OVERHEAD_BYTES` + :data:`OVERHEAD_SHARE` of the weights) covers
  the transient tensors of the load and the first answer to one anyres image (~3.7k visual
  tokens); both were measured with ``benchmarks/cpu.py``.
* **available** = ``psutil``'s available memory (free RAM plus what the kernel can reclaim),
  capped by a cgroup memory limit where one applies; or the value of the environment variable
  :data:`MEMORY_ENV` (``"16GiB"``, ``"12000MB"``, bytes) when it is set: the seam tests use, and
  a way to budget less than the machine has (or more, where swap is acceptable).

The settings, most faithful first (:data:`SETTINGS`): float32, bfloat16, then 8-bit and 4-bit
language-model layers with float32 / bfloat16 for the rest.  Only the parts the caller left at
``"auto"`` may move: an explicit ``dtype`` or ``quantization`` is never changed, and an explicit
setting that does not fit is refused with :class:`~instit.errors.NotEnoughMemoryError`, the
numbers and the most faithful setting that fits.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instit.errors import InstitValueError, NotEnoughMemoryError

if TYPE_CHECKING:
    from instit.model.checkpoint import CheckpointSpec

__all__ = [
    "MEMORY_ENV",
    "OVERHEAD_BYTES",
    "OVERHEAD_SHARE",
    "QUANTIZED_BYTES",
    "SETTINGS",
    "MemoryCheck",
    "ParameterCount",
    "available_memory",
    "check_cpu_load",
    "count_parameters",
    "count_shapes",
    "load_bytes",
    "parse_bytes",
]

logger = logging.getLogger("instit.model")

#: Environment variable that replaces the measured available memory (a size such as ``"16GiB"``).
MEMORY_ENV = "INSTIT_AVAILABLE_MEMORY"

#: Bytes per quantized parameter: NF4 packs two weights per byte plus one bfloat16 scale per
#: 64-weight block (the layout bitsandbytes' CPU kernels keep); LLM.int8 one byte per weight plus
#: a float32 scale per row (counted separately, :attr:`ParameterCount.quantized_rows`).
QUANTIZED_BYTES = {"4bit": 0.5 + 2 / 64, "8bit": 1.0}
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

#: Working memory on top of the weights: a fixed part and a share of the weights (measured with
#: ``benchmarks/cpu.py``: the load's transient tensors and one anyres answer's activations).
OVERHEAD_BYTES = 1 << 30
OVERHEAD_SHARE = 0.2

_DTYPES = ("float32", "bfloat16")
_QUANTIZATIONS: tuple[str | None, ...] = (None, "8bit", "4bit")

#: ``(dtype, quantization)`` pairs, most faithful first: the weights' precision decides first
#: (full, LLM.int8, NF4), then the dtype of everything else.
SETTINGS: tuple[tuple[str, str | None], ...] = tuple(
    (d, q) for q in _QUANTIZATIONS for d in _DTYPES
)


@dataclass(frozen=True)
class ParameterCount:
    """A checkpoint's parameters: those bitsandbytes quantizes and the rest."""

    quantized: int
    quantized_rows: int
    other: int

    @property
    def total(self) -> int:
        """All parameters."""
        return self.quantized + self.other


@dataclass(frozen=True)
class MemoryCheck:
    """The outcome of :func:`check_cpu_load` (JSON-ready through :meth:`to_dict`).

    ``needed`` maps each considered setting (``"float32"``, ``"bfloat16+4bit"`` ...) to its bytes;
    ``reason`` says why the chosen setting differs from the default, or is ``None``.
    """

    dtype: str
    quantization: str | None
    needed_bytes: int
    available_bytes: int
    available_source: str
    parameters: int
    needed: dict[str, int]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dtype": self.dtype,
            "quantization": self.quantization,
            "needed_bytes": self.needed_bytes,
            "available_bytes": self.available_bytes,
            "available_source": self.available_source,
            "parameters": self.parameters,
            "needed": dict(self.needed),
            "reason": self.reason,
        }


def count_shapes(shapes: Iterable[tuple[str, Sequence[int]]], layout: str) -> ParameterCount:
    """Count ``(name, shape)`` pairs named as in ``layout`` (``"original"``/``"transformers"``)."""
    from instit.model.weights import ORIGINAL_KEY_MAPPING, TRANSFORMERS_KEY_MAPPING

    mapping = ORIGINAL_KEY_MAPPING if layout == "original" else TRANSFORMERS_KEY_MAPPING
    quantized = rows = other = 0
    for name, shape in shapes:
        numel = math.prod(shape)
        renamed = name
        for pattern, replacement in mapping.items():
            renamed = re.sub(pattern, replacement, renamed)
        if len(shape) == 2 and renamed.startswith("model.language_model.layers."):
            quantized += numel
            rows += shape[0]
        else:
            other += numel
    return ParameterCount(quantized=quantized, quantized_rows=rows, other=other)


def count_parameters(spec: CheckpointSpec) -> ParameterCount:
    """Count ``spec``'s parameters from its safetensors headers (no tensor data is read)."""
    from instit.model.checkpoint import _open_shard

    by_shard: dict[str, list[str]] = {}
    for name, shard in spec.weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    shapes: list[tuple[str, list[int]]] = []
    for shard, names in sorted(by_shard.items()):
        with _open_shard(spec.path, shard) as handle:
            shapes += [(name, handle.get_slice(name).get_shape()) for name in names]
    return count_shapes(shapes, spec.layout)


def load_bytes(count: ParameterCount, dtype: str, quantization: str | None) -> int:
    """What a CPU load of ``count`` parameters needs: weights plus the working overhead."""
    plain = _DTYPE_BYTES[dtype]
    weights = count.other * plain
    if quantization is None:
        weights += count.quantized * plain
    else:
        weights += round(count.quantized * QUANTIZED_BYTES[quantization])
        if quantization == "8bit":
            weights += 4 * count.quantized_rows
    return int(weights * (1 + OVERHEAD_SHARE)) + OVERHEAD_BYTES


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def parse_bytes(text: str) -> int:
    """Bytes in ``"16GiB"``, ``"16G"`` (binary), ``"16GB"`` (decimal), ``"1.5 GiB"``, ``"123"``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InstitValueError(
            f"{MEMORY_ENV}={text!r} is not a size; use a number of bytes or a size such as "
            "'16GiB', '12GB' or '8000MiB'"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def _cgroup_available() -> int | None:
    """Room left under a cgroup v2 memory limit (not counting reclaimable file pages)."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((root / "memory.current").read_text())
        stat = dict(
            line.split() for line in (root / "memory.stat").read_text().splitlines() if line
        )
    except (OSError, ValueError):
        return None
    reclaimable = int(stat.get("inactive_file", 0))
    return max(0, int(limit) - current + reclaimable)


def available_memory() -> tuple[int, str]:
    """``(bytes, where the figure came from)``: :data:`MEMORY_ENV` if set, else measured."""
    text = os.environ.get(MEMORY_ENV)
    if text:
        return parse_bytes(text), MEMORY_ENV
    import psutil

    available = int(psutil.virtual_memory().available)
    limited = _cgroup_available()
    if limited is not None and limited < available:
        return limited, "cgroup memory limit"
    return available, "available RAM"


def _label(dtype: str, quantization: str | None) -> str:
    return dtype if quantization is None else f"{dtype}+{quantization}"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


def _describe(dtype: str, quantization: str | None) -> str:
    if quantization is None:
        return f'dtype="{dtype}"'
    return f'quantization="{quantization}" (dtype="{dtype}")'


def check_cpu_load(
    spec: CheckpointSpec,
    dtype: str,
    quantization: str | None,
    *,
    dtype_fixed: bool,
    quantization_fixed: bool,
    bitsandbytes_available: bool = True,
) -> MemoryCheck:
    """Decide the setting of a CPU load so that it fits, or refuse before any weight is read.

    ``dtype``/``quantization`` are the resolved defaults; ``*_fixed`` say which of them the
    caller chose explicitly (those never change).  Returns the setting to load with; logs a
    warning when it differs from the default.

    Raises:
        NotEnoughMemoryError: no allowed setting fits; the message gives what the requested
            setting needs, what is available, and the most faithful setting that would fit.
    """
    count = count_parameters(spec)
    available, source = available_memory()
    dtypes = [dtype] if dtype_fixed else list(_DTYPES)
    modes = [quantization] if quantization_fixed else list(_QUANTIZATIONS)
    allowed = [
        (d, q)
        for q in modes
        for d in dtypes
        if q is None or bitsandbytes_available or q == quantization
    ]
    needed = {_label(d, q): load_bytes(count, d, q) for d, q in {*allowed, *SETTINGS}}
    default = _label(dtype, quantization)
    fitting = [(d, q) for d, q in allowed if needed[_label(d, q)] <= available]

    def result(chosen: tuple[str, str | None], reason: str | None) -> MemoryCheck:
        return MemoryCheck(
            dtype=chosen[0],
            quantization=chosen[1],
            needed_bytes=needed[_label(*chosen)],
            available_bytes=available,
            available_source=source,
            parameters=count.total,
            needed=needed,
            reason=reason,
        )

    short = (
        f"loading {spec.path.name} on the CPU as {default} needs about "
        f"{_gib(needed[default])} but {_gib(available)} is available ({source})"
    )
    if fitting and fitting[0] == (dtype, quantization):
        return result(fitting[0], None)
    if fitting:
        chosen = fitting[0]
        reason = (
            f"{short}; loading with {_describe(*chosen)} instead, which needs "
            f"{_gib(needed[_label(*chosen)])} (pass dtype/quantization explicitly to choose)"
        )
        logger.warning(reason)
        return result(chosen, reason)
    anywhere = [(d, q) for d, q in SETTINGS if needed[_label(d, q)] <= available]
    if anywhere:
        fix = f"pass {_describe(*anywhere[0])}, which needs {_gib(needed[_label(*anywhere[0])])}"
        if anywhere[0][1] is not None and not bitsandbytes_available:
            fix += " (after `pip install bitsandbytes`)"
    else:
        fix = f"even the smallest setting needs {_gib(min(needed.values()))}; free memory"
    raise NotEnoughMemoryError(
        f"{short}; {fix}. The weights were not read. Set {MEMORY_ENV} (for example "
        f"{MEMORY_ENV}=32GiB) to budget a different amount of memory"
    )
