"""Put your own model on Inst-It Bench's multiple-choice questions and score it.

    python examples/bench_your_model.py --bench ./Inst-It-Bench           # a local copy
    python examples/bench_your_model.py --model PATH_OR_HUB_ID             # an Inst-It model
    python examples/bench_your_model.py --demo                             # tiny offline bench

Any callable ``(media, prompt) -> str`` can be benched: ``media`` is a PIL image (image
questions) or the list of a video's frames, already marked; ``prompt`` is the benchmark's exact
text.  Replace ``my_model`` with your system.  Predictions go to ``OUT/<split>_mc_inference.json``
in the reference format (a killed run resumes where it stopped), scores to
``OUT/<split>_mc_evaluate.json``, all scores to ``OUT/scores.json``; summary tables are printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from instit.bench import load_bench, make_tiny_bench, run_bench, score_file
from instit.cli_support import run_script

MC_CONFIGS = {"image_multi_choice": "image", "video_multi_choice": "video"}


def my_model(media: Image.Image | list[Image.Image], prompt: str) -> str:
    """A stand-in system: picks the option whose text shares most words with the question.

    Swap this for a call into your own model; it gets exactly what an Inst-It model gets.
    """
    question, _, rest = prompt.partition("\nA.")
    options = re.findall(r"^([A-D])\. (.*)$", "A." + rest, flags=re.MULTILINE)
    words = set(question.lower().split())
    best = max(options, key=lambda option: len(words & set(option[1].lower().split())))
    return best[0]


def main(argv: list[str] | None = None) -> None:
    """Run the chosen model on both multiple-choice configs, then score them."""
    parser = argparse.ArgumentParser(description="Bench a model on Inst-It Bench (MC).")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bench", help="local copy of the dataset repo, or a hub id")
    source.add_argument("--demo", action="store_true", help="a tiny generated bench (offline)")
    parser.add_argument("--model", help="bench an Inst-It checkpoint instead of my_model")
    parser.add_argument("--checkpoint", dest="model", help=argparse.SUPPRESS)  # old name
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="MC answers are short")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    model: Any = my_model
    if args.model:
        from instit.model import InstIt

        model = InstIt.from_pretrained(
            args.model, device=args.device, progress=not args.no_progress
        )
    with tempfile.TemporaryDirectory() as tmp:
        bench_source = make_tiny_bench(Path(tmp) / "bench") if args.demo else args.bench
        scores = {}
        for config, split in MC_CONFIGS.items():
            bench = load_bench(config, bench_source)
            predictions = args.out / f"{split}_mc_inference.json"
            run_bench(
                model,
                bench,
                predictions,
                max_new_tokens=args.max_new_tokens,
                progress=not args.no_progress,
            )
            score = score_file(predictions, "mc", args.out / f"{split}_mc_evaluate.json")
            print(f"{config}\n{score.table()}\n")
            scores[config] = score.to_dict()
    (args.out / "scores.json").write_text(json.dumps(scores, indent=2))
    print(f"scores: {args.out / 'scores.json'}")


if __name__ == "__main__":
    hint = "pass --model PATH for a local checkpoint folder"
    sys.exit(run_script(main, "bench_your_model.py", checkpoint_hint=hint))
