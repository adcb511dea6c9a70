"""The ``instit`` command line.

One command with verbs: ``mark``, ``frames``, ``ask``, ``describe``, ``segment``, ``track``,
``convert``, ``bench run``, ``bench score`` and ``dataset to-llava``.  Each verb prints a
human-readable result, or JSON with ``--json``.  Exit codes: 0 success, 2 bad usage or bad input
(the message says what to fix), 1 any other failure (a broken checkpoint, a failing endpoint).

Heavy modules are imported inside the verb that needs them, so ``instit --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instit.cli_support import (
    EXIT_FAILURE as EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE as EXIT_USAGE,
    help_formatter,
    run_verb,
)
from instit.errors import InstitValueError
from instit.segment.cli import add_finder_options, add_segment_parsers, find_for

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _instances(args: argparse.Namespace, media: Any) -> Any:
    """The instances of ``--instances``, or those ``--text`` finds on ``media``."""
    if args.text is None:
        return _load_instances(args.instances)
    if args.instances is not None:
        raise InstitValueError("pass --instances or --text, not both")
    return find_for(args, media)


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
    """A folder of frames or any file that is not a still image counts as a video."""
    from instit.video.core import IMAGE_SUFFIXES

    return Path(path).is_dir() or Path(path).suffix.lower() not in IMAGE_SUFFIXES


def _load_media(source: str, args: argparse.Namespace) -> Any:
    """An image path stays a path; a folder or a video file becomes a sampled ``Video``."""
    if _is_video_source(source):
        from instit.video import load_video

        return load_video(source, **_sampling(args))
    return source


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_video`` keywords the user gave (its defaults and checks apply to the rest)."""
    given = {"num_frames": args.num_frames, "fps": args.fps}
    return {key: value for key, value in given.items() if value is not None}


def _write_frames(
    frames: Sequence[Any], folder: Path, suffix: str, **save_options: Any
) -> list[str]:
    """Save ``frames`` as ``folder/frame_<t><suffix>`` (t from 1); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for t, frame in enumerate(frames, start=1):
        files.append(str(folder / f"frame_{t}{suffix}"))
        frame.save(files[-1], **save_options)
    return files


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
    add_finder_options(parser)
    parser.add_argument(
        "--marks",
        default="draw",
        choices=["draw", "as_is"],
        help="draw the instances' marks first (default) or use the media as already marked",
    )
    parser.add_argument(
        "--num-frames", type=int, default=None, help="frames sampled from a video (8)"
    )
    parser.add_argument("--fps", type=float, default=None, help="sample by rate instead")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument(
        "--save-marked",
        help="write the marked media the model saw: an image file, or a folder for a video",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --save-marked output")


def _load_model(args: argparse.Namespace) -> Any:
    from instit.model import InstIt

    quantization = None if args.quantization == "none" else args.quantization
    return InstIt.from_pretrained(args.model, quantization=quantization, device=args.device)


def _check_output(target: str | None, overwrite: bool, *, folder: bool) -> None:
    """Refuse to replace a user's file (or write into a non-empty folder) without --overwrite."""
    if target is None or overwrite:
        return
    path = Path(target)
    if path.is_file() or (path.is_dir() and folder and any(path.iterdir())):
        raise InstitValueError(
            f"{path} exists and is not empty: choose another output path or pass --overwrite"
        )


def _save_marked(result: Any, target: str | None) -> None:
    """The marked media the model saw: one image file, or frame_<t>.png files in a folder."""
    if target is None:
        return
    from instit.results import media_frames

    frames = media_frames(result.media)
    if len(frames) == 1 and Path(target).suffix:
        frames[0].save(target)
        return
    _write_frames(frames, Path(target), ".png")


# -- verbs ---------------------------------------------------------------------------------------


def _cmd_mark(args: argparse.Namespace) -> int:
    from instit.marks import MarkStyle

    video = _is_video_source(args.source)
    if args.instances is None and args.text is None:
        raise InstitValueError("pass --instances (a JSON file) or --text (phrases to find)")
    if video:
        from instit.video import load_video

        media: Any = load_video(args.source, **_sampling(args))
    else:
        media = args.source
    instances = _instances(args, media)
    name = args.style or ("video" if video else "image")
    style = MarkStyle.video() if name == "video" else MarkStyle.image()
    style = style.with_options(mask=args.mask, labels=args.labels)
    _check_output(args.output, args.overwrite, folder=video)
    if video:
        return _mark_video(args, media, instances, style)
    from instit.marks import draw_marks, layout_marks
    from instit.media import load_image

    image = load_image(args.source)
    draw_marks(image, instances, style=style).save(args.output)
    if args.json:  # the layout is computed again only when it is asked for
        placements = layout_marks(image, instances, style=style)
        _print_json(
            {
                "output": args.output,
                "placements": {str(k): p.to_dict() for k, p in placements.items()},
            }
        )
    else:
        print(f"wrote {args.output} with {len(instances)} marks")
    return EXIT_OK


