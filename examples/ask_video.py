"""Ask an Inst-It model about a video whose instances are tracked; answers point to <t> frames.

    python examples/ask_video.py                                  # a demo clip, default model
    python examples/ask_video.py --video clip.mp4 --tracks tracks.json --question "..."
    python examples/ask_video.py --model PATH --out marked_frames/

Without ``--video`` the script makes an 8-frame demo clip by panning across the bundled example
photo, with the example's masks as tracks.  ``--video`` is a video file or a folder of frames
(8 frames are sampled); ``--tracks`` a JSON file from ``Tracks.to_json()`` keyed by source frame
number.  The marked frames the model saw are saved to ``--out``; the answer (with its ``[ID]``
and ``<t>`` references, and the seconds of each frame mentioned) is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from instit.cli_support import run_script
from instit.examples_data import example_image
from instit.instances import Instances, Tracks
from instit.model import InstIt
from instit.tasks import ask
from instit.video import Video, load_video

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"
DEFAULT_QUESTION = "Which instances can be seen at <1>, and which ones at <8>? What changes?"


def demo_clip(num_frames: int = 8, side: int = 320) -> tuple[Video, Tracks]:
    """A clip panning left to right over the example photo, and its tracks (by frame)."""
    image, instances = example_image()
    masks = instances.masks()
    width, height = image.size
    frames, per_frame = [], {}
    for index, left in enumerate(np.linspace(0, width - side, num_frames).astype(int)):
        top = (height - side) // 2
        frames.append(image.crop((left, top, left + side, top + side)))
        crops = {
            instance_id: mask[top : top + side, left : left + side]
            for instance_id, mask in zip(instances.ids, masks, strict=True)
        }
        per_frame[index] = Instances.from_masks(
            {i: m for i, m in crops.items() if m.sum() >= 200}, image_size=(side, side)
        )
    seconds = [index / 4 for index in range(num_frames)]  # as if sampled at 4 frames/s
    video = Video(frames, list(range(num_frames)), seconds, fps=4.0)
    return video, Tracks(per_frame)


def main(argv: list[str] | None = None) -> None:
    """Load the model and the clip, ask, print JSON, save the marked frames."""
    parser = argparse.ArgumentParser(description="Ask about a video with tracked instances.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or checkpoint folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--video", type=Path, help="video file or frame folder (default: demo)")
    parser.add_argument("--tracks", type=Path, help="Tracks JSON keyed by source frame number")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("marked_frames"), help="frame folder")
    args = parser.parse_args(argv)
    if args.video is None:
        video, tracks = demo_clip(args.num_frames)
    else:
        video = load_video(args.video, num_frames=args.num_frames)
        tracks = None if args.tracks is None else Tracks.from_json(args.tracks.read_text())
    model = InstIt.from_pretrained(args.model, device=args.device)
    answer = ask(model, video, args.question, instances=tracks, max_new_tokens=args.max_new_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    frames = answer.media.frames
    for t, frame in enumerate(frames, start=1):
        frame.save(args.out / f"frame_{t}.png")
    result = answer.to_dict()
    result["frame_seconds"] = video.timestamps
    result["marked_frames"] = str(args.out)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    hint = "pass --model PATH for a local checkpoint folder"
    sys.exit(run_script(main, "ask_video.py", checkpoint_hint=hint))
