"""How long ``import instit`` takes, against the heavy imports it defers.

    .venv/bin/python benchmarks/import_time.py [--repeats 5]

Each import runs in a fresh interpreter (so nothing is cached in ``sys.modules``); the table
shows the median wall time of the import statement alone and its ratio to ``import instit``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CASES = {
    "import instit": "import instit",
    "instit + public names": "import instit; [getattr(instit, n) for n in ('Instances', 'Tracks')]",
    "import av": "import av",
    "import cv2": "import cv2",
    "import torch": "import torch",
    "transformers LLaVA-OneVision": (
        "from transformers import LlavaOnevisionForConditionalGeneration"
    ),
}

TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def time_import(statement: str) -> float:
    """Seconds one fresh interpreter spends on ``statement``."""
    done = subprocess.run(
        [sys.executable, "-c", TIMER.format(stmt=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    medians = {
        name: statistics.median(time_import(stmt) for _ in range(args.repeats))
        for name, stmt in CASES.items()
    }
    base = medians["import instit"]
    print(f"{'import':<32}{'median ms':>12}{'x instit':>10}")
    for name, seconds in medians.items():
        print(f"{name:<32}{seconds * 1000:>12.1f}{seconds / base:>10.1f}")


if __name__ == "__main__":
    main()
