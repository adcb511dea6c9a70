"""Fine-tune an Inst-It checkpoint on your own instances, then ask the adapted model.

    python examples/finetune_on_your_instances.py                       # default checkpoint
    python examples/finetune_on_your_instances.py --model PATH --steps 20 --out my-adapter

The training data here is the bundled example photo with its four instance masks and one
caption per instance: replace ``my_data()`` with your own ``(media, instances, [(question,
answer), ...])`` items (images or videos, masks / boxes / tracks), or pass an Inst-It Dataset
file or a LLaVA-style JSONL file to ``instit.finetune``.  Marks are drawn and frames sampled
exactly as at inference.  Prints the answers before and after training as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import instit
from instit.cli_support import run_script

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"
CAPTIONS = {
    1: "An astronaut in a white spacesuit.",
    2: "A red and white flag.",
    3: "A white helmet.",
    4: "A dark sky.",
}


def my_data() -> list[tuple[Any, Any, list[tuple[str, str]]]]:
    """One item per instance: the photo, its instances, and a question-answer pair."""
    image, instances = instit.example_image()
    return [(image, instances, [(f"What is [{i}]?", caption)]) for i, caption in CAPTIONS.items()]


def main(argv: list[str] | None = None) -> None:
    """Train a LoRA adapter, reload it on the base model, and compare answers."""
    parser = argparse.ArgumentParser(description="LoRA-tune an Inst-It model on your instances.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or checkpoint folder")
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    parser.add_argument("--steps", type=int, default=40, help="training steps")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("my-adapter"), help="adapter folder")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--no-progress", action="store_true", help="no progress output")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    data = my_data()
    image, instances = data[0][0], data[0][1]
    question = "What is [1]?"
    base = instit.InstIt.from_pretrained(args.model, progress=not args.no_progress)
    before = base.ask(image, question, instances=instances, max_new_tokens=args.max_new_tokens)
    del base
    out = instit.finetune(
        args.model,
        data,
        args.out,
        method=args.method,
        learning_rate=args.learning_rate,
        max_steps=args.steps,
        overwrite=True,
        progress=not args.no_progress,
    )
    tuned = instit.InstIt.from_pretrained(args.model, adapter=out, progress=not args.no_progress)
    after = tuned.ask(image, question, instances=instances, max_new_tokens=args.max_new_tokens)
    manifest = json.loads((out / "instit_finetune.json").read_text())
    print(
        json.dumps(
            {
                "question": question,
                "before": before.text,
                "after": after.text,
                "target": CAPTIONS[1],
                "steps": manifest["steps"],
                "losses": [round(x, 4) for x in manifest["losses"]],
                "adapter": str(out),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    hint = "pass --model PATH for a local checkpoint folder"
    sys.exit(run_script(main, "finetune_on_your_instances.py", checkpoint_hint=hint))
