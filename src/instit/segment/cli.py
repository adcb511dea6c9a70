"""``instit segment`` and ``instit track``, and the ``--text`` option of mark / ask / describe.

Standard library only at import time (``instit --help`` stays instant); the models load inside
the handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from instit import _json
from instit.cli_support import EXIT_OK, add_progress_option, help_formatter
from instit.errors import InstitValueError
from instit.segment._load import DEFAULT_DETECTOR, DEFAULT_SEGMENTER

__all__ = ["add_finder_options", "add_segment_parsers", "find_for"]


def add_finder_options(parser: argparse.ArgumentParser) -> None:
    """``--text`` / ``--segmenter`` / ``--detector``: find the instances instead of reading them."""
    parser.add_argument(
        "--text",
        help='find the instances first: phrases such as "a person. a ball." (needs '
        "instit[segment]); instead of --instances",
    )
    parser.add_argument(
        "--segmenter",
        default=DEFAULT_SEGMENTER,
        help=f"SAM 2 / EdgeTAM / SAM 3 tracker checkpoint (default: {DEFAULT_SEGMENTER})",
    )
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"Grounding DINO / OWLv2 / SAM 3 checkpoint for --text (SAM 3 gives the masks "
        f"itself; default: {DEFAULT_DETECTOR})",
    )


def find_for(args: argparse.Namespace, media: Any) -> Any:
    """The instances (image) or tracks (video) ``args.text`` names on ``media``."""
    from instit.segment import Detector, Segmenter, find_instances

    device = getattr(args, "device", "auto")
    detector = Detector.from_pretrained(args.detector, device=device)
    options: dict[str, Any] = {}
    video = not isinstance(media, (str, Path))  # a sampled Video
    if video:
        options = {"progress": False, "indexed_by": getattr(args, "indexed_by", "source")}
    # a SAM 3 detector gives masks: a segmenter is needed only to track them
    segmenter = (
        Segmenter.from_pretrained(args.segmenter, device=device)
        if video or not detector.gives_masks
        else None
    )
    return find_instances(media, args.text, segmenter=segmenter, detector=detector, **options)


def _boxes(value: str) -> Any:
    """``--boxes``: a JSON list of ``[x0, y0, x1, y1]`` or a JSON file holding one."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except OSError:  # longer than a file name may be: a long inline list
        is_file = False
    fix = ": pass a JSON list like '[[10, 20, 200, 180]]' or a JSON file holding one"
    if not is_file:
        return _json.loads(value, f"--boxes {value[:60]!r}", error=InstitValueError, fix=fix)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InstitValueError(f"--boxes file {path} cannot be read ({exc.strerror})") from None
    return _json.loads(data, f"--boxes file {path}", error=InstitValueError, fix=fix)


def _check_target(target: str, overwrite: bool, inputs: list[str | None]) -> None:
    """Refuse an output that cannot be written (or would replace an input), before any model
    loads."""
    from instit._files import check_not_an_input, check_output

    path = check_output(
        target, kind="file", overwrite=overwrite, flag="--overwrite", suffixes=(".json",),
        what="-o/--output",
    )  # fmt: skip
    check_not_an_input(path, inputs, "-o/--output")


def _write(instances: Any, target: str) -> None:
    Path(target).write_text(instances.to_json(), encoding="utf-8")


def _cmd_segment(args: argparse.Namespace) -> int:
    from instit.segment import Detector, Segmenter, find_instances

    if args.boxes is not None and args.text is not None:
        raise InstitValueError("pass --boxes or --text, not both")
    _check_target(args.output, args.overwrite, [args.image])
    boxes = None if args.boxes is None else _boxes(args.boxes)  # bad JSON before loading
    if args.text is not None:
        detector = Detector.from_pretrained(args.detector, device=args.device)
        found = find_instances(
            args.image,
            args.text,
            # SAM 3 gives masks itself; the others' boxes go to the segmenter
            segmenter=None
            if detector.gives_masks
            else Segmenter.from_pretrained(args.model, device=args.device),
            detector=detector,
            box_threshold=args.box_threshold,
            text_threshold=args.text_threshold,
        )
    elif boxes is not None:
        found = Segmenter.from_pretrained(args.model, device=args.device).segment(
            args.image, boxes=boxes
        )
    else:
        found = Segmenter.from_pretrained(args.model, device=args.device).segment_everything(
            args.image,
            points_per_side=args.points_per_side,
            max_instances=args.max_instances,
            min_area=args.min_area,
        )
    _write(found, args.output)
    if args.json:
        print(json.dumps({"output": args.output, "ids": list(found.ids), "labels": found.labels}))
    else:
        print(f"wrote {args.output} with {len(found)} instances")
    return EXIT_OK


