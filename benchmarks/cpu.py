"""The main job on a CPU: float32 vs bfloat16 vs 8-bit vs 4-bit (bitsandbytes' CPU backend).

    .venv/bin/python benchmarks/cpu.py                # 0.5B measured, 7B memory derived, ~40 min
    .venv/bin/python benchmarks/cpu.py --shapes 7b    # also run the 7B shape (16 GB checkpoint)
    .venv/bin/python benchmarks/cpu.py --shapes tiny --derive --steps 8  # check the script

For each model shape (``--shapes``: ``0.5b`` = LLaVA-OneVision-0.5B, ``7b`` = Inst-It Qwen2-7B,
random bfloat16 weights written tensor by tensor by ``load.py``'s :func:`write_checkpoints`, so
the whole model never sits in memory while it is made) and each setting (``--settings``:
``float32``, ``bfloat16``, ``8bit`` and ``4bit`` with float32 for the unquantized parts, which
is what ``quantization="auto"`` falls back to, and ``bf16+4bit``), one fresh process:

* loads with ``InstIt.from_pretrained(device="cpu", ...)`` and reports the **load peak** (growth
  of ``VmHWM``: includes the memory-mapped checkpoint pages) and the **anonymous peak** (private
  memory, sampled);
* prefills one anyres image (the bundled example image with its marks: 3,699 visual tokens for
  the SigLIP-384 shapes) and times it; then decodes ``--steps`` greedy tokens with the KV cache
  (tokens/s);
* reports the **steady RSS** after that (growth over the process before the load) and the peak
  over the whole run;
* saves the prefill logits and the greedy tokens, which are compared with float32's: the max
  absolute logit difference and the share of the ``--steps`` greedy tokens that stay the same
  (position by position).

A setting that instit's memory check refuses (``NotEnoughMemoryError``, e.g. the 7B shape in
float32 on a 24 GB machine) is not run: its memory row is **derived** from the same setting on
the smaller shape (measured steady RSS per byte of estimated weights, times the larger shape's
estimated weights) and marked so; ``--derive`` shapes get such rows without being run.
``--max-prefill-params`` skips the timing runs of larger shapes (memory is still measured).

The same drift figures are computed on the conformance cases (``../shared/conformance``: the two
tiny checkpoints, 4 images and 2 videos each) in this process, when they are present.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package
from load import ARCHITECTURES, _AnonPeak, _status_kb, write_checkpoints

SETTINGS = {
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "8bit": ("float32", "8bit"),
    "4bit": ("float32", "4bit"),
    "bf16+4bit": ("bfloat16", "4bit"),
}
QUESTION = "What is [1] doing, and where is [2]?"
CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def greedy(
    model: Any, inputs: dict[str, Any], steps: int
) -> tuple[Any, list[int], dict[str, float]]:
    """Prefill ``inputs``, then ``steps`` greedy tokens with the KV cache.

    Returns the prefill's last logits, the tokens and the timings: wall seconds of the prefill
    and the decode, and the CPU seconds this process spent on each (all threads: on a shared
    machine, CPU seconds / threads is what the wall time would be with the cores to itself).
    """
    import torch

    with torch.inference_mode():
        start, cpu_start = time.perf_counter(), time.process_time()
        out = model.module(**inputs, use_cache=True, logits_to_keep=1)
        prefill, prefill_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        first = out.logits[0, -1].float().clone()
        tokens: list[int] = []
        logits = out.logits[0, -1]
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            token = int(logits.argmax())
            tokens.append(token)
            out = model.module(
                input_ids=torch.tensor([[token]]),
                cache=out.cache,
                use_cache=True,
            )
            logits = out.logits[0, -1]
        timings = {
            "prefill_seconds": prefill,
            "prefill_cpu_seconds": prefill_cpu,
            "decode_seconds": time.perf_counter() - start,
            "decode_cpu_seconds": time.process_time() - cpu_start,
            "threads": torch.get_num_threads(),
        }
    return first, tokens, timings


def worker(folder: str, setting: str, steps: int, prefill: bool, out_file: str) -> None:
    """One setting in a fresh process; prints one JSON line (MiB are growth over the start)."""
    import torch

    import instit.model.memory
    import instit.model.modeling
    import instit.prompting.templates  # noqa: F401 - from_pretrained's lazy imports, done first
    from instit import InstIt, NotEnoughMemoryError, draw_marks, example_image
    from instit.model.quantization import import_bitsandbytes

    torch.manual_seed(0)
    dtype, quantization = SETTINGS[setting]
    if quantization is not None:
        import_bitsandbytes()
    image, instances = example_image()
    marked = draw_marks(image, instances)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_before, anon_before = _status_kb("VmRSS"), _status_kb("RssAnon")
    anon = _AnonPeak()
    start = time.perf_counter()
    try:
        model = InstIt.from_pretrained(
            folder, device="cpu", dtype=dtype, quantization=quantization, progress=False
        )
    except NotEnoughMemoryError as exc:
        anon.finish()
        print(json.dumps({"refused": str(exc)}))
        return
    result: dict[str, Any] = {
        "load_seconds": time.perf_counter() - start,
        "load_peak": (_status_kb("VmHWM") - rss_before) / 1024,
        "load_anon_peak": (anon.finish() - anon_before) / 1024,
        "needed_estimate": model.memory.needed_bytes / 2**20 if model.memory else None,
    }
    if prefill:
        inputs = model.prepare(marked, QUESTION)
        result["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        logits, tokens, timings = greedy(model, inputs, steps)
        result.update(timings, decode_tps=steps / timings["decode_seconds"] if steps else None)
        result["load_average"] = os.getloadavg()[0]
        torch.save({"logits": logits, "tokens": tokens}, out_file)
    gc.collect()
    result["steady"] = (_status_kb("VmRSS") - rss_before) / 1024
    result["steady_anon"] = (_status_kb("RssAnon") - anon_before) / 1024
    result["peak"] = (_status_kb("VmHWM") - rss_before) / 1024
    print(json.dumps(result))


def run_worker(folder: Path, setting: str, steps: int, prefill: bool, out_file: Path) -> dict:
    command = [sys.executable, __file__, "--worker", str(folder), setting, str(steps)]
    command += ["1" if prefill else "0", str(out_file)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{setting} on {folder} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def drift(reference: dict[str, Any], other: dict[str, Any]) -> tuple[float, float]:
    """Max abs difference of the prefill logits and the share of equal greedy tokens."""
    difference = float((reference["logits"] - other["logits"]).abs().max())
    same = sum(a == b for a, b in zip(reference["tokens"], other["tokens"], strict=True))
    return difference, same / max(1, len(reference["tokens"]))


def estimated_weights(count: Any, setting: str) -> int:
    """Weights of ``setting`` per :mod:`instit.model.memory` (without its working overhead)."""
    from instit.model.memory import OVERHEAD_BYTES, OVERHEAD_SHARE, load_bytes

    return round((load_bytes(count, *SETTINGS[setting]) - OVERHEAD_BYTES) / (1 + OVERHEAD_SHARE))


def shape_count(shape: str) -> Any:
    """The :class:`~instit.model.memory.ParameterCount` of a preset, from a meta-device model."""
    import torch
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from instit.model.memory import count_shapes

    arch = ARCHITECTURES[shape]
    config = LlavaOnevisionConfig(
        text_config={"model_type": "qwen2", **arch.text_config(_NoTokenizer())},
        vision_config={"model_type": "siglip_vision_model", **arch.vision_config()},
    )
    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    return count_shapes(((n, t.shape) for n, t in model.state_dict().items()), "transformers")


class _NoTokenizer:
    """Stands in for a tokenizer where only the architecture's sizes matter."""

    eos_token_id = 0

    def convert_tokens_to_ids(self, token: str) -> int:
        return 0


