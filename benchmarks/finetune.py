"""Fine-tuning on the CPU: LoRA vs full fine-tuning of the language model, steps/s and memory.

    .venv/bin/python benchmarks/finetune.py                 # tiny and 512-wide models
    .venv/bin/python benchmarks/finetune.py --sizes tiny    # a quick check of the script

For each model size (the tiny test checkpoint, hidden 64 x 2 layers; and ``wide``, hidden 512 x
8 layers, both with the real SigLIP-384 geometry), ``instit.finetune`` trains on one 256x256 image
with two question-answer turns, in a fresh subprocess per row, with ``method="lora"`` (rank 16 on
the language model's linear layers) and ``method="full"`` (every language-model weight). Rows
report the median seconds per step over the steps after the first (warm-up), the peak resident
memory of the process (``VmHWM``) and the trainable parameter count; ratios are full / LoRA,
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {"tiny": (64, 2), "wide": (512, 8)}
CHILD = r"""
import json, sys, time
from pathlib import Path
import instit
from transformers import TrainerCallback

folder, method, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
image, instances = instit.example_image()
image = image.resize((256, 256))
from PIL import Image
import numpy as np
def shrink(mask):
    return np.asarray(Image.fromarray(mask).resize((256, 256), Image.Resampling.NEAREST))
small = instit.Instances.from_masks(
    {i: shrink(m) for i, m in zip(instances.ids, instances.masks(), strict=True)}
)
data = [(image, small, [("What is [1]?", "An astronaut."), ("And [2]?", "A flag.")])]
times = []

class Clock(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
    def on_step_end(self, args, state, control, **kwargs):
        times.append(time.perf_counter() - self.start)

model = instit.InstIt.from_pretrained(folder, device="cpu", progress=False)
trainable = {}
import transformers
original = transformers.Trainer.__init__
def init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    self.add_callback(Clock())
    trainable["n"] = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
transformers.Trainer.__init__ = init
instit.finetune(model, data, out, method=method, max_steps=steps, progress=False,
                target="language", learning_rate=1e-4)
peak = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) * 1024
print(json.dumps({"times": times, "peak": peak, "trainable": trainable["n"]}))
"""


def _run(folder: Path, method: str, steps: int, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), method, str(steps), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step(row: dict) -> float:
    """Median seconds per step, the first (warm-up) step left out."""
    return statistics.median(row["times"][1:] or row["times"])


def main() -> None:
    from instit.testing import make_tiny_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(f"{'model':>6} {'method':>6} {'s/step':>8} {'peak MiB':>9} {'trainable':>11}  full/LoRA")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            hidden, layers = SIZES[size]
            folder = make_tiny_checkpoint(
                Path(tmp) / size, "qwen2-siglip", hidden_size=hidden, num_layers=layers
            )
            rows = {}
            for method in ("lora", "full"):
                row = _run(folder, method, args.steps, Path(tmp) / f"{size}-{method}")
                rows[method] = row
                step = statistics.median(row["times"][1:] or row["times"])
                ratio = ""
                if method == "full":
                    lora_step = statistics.median(
                        rows["lora"]["times"][1:] or rows["lora"]["times"]
                    )
                    ratio = (
                        f"  time {step / lora_step:.2f}x, "
                        f"memory {row['peak'] / rows['lora']['peak']:.2f}x"
                    )
                print(
                    f"{size:>6} {method:>6} {step:8.2f} {row['peak'] / 2**20:9.0f} "
                    f"{row['trainable']:>11,}{ratio}"
                )


if __name__ == "__main__":
    main()
