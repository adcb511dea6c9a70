"""Model test helpers: edit real safetensors checkpoints written by make_tiny_checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from instit.testing import make_tiny_checkpoint

ARCHS = ["qwen2-siglip", "vicuna-clip"]
TOWER_PREFIX = "model.vision_tower.vision_tower.vision_model."


def tiny(folder: Path, arch: str = "qwen2-siglip", **kwargs: Any) -> Path:
    """A fresh tiny checkpoint in ``folder`` (a new path)."""
    return make_tiny_checkpoint(folder, arch, **kwargs)  # type: ignore[arg-type]


def copy_checkpoint(source: Path, folder: Path) -> Path:
    """A copy of ``source`` that a test may edit."""
    shutil.copytree(source, folder)
    return folder


def shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's top-level shards, by name."""
    tensors: dict[str, torch.Tensor] = {}
    for shard in shard_files(folder):
        with safe_open(str(shard), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - not a mapping
                tensors[name] = handle.get_tensor(name)
    return tensors


def write_tensors(folder: Path, tensors: dict[str, torch.Tensor], *, parts: int = 2) -> None:
    """Replace the checkpoint's weights: ``parts`` shards with an index, or one file (parts=1)."""
    for shard in shard_files(folder):
        shard.unlink()
    (folder / "model.safetensors.index.json").unlink(missing_ok=True)
    names = sorted(tensors)
    if parts == 1:
        save_file({n: tensors[n].contiguous() for n in names}, str(folder / "model.safetensors"))
        return
    chunk = -(-len(names) // parts)
    weight_map = {}
    for i in range(parts):
        file = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        part = {n: tensors[n].contiguous() for n in names[i * chunk : (i + 1) * chunk]}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def edit_json(path: Path, **changes: Any) -> None:
    """Update (value) or delete (``None``) top-level fields of a JSON file."""
    data = read_json(path)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=1))


def image(width: int = 300, height: int = 220, seed: int = 0) -> Image.Image:
    """A deterministic noisy RGB image (random weights need varied pixels to vary outputs)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height // 4, width // 4, 3), generator=generator)
    small = Image.fromarray(pixels.to(torch.uint8).numpy())
    return small.resize((width, height), Image.BICUBIC)


def last_logits(model: Any, media: Any, question: str) -> torch.Tensor:
    """The model's logits at the last position for ``question`` about ``media``."""
    with torch.inference_mode():
        return model.module(**model.prepare(media, question)).logits[0, -1]
