"""``instit dataset to-llava``: convert the Inst-It Dataset to LLaVA-format JSONL.

:func:`add_dataset_parser` plugs it into the top-level ``instit`` parser, which maps errors to
exit codes (0 ok, 2 bad usage or input, 1 any other failure).
"""

from __future__ import annotations

import argparse
import json

from instit.cli_support import add_progress_option, help_formatter

EXAMPLES = """\
examples:
  instit dataset to-llava inst_it_dataset_video_21k.json -o video_sft.jsonl
  instit dataset to-llava inst_it_dataset_image_51k.json -o image_sft.jsonl --json
  # only the question-answer turns of the first 100 videos
  instit dataset to-llava inst_it_dataset_video_21k.json -o qa.jsonl --include qa --limit 100
"""


def _cmd_to_llava(args: argparse.Namespace) -> int:
    from instit._files import check_not_an_input, check_output
    from instit.dataset.to_llava import TURN_TYPES, convert_to_llava

    output = check_output(
        args.output,
        kind="file",
        overwrite=args.overwrite,
        flag="--overwrite",
        suffixes=[".jsonl"],
        what="-o/--output",
    )
    check_not_an_input(output, [args.source], "-o/--output")
    result = convert_to_llava(
        args.source,
        args.output,
        kind=None if args.kind == "auto" else args.kind,
        include=args.include or TURN_TYPES,
        limit=args.limit,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"wrote {result.conversations} conversations ({result.turns} turns) from "
            f"{result.records} {result.kind} records to {result.output}"
            + (
                f"; {result.skipped} records had no text for the chosen turns"
                if result.skipped
                else ""
            )
        )
    return 0


def add_dataset_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``dataset`` with its ``to-llava`` verb to an ``instit`` subparsers object."""
    from instit.dataset.to_llava import TURN_TYPES

    dataset = subparsers.add_parser(
        "dataset",
        help="read and convert the Inst-It Dataset",
        description="Read and convert the Inst-It Dataset annotation files.\n\n" + EXAMPLES,
        formatter_class=help_formatter,
    )
    verbs = dataset.add_subparsers(dest="dataset_command", metavar="VERB", required=True)
    to_llava = verbs.add_parser(
        "to-llava",
        help="convert to LLaVA-style SFT conversations (JSONL)",
        description="Stream inst_it_dataset_{video_21k,image_51k}.json into LLaVA-format "
        "conversations,\none JSON object per line (see docs/dataset.md for the prompts).\n\n"
        + EXAMPLES,
        formatter_class=help_formatter,
    )
    to_llava.add_argument("source", help="inst_it_dataset_video_21k.json or ..._image_51k.json")
    to_llava.add_argument("-o", "--output", required=True, help="JSONL file to write")
    to_llava.add_argument("--kind", choices=["auto", "video", "image"], default="auto")
    to_llava.add_argument(
        "--include",
        action="append",
        choices=list(TURN_TYPES),
        help="turn types to keep (repeatable; default all)",
    )
    to_llava.add_argument("--limit", type=int, default=None, help="first N records only")
    to_llava.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_progress_option(to_llava, "no progress bar")
    to_llava.add_argument("--json", action="store_true", help="print the summary as JSON")
    to_llava.set_defaults(handler=_cmd_to_llava)
    return dataset
