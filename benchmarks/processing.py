"""Pixel preprocessing: instit's own PIL + numpy code vs transformers' ``*Pil`` image processors.

Runs on the conformance fixtures (``../shared/conformance``, or ``INSTIT_SHARED_DIR``): for each
of the 12 public cases it times both implementations (median of ``--repeats`` runs, after one
warm-up) and reports each one's largest absolute difference from the reference's golden pixel
values.  The transformers processors are built with every setting explicit (see
docs/processing.md); their defaults are wrong for these checkpoints.

    .venv/bin/python benchmarks/processing.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    CLIPImageProcessorPil,
    LlavaNextImageProcessorPil,
    LlavaOnevisionImageProcessorPil,
    SiglipImageProcessorPil,
)
from transformers.image_utils import PILImageResampling

from instit.model.processing import VisionSpec, process_frames, process_image

SHARED = Path(os.environ.get("INSTIT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
CONFORMANCE = SHARED / "conformance"


def load_spec(checkpoint: Path) -> VisionSpec:
    config = json.loads((checkpoint / "config.json").read_text())
    tower = checkpoint / config["mm_vision_tower"]
    return VisionSpec.from_llava_config(
        config,
        json.loads((tower / "config.json").read_text()),
        preprocessor_config=json.loads((tower / "preprocessor_config.json").read_text()),
    )


def transformers_processors(spec: VisionSpec):
    """(image processor, frame processor) with every setting spelled out."""
    side = spec.image_size
    common = {
        "image_mean": list(spec.mean),
        "image_std": list(spec.std),
        "resample": PILImageResampling.BICUBIC,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
    }
    pinpoints = [list(p) for p in spec.grid_pinpoints]
    if spec.tower == "siglip":
        image = LlavaOnevisionImageProcessorPil(
            image_grid_pinpoints=pinpoints,
            size={"height": side, "width": side},
            do_pad=True,
            **common,
        )
        frames = SiglipImageProcessorPil(size={"height": side, "width": side}, **common)
    else:
        crop = {"height": side, "width": side}
        image = LlavaNextImageProcessorPil(
            image_grid_pinpoints=pinpoints,
            size={"shortest_edge": side},
            crop_size=crop,
            do_center_crop=True,
            do_pad=True,
            **common,
        )
        frames = CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size=crop, do_center_crop=True, **common
        )
    return image, frames


def median_ms(fn, repeats: int) -> tuple[float, torch.Tensor]:
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for checkpoint in sorted((CONFORMANCE / "checkpoints").iterdir()):
        spec = load_spec(checkpoint)
        hf_image, hf_frames = transformers_processors(spec)
        for case in sorted((CONFORMANCE / "cases" / checkpoint.name).iterdir()):
            if not case.is_dir():
                continue
            golden = np.load(case / "pixel_values.npz")["pixel_values"]
            if (case / "image.png").exists():
                with Image.open(case / "image.png") as file:
                    media = file.convert("RGB")
                ours = lambda m=media, s=spec: process_image(m, s)[0][None]  # noqa: E731
                theirs = lambda m=media, p=hf_image: p(m, return_tensors="pt")["pixel_values"]  # noqa: E731
            else:
                media = []
                for path in sorted(case.glob("frame_*.png")):
                    with Image.open(path) as file:
                        media.append(file.convert("RGB"))
                ours = lambda m=media, s=spec: process_frames(m, s)  # noqa: E731
                theirs = lambda m=media, p=hf_frames: p(m, return_tensors="pt")["pixel_values"]  # noqa: E731
            ours_ms, ours_px = median_ms(ours, args.repeats)
            theirs_ms, theirs_px = median_ms(theirs, args.repeats)
            rows.append(
                (
                    checkpoint.name,
                    case.name,
                    ours_ms,
                    theirs_ms,
                    theirs_ms / ours_ms,
                    float(np.abs(ours_px.numpy() - golden).max()),
                    float(np.abs(theirs_px.numpy() - golden).max()),
                )
            )
    header = (
        "checkpoint",
        "case",
        "instit ms",
        "transformers ms",
        "ratio",
        "instit diff",
        "transformers diff",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, case, ours_ms, theirs_ms, ratio, ours_diff, theirs_diff in rows:
        print(
            f"{name} | {case} | {ours_ms:.1f} | {theirs_ms:.1f} | {ratio:.2f}x | "
            f"{ours_diff:.1e} | {theirs_diff:.1e}"
        )
    total_ours = sum(r[2] for r in rows)
    total_theirs = sum(r[3] for r in rows)
    print(
        f"all | {len(rows)} cases | {total_ours:.1f} | {total_theirs:.1f} | "
        f"{total_theirs / total_ours:.2f}x | {max(r[5] for r in rows):.1e} | "
        f"{max(r[6] for r in rows):.1e}"
    )


if __name__ == "__main__":
    main()
