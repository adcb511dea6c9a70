"""Set-of-Marks rendering speed: instit.draw_marks vs supervision, one 1280x720 frame.

Run:  .venv/bin/python benchmarks/marks.py [--repeats N]

Scenes (fixed seed) mix real-looking masks: random blobs (unions of ellipses), rings and thin
bars, with 5, 20 and 60 instances.  instit draws contours and labels at each instance's most
interior point with overlap-free placement; supervision's nearest equivalent is
``PolygonAnnotator`` + ``LabelAnnotator(smart_position=True)`` (labels at the box centre,
nudged apart).  Both get the same masks already as their native input type (``Instances`` /
``sv.Detections``), so the times cover drawing only.  Prints the median milliseconds per frame
and the speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import supervision as sv

from instit.instances import Instances
from instit.marks import draw_marks

WIDTH, HEIGHT = 1280, 720
SIZES = (5, 20, 60)


def make_masks(count: int, seed: int = 0) -> np.ndarray:
    """``count`` masks: a third blobs, a third rings, a third thin bars (some rotated)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, HEIGHT, WIDTH), dtype=np.uint8)
    for index in range(count):
        canvas = masks[index]
        cx, cy = int(rng.integers(60, WIDTH - 60)), int(rng.integers(60, HEIGHT - 60))
        size = int(rng.integers(20, 140))
        kind = index % 3
        if kind == 0:
            for _ in range(int(rng.integers(2, 5))):
                axes = (
                    int(rng.integers(size // 3, size) + 4),
                    int(rng.integers(size // 3, size)) + 4,
                )
                centre = (
                    cx + int(rng.integers(-size // 2, size // 2 + 1)),
                    cy + int(rng.integers(-size // 2, size // 2 + 1)),
                )
                cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        elif kind == 1:
            cv2.circle(canvas, (cx, cy), size // 2 + 8, 1, max(3, size // 6))
        else:
            length, thickness = size * 2 + 20, int(rng.integers(3, 9))
            angle = float(rng.uniform(0, np.pi))
            dx, dy = int(np.cos(angle) * length / 2), int(np.sin(angle) * length / 2)
            cv2.line(canvas, (cx - dx, cy - dy), (cx + dx, cy + dy), 1, thickness)
    return masks.astype(bool)


def make_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (HEIGHT // 40, WIDTH // 40, 3), dtype=np.uint8)
    return cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


def median_ms(functions: list, repeats: int) -> list[float]:
    """Median wall time (ms) of each function; the runs alternate so that load on the machine
    slows every contender alike."""
    for function in functions:
        function()  # warm-up: font loading, glyph caches, imports
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, record in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            record.append((time.perf_counter() - start) * 1000)
    return [statistics.median(record) for record in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    image = make_image()
    polygon = sv.PolygonAnnotator(thickness=1)
    label = sv.LabelAnnotator(smart_position=True, text_position=sv.Position.CENTER)
    rows = []
    for count in SIZES:
        masks = make_masks(count, seed=count)
        ids = list(range(1, count + 1))
        instances = Instances.from_masks(masks, ids, image_size=(WIDTH, HEIGHT))
        detections = sv.Detections(
            xyxy=sv.mask_to_xyxy(masks).astype(float),
            mask=masks,
            class_id=np.arange(count),
            tracker_id=np.asarray(ids),
        )
        labels = [str(i) for i in ids]

        def run_instit(instances=instances) -> None:
            draw_marks(image, instances)

        def run_supervision(detections=detections, labels=labels) -> None:
            scene = image.copy()
            scene = polygon.annotate(scene, detections)
            label.annotate(scene, detections, labels=labels)

        ours, theirs = median_ms([run_instit, run_supervision], args.repeats)
        rows.append((count, ours, theirs))
    print(f"supervision {sv.__version__}, {WIDTH}x{HEIGHT}, median of {args.repeats} runs")
    print(f"{'instances':>9} | {'instit ms':>9} | {'supervision ms':>14} | {'speed-up':>8}")
    print(f"{'-' * 9}-+-{'-' * 9}-+-{'-' * 14}-+-{'-' * 8}")
    for count, ours, theirs in rows:
        print(f"{count:>9} | {ours:>9.1f} | {theirs:>14.1f} | {theirs / ours:>7.1f}x")


if __name__ == "__main__":
    main()