def _cmd_track(args: argparse.Namespace) -> int:
    from instit.cli import read_instances_file
    from instit.instances import Instances
    from instit.segment import Segmenter
    from instit.video import load_video

    _check_target(args.output, args.overwrite, [args.video, args.instances])
    if args.fps is not None:
        video = load_video(args.video, fps=args.fps, max_frames=args.num_frames)
    else:
        video = load_video(args.video, num_frames=args.num_frames)
    data = read_instances_file(args.instances)
    if isinstance(data, dict) and "frames" in data and "instances" not in data:
        raise InstitValueError(
            f"{args.instances} holds tracks; pass the instances of one frame "
            "(Instances.to_json, e.g. from instit segment)"
        )
    given = Instances.coerce(data, image_size=video.size)
    segmenter = Segmenter.from_pretrained(args.model, device=args.device)
    tracks = segmenter.track(
        video, given, frame=args.frame, indexed_by=args.indexed_by, progress=not args.no_progress
    )
    _write(tracks, args.output)
    if args.json:
        print(json.dumps({"output": args.output, "frames": len(tracks), "ids": list(tracks.ids)}))
    else:
        print(f"wrote {args.output}: {len(tracks.ids)} objects over {len(tracks)} frames")
    return EXIT_OK


def add_segment_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``instit segment`` and ``instit track``."""
    segment = sub.add_parser(
        "segment",
        help="find the instances of an image: by boxes, by words, or everything",
        description=(
            "find the instances of an image: by boxes, by words, or everything (instit[segment])"
            "\n\nexamples:\n"
            '  instit segment photo.jpg --text "a person. a ball." -o instances.json\n'
            '  instit segment photo.jpg --text "a person" --detector facebook/sam3 -o i.json\n'
            "  instit segment photo.jpg --boxes '[[10, 20, 200, 180]]' -o instances.json\n"
            "  instit segment photo.jpg --max-instances 20 -o instances.json"
        ),
        formatter_class=help_formatter,
    )
    segment.add_argument("image", help="image file")
    segment.add_argument("--boxes", help="JSON list of [x0, y0, x1, y1] pixel boxes, or a file")
    segment.add_argument("--text", help='phrases to find, e.g. "a person. a ball."')
    segment.add_argument("-o", "--output", required=True, help="instances JSON to write")
    segment.add_argument("--model", default=DEFAULT_SEGMENTER, help="segmenter checkpoint")
    segment.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help="detector for --text: Grounding DINO / OWLv2 (boxes, then --model segments them) "
        "or SAM 3 (masks itself, --model unused)",
    )
    segment.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    segment.add_argument("--box-threshold", type=float, default=0.35)
    segment.add_argument("--text-threshold", type=float, default=0.25)
    segment.add_argument("--points-per-side", type=int, default=32, help="segment-everything grid")
    segment.add_argument("--max-instances", type=int, default=50)
    segment.add_argument("--min-area", type=int, default=100, help="smallest mask in pixels")
    segment.add_argument("--overwrite", action="store_true", help="replace an existing output")
    segment.add_argument("--json", action="store_true", help="print the result as JSON")
    segment.set_defaults(handler=_cmd_segment)

    track = sub.add_parser(
        "track",
        help="track the instances of one frame through every frame of a video",
        description=(
            "track the instances of one frame through every frame of a video (instit[segment])"
            "\n\nexamples:\n"
            "  instit track clip.mp4 --instances instances.json -o tracks.json\n"
            "  instit track frames/ --instances instances.json --frame 12 -o tracks.json"
        ),
        formatter_class=help_formatter,
    )
    track.add_argument("video", help="video file or folder of frames")
    track.add_argument("--instances", required=True, help="instances JSON of frame --frame")
    track.add_argument("--frame", type=int, default=0, help="the frame the instances are on")
    track.add_argument("-o", "--output", required=True, help="tracks JSON to write")
    track.add_argument("--model", default=DEFAULT_SEGMENTER, help="segmenter checkpoint")
    track.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    track.add_argument("--num-frames", type=int, default=None, help="sample frames (default: all)")
    track.add_argument("--fps", type=float, default=None, help="sample by rate instead")
    track.add_argument(
        "--indexed-by",
        choices=["source", "sample"],
        default="source",
        help="--frame and the output keyed by source frame number (default) or position",
    )
    add_progress_option(track, "no progress bar")
    track.add_argument("--overwrite", action="store_true", help="replace an existing output")
    track.add_argument("--json", action="store_true", help="print the result as JSON")
    track.set_defaults(handler=_cmd_track)
