"""instit.segment vs the bare transformers calls it wraps; tracking memory vs video length.

Run:  .venv/bin/python benchmarks/segment.py [--model PATH] [--device cpu|cuda] [--repeats N]
      [--frames 100 200 300] [--shapes tiny|hiera-tiny] [--json out.json]
      [--parts segment everything track memory]

Without ``--model`` it builds a random SAM 2 checkpoint in a temp folder: ``--shapes tiny`` (the
test model, 128 px) or ``--shapes hiera-tiny`` (transformers' default ``Sam2VideoConfig``: the
shapes of facebook/sam2.1-hiera-tiny at 1024 px, random weights, so the compute is real-sized).

1. ``Segmenter.segment`` (10 boxes, 640x480) vs ``Sam2Processor`` + ``Sam2Model`` +
   ``post_process_masks``;
2. ``Segmenter.segment_everything`` (its own batched grid, then the selection) vs
   ``pipeline("mask-generation")`` with the same grid: the candidates before selection are
   compared (masks, scores and order must be the same) and both timed;
3. ``Segmenter.track`` vs transformers' own loop (``init_video_session(video=...)``,
   ``add_inputs_to_inference_session``, ``propagate_in_video_iterator``), 3 objects;
4. peak memory of ``track`` and of the bare loop at each ``--frames`` length (RSS sampled every
   2 ms above the level before the call; the frames themselves exist before either starts).

Contenders alternate run by run, so load on the machine hits both: median of ``10 x --repeats``
calls for ``segment`` (tens of milliseconds each), of ``--repeats // 2`` for the others.  Wall
and CPU time (every thread of the process; less disturbed by other jobs on a shared machine)
are both reported, with the 1-minute load average beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from instit.segment import Segmenter
from instit.testing import make_tiny_segmenter


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_mib(function: Any) -> tuple[float, Any]:
    """Peak RSS growth (MiB) while ``function()`` runs, and its result."""
    before, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        result = function()
    finally:
        done.set()
        thread.join()
    return (max(peak[0], _rss()) - before) / 2**20, result


def load() -> float:
    """The 1-minute load average (a shared machine's other jobs)."""
    return os.getloadavg()[0]


def alternate(functions: list[Any], repeats: int) -> list[tuple[float, float]]:
    """Median wall and CPU seconds (``process_time``: every thread of this process) of each
    function, called in turn, the order reversed every other round."""
    walls: list[list[float]] = [[] for _ in functions]
    cpus: list[list[float]] = [[] for _ in functions]
    for round_ in range(repeats):
        order = list(range(len(functions)))
        for index in order if round_ % 2 == 0 else order[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            functions[index]()
            walls[index].append(time.perf_counter() - wall)
            cpus[index].append(time.process_time() - cpu)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)]


