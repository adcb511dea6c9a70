"""An exported checkpoint run with plain transformers vs the reference's golden outputs.

Converts both conformance checkpoints (``../shared/conformance``, or ``INSTIT_SHARED_DIR``) with
``instit.model.convert`` into a temporary folder and, for every public case, runs the export the
way a transformers user would: ``AutoProcessor`` (``apply_chat_template`` + ``__call__``) and
``AutoModelForImageTextToText``. Three processor set-ups are compared in the same run:

* ``default``: ``AutoProcessor.from_pretrained(dst)`` (torchvision image and video processors
  when torchvision is installed),
* ``pil``: ``instit.model.load_processor(dst)`` (PIL image processor),
* ``exact``: the reference's own pixel values fed with the processor's ids (video only: isolates
  transformers' extra newline token from the video processor's resampling).

For each it reports whether the token ids equal the reference's (with the placeholder expanded),
the largest pixel difference, the largest last-position logit difference (first ``len(tokenizer)``
logits) and whether the 8 greedy tokens are the reference's; plus the median time of one
processor call (``default`` vs ``pil``).

    .venv/bin/python benchmarks/export.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from instit.model import convert, load_processor

SHARED = Path(os.environ.get("INSTIT_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
CONFORMANCE = SHARED / "conformance"
USER_END = {"vicuna_v1": " ASSISTANT:", "qwen_1_5": "<|im_end|>\n<|im_start|>assistant\n"}


def case_media(case: Path) -> tuple[str, Any]:
    if (case / "image.png").exists():
        with Image.open(case / "image.png") as file:
            return "image", file.convert("RGB")
    frames = []
    for path in sorted(case.glob("frame_*.png")):
        with Image.open(path) as file:
            frames.append(np.asarray(file.convert("RGB")))
    return "video", np.stack(frames)


def question(meta: dict[str, Any]) -> str:
    """The user's text: what the reference's prompt has between ``<image>\\n`` and the turn end."""
    return meta["prompt"].split("<image>\n", 1)[1].removesuffix(USER_END[meta["conv_template"]])


def expanded_reference_ids(golden: Any, placeholder: int) -> list[int]:
    ids = golden["input_ids"].reshape(-1).tolist()
    at = ids.index(-200)
    count = int(golden["num_visual_tokens"])
    return ids[:at] + [placeholder] * count + ids[at + 1 :]


def median_ms(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run_case(model: Any, processor: Any, case: Path, repeats: int) -> dict[str, Any]:
    meta = json.loads((case / "meta.json").read_text())
    golden = np.load(case / "case.npz")
    golden_pixels = torch.from_numpy(np.load(case / "pixel_values.npz")["pixel_values"])
    kind, media = case_media(case)
    messages = [
        {"role": "user", "content": [{"type": kind}, {"type": "text", "text": question(meta)}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    media_kwargs = {"images": media} if kind == "image" else {"videos": [media]}
    inputs = processor(text=prompt, return_tensors="pt", **media_kwargs)
    key = "pixel_values" if kind == "image" else "pixel_values_videos"
    ms = median_ms(lambda: processor(text=prompt, return_tensors="pt", **media_kwargs), repeats)
    placeholder = processor.image_token_id if kind == "image" else processor.video_token_id
    reference_ids = expanded_reference_ids(golden, placeholder)
    pixels = inputs[key].reshape(golden_pixels.shape)
    rows = [("processor", inputs, pixels)]
    if kind == "video":
        exact = dict(inputs)
        exact[key] = golden_pixels.reshape(inputs[key].shape)
        rows.append(("exact pixels", exact, golden_pixels))
    vocab = golden["logits_last"].shape[-1]
    out = []
    for label, feed, fed_pixels in rows:
        with torch.inference_mode():
            logits = model(**feed).logits[0, -1, :vocab]
            generated = model.generate(**feed, max_new_tokens=8, do_sample=False)
        new = generated[0, feed["input_ids"].shape[1] :].tolist()
        out.append(
            {
                "pixels": label,
                "ids_equal": feed["input_ids"][0].tolist() == reference_ids,
                "visual_tokens": int((feed["input_ids"][0] == placeholder).sum()),
                "reference_tokens": int(golden["num_visual_tokens"]),
                "pixel_diff": float((fed_pixels - golden_pixels).abs().max()),
                "logit_diff": float((logits - torch.from_numpy(golden["logits_last"])).abs().max()),
                "greedy_equal": new == golden["generated_ids"].tolist(),
                "ms": ms,
            }
        )
    return {"kind": kind, "rows": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "| checkpoint | case | processor | pixels | ids = reference | visual tokens (ref) "
            "| max pixel diff | max logit diff | greedy 8 = reference | processor ms |"
        )
        print("|---|---|---|---|---|---|---:|---:|---|---:|")
        for checkpoint in sorted((CONFORMANCE / "checkpoints").iterdir()):
            dst = convert(checkpoint, Path(tmp) / checkpoint.name, progress=False)
            model = AutoModelForImageTextToText.from_pretrained(dst, dtype=torch.float32).eval()
            processors = {
                "default": AutoProcessor.from_pretrained(dst),
                "pil": load_processor(dst),
            }
            for case in sorted((CONFORMANCE / "cases" / checkpoint.name).iterdir()):
                if not case.is_dir():
                    continue
                for name, processor in processors.items():
                    result = run_case(model, processor, case, args.repeats)
                    if result["kind"] == "video" and name == "pil":
                        continue  # the same (torchvision-only) video processor as "default"
                    for row in result["rows"]:
                        print(
                            f"| {checkpoint.name} | {case.name} | {name} | {row['pixels']} "
                            f"| {row['ids_equal']} | {row['visual_tokens']} "
                            f"({row['reference_tokens']}) | {row['pixel_diff']:.4f} "
                            f"| {row['logit_diff']:.2e} | {row['greedy_equal']} "
                            f"| {row['ms']:.0f} |"
                        )


if __name__ == "__main__":
    main()
