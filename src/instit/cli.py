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
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instit import _json
from instit.cli_support import (
    EXIT_FAILURE as EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE as EXIT_USAGE,
    add_device_map_option,
    add_progress_option,
    help_formatter,
    positive_int,
    run_verb,
)
from instit.errors import InstitValueError
from instit.segment.cli import add_finder_options, add_segment_parsers, find_for

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _instances(args: argparse.Namespace, source: str, media: Any) -> Any:
    """The instances of ``--instances`` (read for the media file ``source``), or those
    ``--text`` finds on ``media``."""
    if args.text is None:
        return _load_instances(args.instances, source)
    if args.instances is not None:
        raise InstitValueError("pass --instances or --text, not both")
    return find_for(args, media)


def _load_instances(path: str | None, media: str) -> Any:
    """Instances (an image) or Tracks (a video ``media``) from a JSON or CSV file: anything
    ``Instances.coerce`` / ``Tracks.coerce`` read (``to_json`` output, boxes, COCO
    annotations, supervision's JSONSink / CSVSink files)."""
    if path is None:
        return None
    from instit.instances import Instances, Tracks

    data = read_instances_file(path)
    if _is_video(media):
        if isinstance(data, dict) and "kind" in data and "instances" in data:
            raise InstitValueError(
                f"{path} holds image instances; a video needs tracks "
                "(Tracks.to_json: one entry per source frame)"
            )
        return Tracks.coerce(data)
    from instit.media import image_size

    return Instances.coerce(data, image_size=image_size(media))


def read_instances_file(path: str) -> Any:
    """The contents of an instances file: JSON, or the rows of a supervision CSVSink file."""
    file = Path(path)
    if not file.is_file():
        raise InstitValueError(f"instances file {file} does not exist: pass a JSON or CSV file")
    if file.suffix.lower() == ".csv":
        return _read_csv_rows(file)
    return _json.loads(file.read_bytes(), f"instances file {file}", error=InstitValueError)


def _read_csv_rows(file: Path) -> list[dict[str, str]]:
    """The rows of a supervision ``CSVSink`` file (cells stay text; instit reads the numbers)."""
    import csv

    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (ValueError, csv.Error) as exc:  # bad UTF-8, a malformed or oversized cell
        raise InstitValueError(f"instances file {file} is not readable CSV ({exc})") from None
    missing = [c for c in ("x_min", "y_min", "x_max", "y_max") if c not in columns]
    if missing:
        raise InstitValueError(
            f"instances file {file} has no column {missing[0]!r}; a CSV of instances is a "
            "supervision CSVSink file (x_min, y_min, x_max, y_max, tracker_id[, frame_index])"
        )
    return rows


def _load_media(source: str, args: argparse.Namespace) -> Any:
    """An image path stays a path; a folder or a video file becomes a sampled ``Video``."""
    if _is_video(source):
        from instit.media import load_media

        return load_media(source, **_sampling(args))
    return source


def _is_video(source: str) -> bool:
    """:func:`instit.media.is_video`, imported when a verb runs (``instit --help`` stays light)."""
    from instit.media import is_video

    return is_video(source)


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_video`` keywords the user gave (its defaults and checks apply to the rest)."""
    given = {"num_frames": args.num_frames, "fps": args.fps}
    return {key: value for key, value in given.items() if value is not None}


_FRAME_FILE = re.compile(r"frame_\d+\.(jpg|png)")


def _write_frames(
    frames: Sequence[Any], folder: Path, suffix: str, **save_options: Any
) -> list[str]:
    """Make ``folder`` hold exactly ``frames`` as ``frame_<t><suffix>`` (t from 1), replacing
    an older run's frames as one unit; return the paths."""
    from instit._files import replace_folder

    names = [f"frame_{t}{suffix}" for t in range(1, len(frames) + 1)]

    def write(staging: Path) -> None:
        for name, frame in zip(names, frames, strict=True):
            frame.save(staging / name, **save_options)

    replace_folder(folder, write)
    return [str(folder / name) for name in names]