def scene(width: int, height: int, t: int = 0) -> Image.Image:
    """A textured background with ten coloured discs drifting right."""
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 60, (height, width, 3))).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for k in range(10):
        cx = (width * (k + 1) // 11 + 3 * t) % width
        cy = height // 3 + (k % 3) * height // 5
        pixels[(xx - cx) ** 2 + (yy - cy) ** 2 < (min(width, height) // 16) ** 2] = (
            40 + 20 * k,
            200 - 15 * k,
            90,
        )
    return Image.fromarray(pixels)


def boxes_for(width: int, height: int, count: int) -> list[list[float]]:
    r = min(width, height) // 16 + 4
    return [
        [
            float(width * (k + 1) // 11 - r),
            float(height // 3 + (k % 3) * height // 5 - r),
            float(width * (k + 1) // 11 + r),
            float(height // 3 + (k % 3) * height // 5 + r),
        ]
        for k in range(count)
    ]


def build(shapes: str, folder: Path) -> Path:
    if shapes == "tiny":
        return make_tiny_segmenter(folder)
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor

    Sam2VideoModel(Sam2VideoConfig()).save_pretrained(folder)
    from transformers import Sam2ImageProcessor, Sam2VideoVideoProcessor

    Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(), video_processor=Sam2VideoVideoProcessor()
    ).save_pretrained(folder)
    return folder


def bare_track(path: Path, frames: list[Image.Image], masks: np.ndarray, device: str) -> int:
    model, processor = _bare_video(path, device)
    session = processor.init_video_session(video=frames, inference_device=device)
    processor.add_inputs_to_inference_session(
        inference_session=session,
        frame_idx=0,
        obj_ids=list(range(1, len(masks) + 1)),
        input_masks=[m.astype(np.float32) for m in masks],
    )
    height, width = frames[0].size[1], frames[0].size[0]
    count = 0
    with torch.inference_mode():
        model(inference_session=session, frame_idx=0)
        for output in model.propagate_in_video_iterator(session):
            processor.post_process_masks([output.pred_masks], original_sizes=[[height, width]])
            count += 1
    return count


_BARE: dict[str, Any] = {}


def _bare_video(path: Path, device: str) -> tuple[Any, Any]:
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    if "video" not in _BARE:
        _BARE["video"] = (
            Sam2VideoModel.from_pretrained(path).to(device).eval(),
            Sam2VideoProcessor.from_pretrained(path),
        )
    return _BARE["video"]


PARTS = ("segment", "everything", "track", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a SAM 2 checkpoint folder (default: random)")
    parser.add_argument("--shapes", choices=["tiny", "hiera-tiny"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--track-frames", type=int, default=20)
    parser.add_argument("--frames", type=int, nargs="*", default=[100, 200, 300])
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="which comparisons to run (default: all)",
    )
    args = parser.parse_args()
    from transformers import Sam2Model, Sam2Processor, pipeline

    path = args.model or build(args.shapes, Path(tempfile.mkdtemp()) / "sam2")
    report: dict[str, Any] = {"model": str(path), "shapes": args.shapes, "device": args.device}
    segmenter = Segmenter.from_pretrained(path, device=args.device, dtype="float32")
    bare_model = Sam2Model.from_pretrained(path).to(args.device).eval()
    bare_processor = Sam2Processor.from_pretrained(path)
    image = scene(640, 480)
    boxes = boxes_for(640, 480, 10)

    if "segment" in args.parts:

        def bare_segment() -> None:
            inputs = bare_processor(images=image, input_boxes=[boxes], return_tensors="pt")
            with torch.inference_mode():
                outputs = bare_model(**inputs.to(args.device), multimask_output=False)
            bare_processor.post_process_masks(
                outputs.pred_masks.cpu(), inputs["original_sizes"].cpu()
            )

        (ours, ours_cpu), (bare, bare_cpu) = alternate(
            [lambda: segmenter.segment(image, boxes=boxes), bare_segment], 10 * args.repeats
        )
        report["segment"] = {
            "instit_s": ours,
            "transformers_s": bare,
            "ratio": ours / bare,
            "cpu_ratio": ours_cpu / bare_cpu,
            "load": load(),
        }
        print(
            f"segment, 10 boxes, 640x480: instit {ours * 1e3:.1f} ms, transformers "
            f"{bare * 1e3:.1f} ms, ratio {ours / bare:.3f} (CPU time {ours_cpu * 1e3:.1f} vs "
            f"{bare_cpu * 1e3:.1f} ms, {ours_cpu / bare_cpu:.3f}; load {load():.2f})"
        )

    if "everything" in args.parts:
        generator = pipeline(
            "mask-generation",
            model=bare_model,
            image_processor=bare_processor.image_processor,
            device=args.device,
        )
        grid = {"points_per_side": 16, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        options = {"points_per_crop": 16, "points_per_batch": 64}
        options.update(pred_iou_thresh=0.0, stability_score_thresh=0.0)
        raw = generator(image, **options)
        masks, scores = segmenter._candidates(image, 16, 64, 0.0, 0.0)
        same = (
            len(masks) == len(raw["masks"])
            and all(np.array_equal(m, r.numpy()) for m, r in zip(masks, raw["masks"], strict=True))
            and np.array_equal(scores, raw["scores"].float().numpy())
        )
        (ours, ours_cpu), (bare, bare_cpu) = alternate(
            [
                lambda: segmenter.segment_everything(image, **grid),
                lambda: generator(image, **options),
            ],
            max(1, args.repeats // 2),
        )
        report["segment_everything"] = {
            "instit_s": ours,
            "pipeline_s": bare,
            "ratio": ours / bare,
            "cpu_ratio": ours_cpu / bare_cpu,
            "candidates": len(masks),
            "same_candidates_as_pipeline": same,
            "load": load(),
        }
        print(
            f"segment_everything, 16x16 grid, 640x480: instit {ours:.2f} s (candidates + "
            f"selection), pipeline {bare:.2f} s, ratio {ours / bare:.3f} (CPU time "
            f"{ours_cpu / bare_cpu:.3f}; load {load():.2f}); "
            f"{len(masks)} candidates, the same as the pipeline's: {same}"
        )

    if "track" in args.parts:
        frames = [scene(640, 480, t) for t in range(args.track_frames)]
        given = segmenter.segment(frames[0], boxes=boxes_for(640, 480, 3))
        masks = np.asarray(given.masks())
        (ours, ours_cpu), (bare, bare_cpu) = alternate(
            [
                lambda: segmenter.track(frames, given, progress=False),
                lambda: bare_track(path, frames, masks, args.device),
            ],
            max(1, args.repeats // 2),
        )
        report["track"] = {
            "instit_s": ours / len(frames),
            "transformers_s": bare / len(frames),
            "ratio": ours / bare,
            "cpu_ratio": ours_cpu / bare_cpu,
            "frames": len(frames),
            "load": load(),
        }
        print(
            f"track, 3 objects, {len(frames)} frames 640x480: instit "
            f"{ours / len(frames) * 1e3:.1f} ms/frame, transformers loop "
            f"{bare / len(frames) * 1e3:.1f} ms/frame, ratio {ours / bare:.3f} (CPU time "
            f"{ours_cpu / bare_cpu:.3f}; load {load():.2f})"
        )

    lengths = args.frames if "memory" in args.parts else []
    small = [scene(320, 240, t) for t in range(max(lengths, default=0))]
    memory = []
    if small:
        given = segmenter.segment(small[0], boxes=boxes_for(320, 240, 3))
        masks = np.asarray(given.masks())
    for length in lengths:
        clip = small[:length]
        ours_mib, _ = peak_mib(lambda clip=clip: segmenter.track(clip, given, progress=False))
        bare_mib, _ = peak_mib(lambda clip=clip: bare_track(path, clip, masks, args.device))
        memory.append({"frames": length, "instit_mib": ours_mib, "transformers_mib": bare_mib})
        print(
            f"track {length} frames 320x240, peak RSS above start: instit {ours_mib:.0f} MiB, "
            f"transformers loop {bare_mib:.0f} MiB"
        )
    report["track_memory"] = memory
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
