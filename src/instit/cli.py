"""The ``instit`` command line.

One command with verbs: ``mark``, ``frames``, ``ask``, ``describe``, ``convert``, ``bench run``,
``bench score`` and ``dataset to-llava``.  Each verb prints a human-readable result, or JSON with
``--json``.  Exit codes: 0 success, 2 bad usage or bad input (the message says what to fix),
1 any other failure (a broken checkpoint, a failing endpoint).

Heavy modules are imported inside the verb that needs them, so ``instit --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instit.errors import InstitError, InstitTypeError, InstitValueError

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _load_instances(path: str | None) -> Any:
    """Instances (image) or Tracks (video) from a JSON file written by ``to_json``."""
    if path is None:
        return None
    from instit.instances import Instances, Tracks

    file = Path(path)
    if not file.is_file():
        raise InstitValueError(f"instances file {file} does not exist: pass a JSON file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InstitValueError(f"instances file {file} is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "frames" in data:
        return Tracks.from_dict(data)
    return Instances.from_dict(data)


def _is_video_source(path: str) -> bool:
    from instit.video import is_video_path

    return Path(path).is_dir() or is_video_path(path)


def _load_media(source: str, args: argparse.Namespace) -> Any:
    """An image path stays a path; a folder or a video file becomes a sampled ``Video``."""
    if _is_video_source(source):
        from instit.video import load_video

        return load_video(source, num_frames=args.num_frames, fps=args.fps)
    return source


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id or local checkpoint folder (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "4bit", "8bit", "none"],
        help="auto: 4-bit NF4 on CUDA, none elsewhere",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--instances", help="instances JSON (Instances.to_json; Tracks.to_json for videos)"
    )
    parser.add_argument(
        "--marks",
        default="draw",
        choices=["draw", "as_is"],
        help="draw the instances' marks first (default) or use the media as already marked",
    )
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled from a video")
    parser.add_argument("--fps", type=float, default=None, help="sample by rate instead")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--save-marked", help="write the marked media the model saw to this path")


def _load_model(args: argparse.Namespace) -> Any:
    from instit.model import InstIt

    quantization = None if args.quantization == "none" else args.quantization
    return InstIt.from_pretrained(args.model, quantization=quantization, device=args.device)


def _save_marked(result: Any, target: str | None) -> None:
    if target is None:
        return
    media = result.media
    frames = getattr(media, "frames", None)
    if frames is None and isinstance(media, list):
        frames = media
    if frames is None:
        media.save(target)
        return
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames, start=1):
        frame.save(folder / f"frame_{t}.png")


# -- verbs ---------------------------------------------------------------------------------------


def _cmd_mark(args: argparse.Namespace) -> int:
    from instit.marks import MarkStyle, draw_marks, layout_marks
    from instit.media import load_image

    image = load_image(args.image)
    instances = _load_instances(args.instances)
    style = MarkStyle.video() if args.style == "video" else MarkStyle.image()
    style = style.replace(mask=args.mask, labels=args.labels)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise InstitValueError(f"{out} exists: choose another --output or pass --overwrite")
    draw_marks(image, instances, style=style).save(out)
    placements = layout_marks(image, instances, style=style)
    if args.json:
        _print_json(
            {
                "output": str(out),
                "placements": {str(k): p.to_dict() for k, p in placements.items()},
            }
        )
    else:
        print(f"wrote {out} with {len(placements)} marks")
    return EXIT_OK


def _cmd_frames(args: argparse.Namespace) -> int:
    from instit.video import load_video

    video = load_video(
        args.source,
        num_frames=args.num_frames,
        fps=args.fps,
        start=args.start,
        end=args.end,
        max_frames=args.max_frames,
    )
    files: list[str] = []
    if args.output:
        folder = Path(args.output)
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(video.frames, start=1):
            path = folder / f"frame_{t}.jpg"
            frame.save(path, quality=95)
            files.append(str(path))
    if args.json:
        payload = video.to_dict()
        if files:
            payload["files"] = files
        _print_json(payload)
    else:
        for t, (index, seconds) in enumerate(
            zip(video.indices, video.timestamps, strict=True), start=1
        ):
            print(f"<{t}>  frame {index:>7}  {seconds:9.3f} s")
    return EXIT_OK


def _cmd_ask(args: argparse.Namespace) -> int:
    media = _load_media(args.media, args)
    instances = _load_instances(args.instances)
    model = _load_model(args)
    if args.stream and not args.json:
        stream = model.ask(
            media,
            args.question,
            instances=instances,
            marks=args.marks,
            max_new_tokens=args.max_new_tokens,
            stream=True,
        )
        for chunk in stream:
            print(chunk, end="", flush=True)
        print()
        answer = stream.answer()
    else:
        answer = model.ask(
            media,
            args.question,
            instances=instances,
            marks=args.marks,
            max_new_tokens=args.max_new_tokens,
        )
        if args.json:
            _print_json(answer.to_dict())
        else:
            print(answer.text)
    _save_marked(answer, args.save_marked)
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    media = _load_media(args.media, args)
    instances = _load_instances(args.instances)
    model = _load_model(args)
    description = model.describe_instances(
        media,
        instances,
        marks=args.marks,
        max_new_tokens=args.max_new_tokens,
        progress=not args.quiet,
    )
    if args.json:
        _print_json(description.to_dict())
    else:
        print(description)
    _save_marked(description, args.save_marked)
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    from instit.model import convert

    out = convert(args.source, args.destination, overwrite=args.overwrite)
    if args.json:
        _print_json({"source": args.source, "destination": str(out)})
    else:
        print(f"wrote a transformers-layout checkpoint to {out}")
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------------


def _verb(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help_text: str,
    examples: str,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=f"{help_text}\n\nexamples:\n{examples}",
        formatter_class=_formatter,
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The full ``instit`` argument parser (used by :func:`main` and the docs)."""
    from instit import __version__

    parser = argparse.ArgumentParser(
        prog="instit",
        description="Instance-level image and video understanding with the Inst-It models.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"instit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    mark = _verb(
        sub,
        "mark",
        _cmd_mark,
        "draw numbered Set-of-Marks prompts on an image",
        "  instit mark photo.jpg --instances instances.json -o marked.png\n"
        "  instit mark photo.jpg --instances instances.json -o marked.png --mask fill --json",
    )
    mark.add_argument("image", help="image file")
    mark.add_argument("--instances", required=True, help="instances JSON (Instances.to_json)")
    mark.add_argument("-o", "--output", required=True, help="output image file")
    mark.add_argument("--style", choices=["image", "video"], default="image")
    mark.add_argument(
        "--mask", choices=["contour", "fill", "box", "point", "none"], default="contour"
    )
    mark.add_argument("--labels", choices=["numeric", "alpha"], default="numeric")
    mark.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    frames = _verb(
        sub,
        "frames",
        _cmd_frames,
        "sample frames from a video file, a frame folder, with timestamps",
        "  instit frames clip.mp4 --num-frames 8\n"
        "  instit frames clip.mp4 --fps 1 --start 10 --end 20 -o frames/ --json",
    )
    frames.add_argument("source", help="video file or folder of frames")
    frames.add_argument("--num-frames", type=int, default=8)
    frames.add_argument("--fps", type=float, default=None)
    frames.add_argument("--start", type=float, default=None, help="window start (seconds)")
    frames.add_argument("--end", type=float, default=None, help="window end (seconds)")
    frames.add_argument("--max-frames", type=int, default=None)
    frames.add_argument("-o", "--output", help="folder to write frame_<t>.jpg files into")

    ask = _verb(
        sub,
        "ask",
        _cmd_ask,
        "ask a question about an image or video; references are parsed",
        '  instit ask photo.jpg "What is [2] holding?" --instances instances.json\n'
        '  instit ask clip.mp4 "What happens to [1] during <2>-<4>?" --model ./ckpt --json',
    )
    ask.add_argument("media", help="image file, video file or frame folder")
    ask.add_argument("question")
    ask.add_argument("--stream", action="store_true", help="print text as it is generated")
    _add_model_options(ask)

    describe = _verb(
        sub,
        "describe",
        _cmd_describe,
        "describe every marked instance (Inst-It Dataset structure)",
        "  instit describe photo.jpg --instances instances.json --json\n"
        "  instit describe frames/ --marks as_is --model ./ckpt",
    )
    describe.add_argument("media", help="image file, video file or frame folder")
    describe.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_options(describe)

    convert = _verb(
        sub,
        "convert",
        _cmd_convert,
        "convert an original-layout LLaVA-NeXT checkpoint to transformers' layout",
        "  instit convert Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B ./inst-it-qwen2-hf",
    )
    convert.add_argument("source", help="hub id or local folder")
    convert.add_argument("destination", help="output folder (must be empty or new)")
    convert.add_argument("--overwrite", action="store_true")

    from instit.bench.cli import add_bench_parser
    from instit.dataset.cli import add_dataset_parser

    add_bench_parser(sub)
    add_dataset_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (InstitValueError, InstitTypeError) as exc:
        print(f"instit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InstitError as exc:
        print(f"instit {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"instit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