def _mark_video(args: argparse.Namespace, video: Any, tracks: Any, style: Any) -> int:
    """Draw the tracks (keyed by source frame) on the sampled video, write frame_<t>.png."""
    from instit.instances import Tracks

    if not isinstance(tracks, Tracks):
        raise InstitValueError(
            f"{args.instances} holds image instances; a video needs tracks "
            "(Tracks.to_json: one entry per source frame)"
        )
    marked = video.with_marks(tracks, style=style, indexed_by=args.indexed_by)
    files = _write_frames(marked.frames, Path(args.output), ".png")
    if args.json:
        _print_json({**marked.to_dict(), "files": files})
    else:
        print(f"wrote {len(files)} marked frames to {args.output}")
    return EXIT_OK


def _cmd_frames(args: argparse.Namespace) -> int:
    from instit.video import load_video

    _check_output(args.output, args.overwrite, folder=True)
    video = load_video(
        args.source,
        **_sampling(args),
        start=args.start,
        end=args.end,
        max_frames=args.max_frames,
    )
    files = (
        _write_frames(video.frames, Path(args.output), ".jpg", quality=95) if args.output else []
    )
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
    _check_output(args.save_marked, args.overwrite, folder=True)
    media = _load_media(args.media, args)
    instances = _instances(args, media)
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
    _check_output(args.save_marked, args.overwrite, folder=True)
    media = _load_media(args.media, args)
    instances = _instances(args, media)
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
        formatter_class=help_formatter,
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
        formatter_class=help_formatter,
    )
    parser.add_argument("--version", action="version", version=f"instit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    mark = _verb(
        sub,
        "mark",
        _cmd_mark,
        "draw numbered Set-of-Marks prompts on an image or on sampled video frames",
        "  instit mark photo.jpg --instances instances.json -o marked.png\n"
        "  instit mark photo.jpg --instances instances.json -o marked.png --mask fill --json\n"
        "  instit mark clip.mp4 --instances tracks.json --num-frames 8 -o marked_frames/\n"
        '  instit mark photo.jpg --text "a person. a ball." -o marked.png',
    )
    mark.add_argument("source", help="image file, video file or frame folder")
    mark.add_argument(
        "--instances", help="instances JSON (Instances.to_json; Tracks.to_json for a video)"
    )
    add_finder_options(mark)
    mark.add_argument("--device", default="auto", help="device for --text models")
    mark.add_argument(
        "-o", "--output", required=True, help="output image file, or folder for a video"
    )
    mark.add_argument(
        "--style", choices=["image", "video"], default=None, help="default: by the media"
    )
    mark.add_argument(
        "--mask", choices=["contour", "fill", "box", "point", "none"], default="contour"
    )
    mark.add_argument("--labels", choices=["numeric", "alpha"], default="numeric")
    mark.add_argument(
        "--num-frames", type=int, default=None, help="frames sampled from a video (8)"
    )
    mark.add_argument("--fps", type=float, default=None, help="sample a video by rate instead")
    mark.add_argument(
        "--indexed-by",
        choices=["source", "sample"],
        default="source",
        help="tracks keyed by source frame number (default) or by sampled position",
    )
    mark.add_argument("--overwrite", action="store_true", help="replace an existing output")

    frames = _verb(
        sub,
        "frames",
        _cmd_frames,
        "sample frames from a video file, a frame folder, with timestamps",
        "  instit frames clip.mp4 --num-frames 8\n"
        "  instit frames clip.mp4 --fps 1 --start 10 --end 20 -o frames/ --json",
    )
    frames.add_argument("source", help="video file or folder of frames")
    frames.add_argument("--num-frames", type=int, default=None, help="uniform frame count (8)")
    frames.add_argument("--fps", type=float, default=None, help="sample by rate instead")
    frames.add_argument("--start", type=float, default=None, help="window start (seconds)")
    frames.add_argument("--end", type=float, default=None, help="window end (seconds)")
    frames.add_argument("--max-frames", type=int, default=None)
    frames.add_argument("-o", "--output", help="folder to write frame_<t>.jpg files into")
    frames.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")

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

    add_segment_parsers(sub)
    add_bench_parser(sub)
    add_dataset_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    name = " ".join(
        part
        for part in (
            args.command,
            getattr(args, "bench_command", None),
            getattr(args, "dataset_command", None),
        )
        if part
    )
    return run_verb(args, name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
