"""Where the model's parts go: one device, or a ``device_map`` over several GPUs.

``device="cuda:1"`` puts the whole model on one device.  ``device_map`` spreads it over several
GPUs (and the CPU where they are full) through transformers' and accelerate's own placement:

* a strategy (``"auto"``, ``"balanced"``, ``"balanced_low_0"``, ``"sequential"``), optionally
  bounded by ``max_memory`` (``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``);
* or an explicit map ``{module name: device}``, e.g. ``{"model.vision_tower": 0,
  "model.multi_modal_projector": 0, "model.language_model": 1, "lm_head": 1}``; every weight must
  fall under one of the names (module names are transformers', see ``model.module``).

No module that has to run as one piece is split: decoder layers, vision encoder layers and the
multi-modal projector each stay on one device (``InstItLlavaForConditionalGeneration`` adds the
projector to what transformers' classes declare).  Offloading to disk is not supported: bound
the CPU's share with ``max_memory`` or load in 4-bit instead.  With no GPU visible, a strategy
loads the whole model on the CPU (what transformers does too), and then the CPU memory check
applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from instit.errors import DependencyError, InstitTypeError, InstitValueError

__all__ = ["STRATEGIES", "Placement", "check_map_names", "resolve_placement"]

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


@dataclass(frozen=True)
class Placement:
    """A resolved placement: ``device`` for a one-device load, else ``device_map``."""

    device: str
    device_map: str | dict[str, int | str] | None = None
    max_memory: dict[int | str, int | str] | None = None


def _map_device(value: object, cuda_count: int) -> int | str:
    """One ``device_map`` value as accelerate takes it: a GPU index or ``"cpu"``."""
    if isinstance(value, bool):
        raise InstitTypeError(f"device_map value {value!r} is not a device; use 0, 'cuda:1', 'cpu'")
    text = str(value)
    if text == "cpu":
        return "cpu"
    if text in ("disk", "meta"):
        raise InstitValueError(
            f"device_map puts modules on {text!r}: offloading to disk is not supported; bound "
            "the CPU with max_memory, add GPUs, or load with quantization='4bit'"
        )
    index: int | None = None
    if isinstance(value, int):
        index = value
    elif text == "cuda":
        index = 0
    elif text.startswith("cuda:") and text[5:].isdigit():
        index = int(text[5:])
    if index is None or index < 0:
        raise InstitValueError(
            f"device_map value {value!r} is not a device; use a GPU index (0, 1), 'cuda:1' or 'cpu'"
        )
    if index >= cuda_count:
        visible = f"{cuda_count} CUDA GPU(s) are" if cuda_count else "no CUDA GPU is"
        raise DependencyError(
            f"device_map puts modules on GPU {index} but {visible} visible to torch; use "
            "device='cpu' or a device_map within the visible GPUs"
        )
    return index


def resolve_placement(
    device: str,
    device_map: str | Mapping[str, Any] | None,
    max_memory: Mapping[int | str, int | str] | None,
    *,
    cuda_count: int | None = None,
) -> Placement:
    """Check ``device`` / ``device_map`` / ``max_memory`` and decide where the model goes.

    ``cuda_count`` is the number of visible CUDA GPUs (asked from torch when ``None``).

    Raises:
        InstitValueError: both ``device`` and ``device_map`` given, an unknown strategy, a
            ``disk`` value, ``max_memory`` without ``device_map``.
        DependencyError: a map naming a GPU that is not visible.
    """
    from instit.model.quantization import resolve_device

    if device_map is None:
        if max_memory is not None:
            raise InstitValueError(
                "max_memory bounds a device_map; pass device_map='auto' as well (or drop it)"
            )
        available = None if cuda_count is None else cuda_count > 0
        return Placement(resolve_device(device, cuda_available=available))
    if device != "auto":
        raise InstitValueError(
            f"pass either device={device!r} or device_map=..., not both (device_map decides "
            "where every module goes)"
        )
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if max_memory is not None and not isinstance(max_memory, Mapping):
        raise InstitTypeError(
            f"max_memory must be a dict such as {{0: '20GiB', 'cpu': '60GiB'}}, got "
            f"{type(max_memory).__name__}"
        )
    memory = None if max_memory is None else dict(max_memory)
    if isinstance(device_map, str):
        if device_map not in STRATEGIES:
            raise InstitValueError(
                f"device_map={device_map!r} is not a strategy; use one of {', '.join(STRATEGIES)} "
                "or a dict {module name: device}"
            )
        if cuda_count == 0:
            return Placement("cpu")  # transformers puts everything on the CPU too
        return Placement("cuda", device_map, memory)
    if not isinstance(device_map, Mapping) or not device_map:
        raise InstitTypeError(
            "device_map must be a strategy ('auto', ...) or a non-empty dict {module name: "
            f"device}}, got {device_map!r}"
        )
    mapped = {str(name): _map_device(value, cuda_count) for name, value in device_map.items()}
    devices = set(mapped.values())
    if devices == {"cpu"}:
        return Placement("cpu")
    if len(devices) == 1:
        return Placement(f"cuda:{devices.pop()}")
    first = min(d for d in devices if isinstance(d, int))
    return Placement(f"cuda:{first}", mapped, memory)


def check_map_names(device_map: Mapping[str, Any], parameters: Iterable[str]) -> None:
    """Every key of an explicit ``device_map`` names a module (or a weight) and every weight is
    under one.

    ``parameters`` are the model's parameter names (transformers' names).
    """
    names = list(parameters)
    parts = [n.split(".") for n in names]
    modules = {""} | {".".join(p[:i]) for p in parts for i in range(1, len(p))}
    unknown = sorted(key for key in device_map if key not in modules and key not in names)
    if unknown:
        top = sorted({".".join(p[: min(2, len(p) - 1)]) for p in parts})
        raise InstitValueError(
            f"device_map names {unknown[:5]} which are not modules of this model; module names "
            f"start with {top} (see model.module.named_modules())"
        )
    keys = list(device_map)
    uncovered = [n for n in names if not any(k in ("", n) or n.startswith(k + ".") for k in keys)]
    if uncovered:
        raise InstitValueError(
            f"device_map leaves {len(uncovered)} weights without a device, e.g. {uncovered[:3]}; "
            "add their modules (or '' for everything else)"
        )
