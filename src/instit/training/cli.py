"""``instit finetune``: LoRA / QLoRA / full fine-tuning from the shell.

:func:`add_finetune_parser` plugs it into the top-level ``instit`` parser, which maps errors to
exit codes (0 ok, 2 bad usage or input, 1 any other failure).  ``accelerate launch -m instit
finetune ...`` runs it in several processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from instit.cli_support import add_progress_option, help_formatter

EXAMPLES = """\
examples:
  instit finetune Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B my_sft.jsonl -o my-adapter
  instit finetune ./ckpt inst_it_dataset_image_51k.json --media-root images/ -o out --method qlora
  accelerate launch -m instit finetune ./ckpt my_sft.jsonl -o out --epochs 3
  # then: instit ask photo.jpg "What is [1]?" --model ./ckpt --adapter my-adapter
"""


def _cmd_finetune(args: argparse.Namespace) -> int:
    from instit.model.adapters import read_manifest
    from instit.training import finetune

    extra = {"max_steps": args.max_steps} if args.max_steps is not None else {}
    if args.save_steps is not None:
        extra["save_steps"] = args.save_steps
    # the trainer's bar and loss lines go to stderr, so stdout holds only the result
    with contextlib.redirect_stdout(sys.stderr):
        out = finetune(
            args.checkpoint,
            args.data,
            args.output,
            method=args.method,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            gradient_accumulation=args.gradient_accumulation,
            lora_rank=args.lora_rank,
            lora_alpha=args.lora_alpha,
            target=args.target or ["language"],
            max_frames=args.max_frames,
            media_root=args.media_root,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **extra,
        )
    manifest = read_manifest(out) or {}
    if args.json:
        print(json.dumps({"output": str(out), **manifest}, indent=2))
    else:
        losses = manifest.get("losses") or ["?"]
        print(f"trained {manifest.get('steps', '?')} steps (last loss {losses[-1]}); wrote {out}")
    return 0


def add_finetune_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``finetune`` verb to an ``instit`` subparsers object."""
    from instit.training.finetune import TARGETS

    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a checkpoint on your own instances (LoRA, QLoRA, full)",
        description="Fine-tune an Inst-It checkpoint on an Inst-It Dataset file or LLaVA-style "
        "JSONL conversations;\nthe loss is on the answers only (docs/finetune.md).\n\n" + EXAMPLES,
        formatter_class=help_formatter,
    )
    parser.add_argument("checkpoint", help="hub id or checkpoint folder")
    parser.add_argument("data", nargs="+", help="Inst-It Dataset .json or LLaVA .jsonl file(s)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--gradient-accumulation", type=int, default=1)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument(
        "--target", action="append", choices=list(TARGETS), help="repeatable (default language)"
    )
    parser.add_argument("--max-frames", type=int, default=8)
    parser.add_argument("--media-root", help="folder the data's media paths are relative to")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    parser.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    add_progress_option(parser, "no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_cmd_finetune)
    return parser
