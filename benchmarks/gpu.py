"""GPU: Inst-It Qwen2-7B architecture in bfloat16 vs 4-bit NF4: memory, prefill, decoding.

    python benchmarks/gpu.py --json gpu.json                       # CUDA, full size (~5 min)
    .venv/bin/python benchmarks/gpu.py --device cpu --tiny --json /tmp/gpu-tiny.json

Writes (once, into ``--cache``) a random checkpoint with the shapes of
``Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B`` in its original LLaVA-NeXT layout: Qwen2-7B (hidden 3584,
28 layers, 152,064 embedding rows, the 151,646-token tokenizer) plus SigLIP-so400m less its last
layer (``load.py``'s :func:`write_checkpoints`; nothing is downloaded; its end-token rows make
every greedy answer run to the full length).  Then, for each quantization (``bf16``: none,
``4bit``: instit's NF4 default on CUDA), loaded with ``InstIt.from_pretrained``:

* load seconds, memory after loading and peak memory (CUDA: ``torch.cuda`` allocator statistics;
  CPU: resident set growth);
* prefill ms: ``model.module(**model.prepare(media, question), logits_to_keep=1)`` (vision
  tower, projector, language model over the whole prompt) for one 1280x720 anyres image and
  an 8-frame 640x360 video; preprocessing ms (CPU, ``prepare``) apart;
* decode tokens/s: ``module.generate`` with ``--new-tokens`` vs 1 new token, the difference;
* batched vs one-by-one: ``model.generate([encoded] * B, questions)`` vs ``B`` calls of one
  question each (the image encoded once for both), answers/s and tokens/s.

Prints a table (ratios 4bit / bf16 and batched / one-by-one) and writes everything to ``--json``.
``--tiny`` swaps in a 64-wide model to check the script on a CPU; 4-bit needs CUDA and
bitsandbytes and is reported as unavailable elsewhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package
from load import ARCHITECTURES, weight_bytes, write_checkpoints

QUESTION = "Describe the scene in detail, mentioning [1] and [2]."


@dataclass
class ModeResult:
    """Measurements of one quantization mode (times in ms unless named otherwise)."""

    mode: str
    unavailable: str | None = None
    load_seconds: float = 0.0
    memory_after_load_gib: float = 0.0
    peak_load_gib: float = 0.0
    peak_inference_gib: float = 0.0
    image_tokens: int = 0
    video_tokens: int = 0
    preprocess_image_ms: float = 0.0
    preprocess_video_ms: float = 0.0
    prefill_image_ms: float = 0.0
    prefill_video_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    one_by_one_answers_per_s: float = 0.0
    batched_answers_per_s: float = 0.0
    one_by_one_tokens_per_s: float = 0.0
    batched_tokens_per_s: float = 0.0
    decode_steps: dict[str, int] = field(default_factory=dict)


class Memory:
    """Current and peak memory of the model's device, in GiB, from a reset point."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device.startswith("cuda")
        self.torch = torch
        self.base_kb = 0

    @staticmethod
    def _status_kb(name: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"{name} not in /proc/self/status")

    def reset(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.base_kb = self._status_kb("VmRSS")

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def current(self) -> float:
        if self.cuda:
            return self.torch.cuda.memory_allocated() / 2**30
        return (self._status_kb("VmRSS") - self.base_kb) / 2**20

    def peak(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / 2**30
        return (self._status_kb("VmHWM") - self.base_kb) / 2**20


def make_media() -> tuple[Any, list[Any]]:
    """A 1280x720 image and 8 frames of 640x360, smooth random content (fixed seed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def picture(width: int, height: int) -> Any:
        small = rng.integers(0, 256, (height // 40, width // 40, 3), dtype=np.uint8)
        return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)

    return picture(1280, 720), [picture(640, 360) for _ in range(8)]


def run_mode(mode: str, checkpoint: Path, args: argparse.Namespace, memory: Memory) -> ModeResult:
    """Load ``checkpoint`` in ``mode`` (``"bf16"`` / ``"4bit"``) and measure it."""
    import torch

    from instit import InstIt
    from instit.errors import DependencyError

    result = ModeResult(mode)
    device = args.device

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def median_ms(function: Callable[[], Any]) -> float:
        function()  # warm-up (kernels, allocator, caches)
        times = []
        for _ in range(args.repeats):
            sync()
            start = time.perf_counter()
            function()
            sync()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    memory.reset()
    start = time.perf_counter()
    try:
        model = InstIt.from_pretrained(
            checkpoint,
            device=device,
            dtype="bfloat16",
            quantization=None if mode == "bf16" else mode,
            progress=False,
        )
    except DependencyError as exc:
        result.unavailable = str(exc)
        return result
    sync()
    result.load_seconds = time.perf_counter() - start
    result.memory_after_load_gib = memory.current()
    result.peak_load_gib = memory.peak()
    memory.reset_peak()
    measure(model, result, args, median_ms)
    result.peak_inference_gib = memory.peak()
    del model
    memory.reset()
    return result


def measure(
    model: Any,
    result: ModeResult,
    args: argparse.Namespace,
    median_ms: Callable[[Callable[[], Any]], float],
) -> None:
    """Fill ``result``'s speed fields for a loaded ``model``."""
    import torch
    from transformers import GenerationConfig

    image, frames = make_media()
    module = model.module
    result.preprocess_image_ms = median_ms(lambda: model.prepare(image, QUESTION))
    result.preprocess_video_ms = median_ms(lambda: model.prepare(frames, QUESTION))
    image_inputs = model.prepare(image, QUESTION)
    video_inputs = model.prepare(frames, QUESTION)
    result.image_tokens = int((image_inputs["input_ids"] == model.config.image_token_id).sum())
    result.video_tokens = int((video_inputs["input_ids"] == model.config.video_token_id).sum())

    def prefill(inputs: dict[str, Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return module(**inputs, logits_to_keep=1)

        return run

    result.prefill_image_ms = median_ms(prefill(image_inputs))
    result.prefill_video_ms = median_ms(prefill(video_inputs))

    steps = {"count": 0}
    module.lm_head.register_forward_hook(lambda *_: steps.update(count=steps["count"] + 1))

    def generate(count: int) -> Callable[[], Any]:
        config = GenerationConfig(
            max_new_tokens=count,
            min_new_tokens=count,
            do_sample=False,
            eos_token_id=model.tokenizer.eos_token_id,
            pad_token_id=model.tokenizer.pad_token_id,
        )

        def run() -> Any:
            with torch.inference_mode():
                return module.generate(**image_inputs, generation_config=config)

        return run

    one_token = median_ms(generate(1))
    steps["count"] = 0
    many_tokens = median_ms(generate(args.new_tokens))
    result.decode_steps["generate"] = steps["count"] // (args.repeats + 1)
    result.decode_tokens_per_s = (args.new_tokens - 1) / ((many_tokens - one_token) / 1000)

    encoded = model.encode_media(image)
    questions = [f"Question {i}: what is [{i + 1}] doing?" for i in range(args.batch)]
    new = args.new_tokens

    def one_by_one() -> None:
        for question in questions:
            model.generate([encoded], [question], max_new_tokens=new)

    def batched() -> None:
        model.generate([encoded] * len(questions), questions, max_new_tokens=new, batch_size=64)

    steps["count"] = 0
    one_ms = median_ms(one_by_one)
    result.decode_steps["one_by_one"] = steps["count"] // (args.repeats + 1)
    steps["count"] = 0
    batch_ms = median_ms(batched)
    result.decode_steps["batched"] = steps["count"] // (args.repeats + 1)
    result.one_by_one_answers_per_s = len(questions) / (one_ms / 1000)
    result.batched_answers_per_s = len(questions) / (batch_ms / 1000)
    result.one_by_one_tokens_per_s = result.one_by_one_answers_per_s * new
    result.batched_tokens_per_s = result.batched_answers_per_s * new


ROWS = [
    ("load s", "load_seconds", "{:.1f}"),
    ("memory after load GiB", "memory_after_load_gib", "{:.2f}"),
    ("peak while loading GiB", "peak_load_gib", "{:.2f}"),
    ("peak while running GiB", "peak_inference_gib", "{:.2f}"),
    ("image: visual tokens", "image_tokens", "{}"),
    ("image: preprocess ms", "preprocess_image_ms", "{:.1f}"),
    ("image: prefill ms", "prefill_image_ms", "{:.1f}"),
    ("video 8f: visual tokens", "video_tokens", "{}"),
    ("video 8f: preprocess ms", "preprocess_video_ms", "{:.1f}"),
    ("video 8f: prefill ms", "prefill_video_ms", "{:.1f}"),
    ("decode tokens/s (batch 1)", "decode_tokens_per_s", "{:.1f}"),
    ("one-by-one answers/s", "one_by_one_answers_per_s", "{:.2f}"),
    ("batched answers/s", "batched_answers_per_s", "{:.2f}"),
    ("one-by-one tokens/s", "one_by_one_tokens_per_s", "{:.1f}"),
    ("batched tokens/s", "batched_tokens_per_s", "{:.1f}"),
]


def print_table(results: list[ModeResult], batch: int) -> None:
    available = [r for r in results if r.unavailable is None]
    for r in results:
        if r.unavailable is not None:
            print(f"{r.mode}: not measured ({r.unavailable})")
    if not available:
        return
    ratio = len(available) == 2
    header = f"{'':<27}" + "".join(f"{r.mode:>11}" for r in available)
    header += f"{available[1].mode + '/' + available[0].mode:>11}" if ratio else ""
    print(header)
    print("-" * len(header))
    for label, name, spec in ROWS:
        values = [getattr(r, name) for r in available]
        line = f"{label:<27}" + "".join(f"{spec.format(v):>11}" for v in values)
        if ratio and values[0]:
            line += f"{values[1] / values[0]:>10.2f}x"
        print(line)
    for r in available:
        print(
            f"{r.mode}: batched / one-by-one throughput (batch {batch}) "
            f"{r.batched_tokens_per_s / r.one_by_one_tokens_per_s:.2f}x; "
            f"decode steps {r.decode_steps}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--device", default="cuda", help="'cuda' (default), 'cuda:1', 'cpu'")
    parser.add_argument("--tiny", action="store_true", help="a 64-wide model (checks the script)")
    parser.add_argument("--modes", nargs="+", default=["bf16", "4bit"], choices=["bf16", "4bit"])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-gpu-bench",
        help="folder for the generated checkpoint (reused between runs)",
    )
    args = parser.parse_args()

    import torch
    import transformers

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible to torch; use --device cpu --tiny to check the script")
    size = "tiny" if args.tiny else "7b"
    started = time.perf_counter()
    paths = write_checkpoints(
        args.cache / size,
        ARCHITECTURES[size],
        layouts=("original",),
        device="cuda" if args.device.startswith("cuda") else "cpu",
    )
    checkpoint = paths["original"]
    stored = weight_bytes(checkpoint)
    setup_s = time.perf_counter() - started
    memory = Memory(args.device)
    results = [run_mode(mode, checkpoint, args, memory) for mode in args.modes]

    try:
        import bitsandbytes

        bnb_version: str | None = bitsandbytes.__version__
    except ImportError:
        bnb_version = None
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None
    report = {
        "architecture": size,
        "parameters": stored // 2,
        "weights_gib_bf16": stored / 2**30,
        "checkpoint_setup_s": setup_s,
        "device": args.device,
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitsandbytes": bnb_version,
        "new_tokens": args.new_tokens,
        "batch": args.batch,
        "repeats": args.repeats,
        "results": [asdict(r) for r in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(
        f"{size}: {stored / 2 / 1e9:.2f} B parameters ({stored / 2**30:.1f} GiB in bf16) on "
        f"{gpu or args.device}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}, bitsandbytes {bnb_version}; {args.new_tokens} new tokens, "
        f"median of {args.repeats}"
    )
    print_table(results, args.batch)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