def conformance_drift(settings: list[str], steps: int) -> list[str]:
    """Drift vs float32 on every conformance case, per tiny checkpoint and setting."""
    import numpy as np
    from PIL import Image

    from instit import InstIt

    lines = []
    for checkpoint in sorted((CONFORMANCE / "checkpoints").iterdir()):
        cases = sorted(p for p in (CONFORMANCE / "cases" / checkpoint.name).iterdir() if p.is_dir())
        runs: dict[str, list[dict[str, Any]]] = {}
        for setting in settings:
            dtype, quantization = SETTINGS[setting]
            model = InstIt.from_pretrained(
                checkpoint, device="cpu", dtype=dtype, quantization=quantization, progress=False
            )
            runs[setting] = []
            for case in cases:
                frames = sorted(case.glob("frame_*.png"))
                media: Any = (
                    [Image.open(f).convert("RGB") for f in frames]
                    if frames
                    else Image.open(case / "image.png").convert("RGB")
                )
                prompt = str(np.load(case / "case.npz")["prompt"])
                body = prompt.split("<image>\n", 1)[1]
                end = "<|im_end|>" if model.template == "qwen_1_5" else " ASSISTANT:"
                inputs = model.prepare(media, body.rsplit(end, 1)[0])
                logits, tokens, _ = greedy(model, inputs, steps)
                runs[setting].append({"logits": logits, "tokens": tokens})
            del model
            gc.collect()
        for setting in settings[1:]:
            pairs = [drift(r, o) for r, o in zip(runs["float32"], runs[setting], strict=True)]
            lines.append(
                f"| {checkpoint.name} | {setting} | {max(p[0] for p in pairs):.3f} | "
                f"{sum(p[1] for p in pairs) / len(pairs):.1%} |"
            )
    return lines