def _save_image(image: Any, target: Path) -> None:
    """Save ``image`` to ``target`` through a temporary sibling: an old file is replaced whole."""
    tmp = target.with_name(f".{target.stem}.instit-tmp{target.suffix}")
    try:
        image.save(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _add_snap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--snap",
        action="store_true",
        help="video: draw the tracks of frames that were not sampled on the nearest sampled "
        "frame (default: leave them out, with a warning)",
    )


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
        help="auto: 4-bit NF4 on CUDA; on a CPU none, unless float32 would not fit in memory",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="auto: bfloat16 on recent GPUs, float32 on a CPU (or what fits in memory)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    add_device_map_option(parser)
    parser.add_argument("--adapter", help="a LoRA adapter folder (from instit finetune) to apply")
    parser.add_argument(
        "--instances",
        help="instances: JSON (Instances.to_json, {id: box}, COCO annotations, supervision "
        "JSONSink) or a supervision CSVSink file; Tracks for videos",
    )
    add_finder_options(parser)
    parser.add_argument(
        "--marks",
        default="draw",
        choices=["draw", "as_is"],
        help="draw the instances' marks first (default) or use the media as already marked",
    )
    _add_snap_option(parser)
    parser.add_argument(
        "--num-frames", type=int, default=None, help="frames sampled from a video (8)"
    )
    parser.add_argument("--fps", type=float, default=None, help="sample by rate instead")
    parser.add_argument("--max-new-tokens", type=positive_int, default=512)
    parser.add_argument(
        "--save-marked",
        help="write the marked media the model saw: an image file, or a folder for a video",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --save-marked output")
    add_progress_option(parser, "no progress bar (it counts the tokens as they come)")


def _load_model(args: argparse.Namespace) -> Any:
    from instit.model import InstIt

    quantization = None if args.quantization == "none" else args.quantization
    return InstIt.from_pretrained(
        args.model,
        quantization=quantization,
        dtype=args.dtype,
        device=args.device,
        device_map=args.device_map,
        adapter=args.adapter,
        progress=not args.no_progress,
    )


def _check_output(
    args: argparse.Namespace,
    target: str | None,
    *,
    folder: bool,
    option: str,
    inputs: Sequence[str | None] = (),
) -> None:
    """Refuse an unusable output before any work: ``folder`` for frames, else an image file.

    Besides :func:`instit._files.check_output`'s checks, an output never replaces an input, and
    ``--overwrite`` replaces only a folder of ``frame_<t>`` files (never one with other files).
    The output stays locked until the verb returns: a second run into it fails at once.
    """
    if target is None:
        return
    from instit._files import check_not_an_input, check_output, output_lock
    from instit.media import IMAGE_SUFFIXES

    path = check_output(
        target,
        kind="folder" if folder else "file",
        overwrite=args.overwrite,
        flag="--overwrite",
        suffixes=sorted(IMAGE_SUFFIXES),
        what=option,
    )
    check_not_an_input(path, inputs, option)
    if folder and path.is_dir():
        others = sorted(p.name for p in path.iterdir() if not _FRAME_FILE.fullmatch(p.name))
        if others:
            raise InstitValueError(
                f"{option} {path} holds files that are not frames ({', '.join(others[:3])}): "
                "--overwrite replaces only a folder of frame_<t> files; choose another folder"
            )
    args.exit_stack.enter_context(output_lock(path, option))


def _save_marked(result: Any, target: str | None, video: bool) -> None:
    """The marked media the model saw: one image file, or frame_<t>.png files for a video."""
    if target is None:
        return
    from instit.results import media_frames

    frames = media_frames(result.media)
    if video:
        _write_frames(frames, Path(target), ".png")
    else:
        _save_image(frames[0], Path(target))


# -- verbs ---------------------------------------------------------------------------------------


def _cmd_mark(args: argparse.Namespace) -> int:
    from instit.marks import MarkStyle

    video = _is_video(args.source)
    if args.instances is None and args.text is None:
        raise InstitValueError("pass --instances (a JSON file) or --text (phrases to find)")
    _check_output(  # before any file is read or any model (--text) loads
        args,
        args.output,
        folder=video,
        option="-o/--output",
        inputs=[args.source, args.instances],
    )
    if video:
        from instit.video import load_video

        media: Any = load_video(args.source, **_sampling(args))
    else:
        media = args.source
    instances = _instances(args, args.source, media)
    name = args.style or ("video" if video else "image")
    style = MarkStyle.video() if name == "video" else MarkStyle.image()
    style = style.with_options(mask=args.mask, labels=args.labels)
    if video:
        return _mark_video(args, media, instances, style)
    from instit.marks import draw_marks, layout_marks
    from instit.media import load_image

    image = load_image(args.source)
    _save_image(draw_marks(image, instances, style=style), Path(args.output))
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
    if args.indexed_by == "source":  # keyed by position from here on, unsampled frames handled
        tracks = tracks.sampled(video.indices, snap=args.snap)
    marked = video.with_marks(tracks, style=style, indexed_by="sample")
    with_instances = sum(1 for t in range(len(video)) if len(tracks.at(t)))
    files = _write_frames(marked.frames, Path(args.output), ".png")
    if args.json:
        _print_json({**marked.to_dict(), "files": files, "frames_with_marks": with_instances})
    else:
        print(
            f"wrote {len(files)} marked frames to {args.output} "
            f"({with_instances} of them show instances)"
        )
    return EXIT_OK


def _cmd_frames(args: argparse.Namespace) -> int:
    from instit.video import load_video

    _check_output(args, args.output, folder=True, option="-o/--output", inputs=[args.source])
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


def _check_save_marked(args: argparse.Namespace) -> bool:
    """Check ``--save-marked`` (a folder for a video, an image file for an image); return
    whether the media is a video."""
    video = _is_video(args.media)
    _check_output(
        args,
        args.save_marked,
        folder=video,
        option="--save-marked",
        inputs=[args.media, args.instances],
    )
    return video


def _cmd_ask(args: argparse.Namespace) -> int:
    if args.stream and args.json:
        raise InstitValueError(
            "--stream prints the text as it comes and --json one JSON object at the end: "
            "pass one of them"
        )
    video = _check_save_marked(args)
    media = _load_media(args.media, args)
    instances = _instances(args, args.media, media)
    model = _load_model(args)
    if args.stream:
        stream = model.ask(
            media,
            args.question,
            instances=instances,
            marks=args.marks,
            snap=args.snap,
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
            snap=args.snap,
            max_new_tokens=args.max_new_tokens,
            progress=not args.no_progress,
        )
        if args.json:
            _print_json(answer.to_dict())
        else:
            print(answer.text)
    _warn_unknown(answer)
    _save_marked(answer, args.save_marked, video)
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    video = _check_save_marked(args)
    media = _load_media(args.media, args)
    instances = _instances(args, args.media, media)
    model = _load_model(args)
    description = model.describe_instances(
        media,
        instances,
        marks=args.marks,
        snap=args.snap,
        max_new_tokens=args.max_new_tokens,
        progress=not args.no_progress,
    )
    if args.json:
        _print_json(_dataset_record(description, args))
        _warn_ids(description)
    else:
        print(description)
    _save_marked(description, args.save_marked, video)
    return EXIT_OK


def _dataset_record(description: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The Inst-It Dataset record of a description (image or video), as docs/cli.md promises."""
    from instit.results import ImageDescription

    if isinstance(description, ImageDescription):
        return description.to_dataset_record(image_id=args.id, image_path=args.media)
    return description.to_dataset_record(video_id=args.id, video_path=args.media)


def _warn_unknown(answer: Any) -> None:
    """Mentions of instances or frames the media does not have, on stderr (the rest is kept)."""
    ids = " ".join(f"[{i}]" for i in answer.unknown_ids)
    frames = " ".join(f"<{t}>" for t in answer.unknown_frames)
    for listed, what in (
        (ids, "instances not among those given"),
        (frames, "frames the media does not have"),
    ):
        if listed:
            print(f"instit ask: warning: the answer mentions {what}: {listed}", file=sys.stderr)


def _warn_ids(description: Any) -> None:
    """The ID checks a dataset record has no field for, on stderr."""
    from instit.results import ImageDescription

    if isinstance(description, ImageDescription):
        missing = {0: description.missing_ids} if description.missing_ids else {}
        extra = {0: description.extra_ids} if description.extra_ids else {}
    else:
        missing, extra = description.missing_ids, description.extra_ids
    for problems, what in ((missing, "not described"), (extra, "described but not given")):
        for frame, ids in problems.items():
            where = f" on frame <{frame}>" if frame else ""
            listed = " ".join(f"[{i}]" for i in ids)
            print(f"instit describe: warning: {what}{where}: {listed}", file=sys.stderr)


def _cmd_convert(args: argparse.Namespace) -> int:
    from instit._files import check_output
    from instit.model import convert

    check_output(
        args.destination,
        kind="folder",
        overwrite=args.overwrite,
        flag="--overwrite",
        what="destination",
    )
    out = convert(args.source, args.destination, overwrite=args.overwrite, adapter=args.adapter)
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
        "--instances",
        help="instances: JSON (Instances.to_json, {id: box}, COCO annotations, supervision "
        "JSONSink) or a supervision CSVSink file; Tracks for a video",
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
    _add_snap_option(mark)
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
    frames.add_argument(
        "--overwrite", action="store_true", help="replace the frames of an earlier run in -o"
    )

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
        "describe every marked instance (readable text, or the Inst-It Dataset record)",
        "  instit describe photo.jpg --instances instances.json\n"
        "  instit describe photo.jpg --instances instances.json --json --id 7\n"
        "  instit describe frames/ --marks as_is --model ./ckpt",
    )
    describe.add_argument("media", help="image file, video file or frame folder")
    describe.add_argument(
        "--id", type=int, default=0, help="image_id / video_id of the --json record (default 0)"
    )
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
    convert.add_argument(
        "--adapter", help="merge this LoRA adapter folder (from instit finetune) into the output"
    )

    from instit.bench.cli import add_bench_parser
    from instit.dataset.cli import add_dataset_parser
    from instit.training.cli import add_finetune_parser

    add_segment_parsers(sub)
    add_bench_parser(sub)
    add_dataset_parser(sub)
    add_finetune_parser(sub)
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
    return run_verb(args, name, _verb_parser(parser, args))


def _verb_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """The parser of the verb ``args`` ran (``bench run`` -> the ``run`` parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return _verb_parser(action.choices[getattr(args, action.dest)], args)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