def derived_row(shape: str, setting: str, measured: tuple[str, dict[str, Any]]) -> str:
    """A memory-only table row for ``shape``, scaled from ``measured`` = (shape, its row):
    steady and peak RSS per byte of estimated weights, times ``shape``'s estimated weights."""
    small, row = measured
    weights = estimated_weights(shape_count(shape), setting)
    scale = weights / estimated_weights(shape_count(small), setting)
    cells = [
        f"~{row[key] * scale:,.0f}"
        for key in ("load_peak", "load_anon_peak", "steady", "steady_anon", "peak")
    ]
    return (
        f"| {shape} (derived from {small}) | {setting} | | "
        + " | ".join(cells)
        + f" | | | | (weights {weights / 2**30:.1f} GiB) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=["0.5b"], choices=ARCHITECTURES)
    parser.add_argument(
        "--derive",
        nargs="*",
        default=["7b"],
        choices=ARCHITECTURES,
        help="shapes whose memory rows are derived from the first measured shape, not run",
    )
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--steps", type=int, default=64, help="greedy tokens per run")
    parser.add_argument(
        "--max-prefill-params",
        type=float,
        default=2e9,
        help="shapes with more parameters skip the prefill/decode runs (memory only)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-load-bench",
        help="folder for the generated checkpoints (shared with load.py)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-conformance", action="store_true", help="no conformance drift")
    args = parser.parse_args()
    if "float32" not in args.settings:
        args.settings.insert(0, "float32")  # the drift reference
    results: dict[str, dict[str, Any]] = {}
    table = [
        "| shape | setting | load s | load peak MiB | anon peak MiB | steady MiB | steady anon MiB "
        "| peak MiB | prefill s (CPU s) | decode tok/s | max abs logit diff | same greedy tokens |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    scratch = Path(tempfile.mkdtemp(prefix="instit-cpu-bench-"))
    smaller: dict[str, tuple[Path, dict[str, Any]]] = {}
    for shape in args.shapes:
        started = time.perf_counter()
        folder = write_checkpoints(args.cache / shape, ARCHITECTURES[shape], layouts=("original",))
        folder = folder["original"]
        from instit.model.checkpoint import read_checkpoint
        from instit.model.memory import count_parameters

        params = count_parameters(read_checkpoint(folder)).total
        prefill = params <= args.max_prefill_params
        print(
            f"{shape}: {params / 1e9:.2f} B parameters (checkpoint ready in "
            f"{time.perf_counter() - started:.0f} s); prefill/decode runs: {prefill}",
            flush=True,
        )
        outputs: dict[str, Any] = {}
        for setting in args.settings:
            out_file = scratch / f"{shape}-{setting}.pt"
            row = run_worker(folder, setting, args.steps, prefill, out_file)
            results[f"{shape}/{setting}"] = row
            print(f"  {setting}: {json.dumps(row)}", flush=True)
            if "refused" in row:
                if setting not in smaller:
                    table.append(f"| {shape} | {setting} | refused: {row['refused'][:120]} |")
                    continue
                table.append(derived_row(shape, setting, smaller[setting]))
                continue
            if prefill:
                import torch

                outputs[setting] = torch.load(out_file)
            cells = [
                f"{row['load_seconds']:.1f}",
                f"{row['load_peak']:,.0f}",
                f"{row['load_anon_peak']:,.0f}",
                f"{row['steady']:,.0f}",
                f"{row['steady_anon']:,.0f}",
                f"{row['peak']:,.0f}",
            ]
            if prefill:
                cells += [
                    f"{row['prefill_seconds']:.1f} ({row['prefill_cpu_seconds']:.0f})",
                    f"{row['decode_tps']:.2f}",
                ]
                if setting == "float32" or "float32" not in outputs:
                    cells += ["(reference)" if setting == "float32" else "", ""]
                else:
                    difference, same = drift(outputs["float32"], outputs[setting])
                    row.update(max_abs_logit_diff=difference, same_greedy=same)
                    cells += [f"{difference:.3f}", f"{same:.1%}"]
            else:
                cells += ["", "", "", ""]
            table.append(f"| {shape} | {setting} | " + " | ".join(cells) + " |")
            smaller.setdefault(setting, (shape, row))
    for shape in args.derive:
        for setting in args.settings:
            if setting in smaller:
                table.append(derived_row(shape, setting, smaller[setting]))
    print()
    print("\n".join(table))
    if CONFORMANCE.exists() and not args.skip_conformance:
        print()
        print(
            "| conformance checkpoint | setting | max abs logit diff "
            f"| same greedy tokens ({args.steps}) |"
        )
        print("|---|---|---:|---:|")
        print("\n".join(conformance_drift(args.settings, args.steps)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6])
    else:
        main()
