"""Set-of-Marks rendering speed: instit.draw_marks vs supervision, one 1280x720 frame.

Run:  .venv/bin/python benchmarks/marks.py [--repeats N]

Scenes (fixed seed) mix real-looking masks: random blobs (unions of ellipses), rings and thin
bars, with 5, 20 and 60 instances.  instit draws contours and labels at each instance's most
interior point with overlap-free placement; supervision's nearest equivalent is
``PolygonAnnotator`` + ``LabelAnnotator(smart_position=True)`` (labels at the box centre,
nudged apart).

Like for like: both get the same image array and the same masks, already in their own instance
type (``Instances`` / ``sv.Detections`` with dense masks, as detectors return them; supervision
also with its crop-based ``CompactMask``), made once outside the timing as a detector or tracker
would.  Each timed call runs from the caller's image to the returned image: supervision copies
the image (it draws in place) and returns an array, instit copies it and returns a PIL image.
The contenders alternate run by run, so load on the machine slows them alike.  Prints the median
milliseconds per frame and the speed-ups, then what making the instances from an ``(N, H, W)``
array costs in each library (not part of the drawing times).

A fourth contender, timed in the same alternation, only copies the frame into a new PIL image:
the floor under any function that returns one, so ``supervision ms / floor`` is the largest
speed-up over supervision that such a function could show in that run.

Then label placement at scale (``--layout-only`` runs just this part): ``layout_marks`` with
1,000 to 10,000 box instances on a 1920x1080 frame (default image style, so most labels find no
free spot and the whole image is searched for each), CPU seconds, best of 3.  The same search
with an all-pairs overlap test (every candidate compared with every placed label, what instit
did before its blocked-corner maps) runs in the same process for the smaller counts, and the
ratio is printed; its placements are checked to be identical.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from unittest import mock

import cv2
import numpy as np
import supervision as sv
from PIL import Image
from supervision.detection.compact_mask import CompactMask

import instit.marks.layout as layout_module
from instit.instances import Instances
from instit.marks import draw_marks, layout_marks

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
    slows every contender alike.  (Not CPU time: supervision's path keeps more than one core
    busy, so its CPU time exceeds its wall time.)"""
    for function in functions:
        function()  # warm-up: font loading, glyph caches, imports
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, record in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            record.append((time.perf_counter() - start) * 1000)
    return [statistics.median(record) for record in times]


def new_pil_image(image: np.ndarray) -> Image.Image:
    """The frame as a new PIL image, made the cheapest way (no zero-fill first)."""
    result = Image.new("RGB", (image.shape[1], image.shape[0]), None)
    result.frombytes(image)
    return result


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print(" | ".join(header))
    print("-+-".join("-" * len(h) for h in header))
    for row in rows:
        print(" | ".join(f"{c:>{len(h)}}" for c, h in zip(row, header, strict=True)))


class _AllPairs:
    """``blocked[ys, xs]`` answered by comparing each corner's box with every placed box."""

    def __init__(self, placed: list[tuple[int, int, int, int]], size: tuple[int, int]) -> None:
        self.placed, self.size = placed, size

    def __getitem__(self, key: tuple[object, object]) -> np.ndarray:
        y0, x0 = (np.asarray(v) for v in key)
        if not self.placed:
            return np.zeros(x0.shape, dtype=bool)
        boxes = np.array(self.placed)
        w, h = self.size
        x0, y0 = x0[..., None], y0[..., None]
        across = (x0 < boxes[:, 2]) & (boxes[:, 0] < x0 + w)
        return (across & (y0 < boxes[:, 3]) & (boxes[:, 1] < y0 + h)).any(axis=-1)


class _AllPairsOccupancy(layout_module._Occupancy):
    def blocked(self, size: tuple[int, int]) -> _AllPairs:  # type: ignore[override]
        return _AllPairs(self._boxes, size)

    def add(self, box: tuple[int, int, int, int]) -> None:
        self._boxes.append(box)


def _cpu_seconds(function, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        result = function()
        best = min(best, time.process_time() - start)
    return best, result


def layout_scaling(counts: tuple[int, ...] = (1000, 2000, 10000), all_pairs_up_to: int = 1000):
    width, height = 1920, 1080
    image = np.zeros((height, width, 3), dtype=np.uint8)
    rows = []
    for count in counts:
        rng = np.random.default_rng(count)
        corners = rng.uniform(0, [width - 60, height - 60], (count, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(8, 60, (count, 2))], axis=1)
        instances = Instances.from_boxes(boxes, image_size=(width, height))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no free spot" for most labels
            ours, placed = _cpu_seconds(lambda instances=instances: layout_marks(image, instances))
            theirs = None
            if count <= all_pairs_up_to:
                with mock.patch.object(layout_module, "_Occupancy", _AllPairsOccupancy):
                    theirs, reference = _cpu_seconds(
                        lambda instances=instances: layout_marks(image, instances), repeats=1
                    )
                assert reference == placed, "the all-pairs search placed labels elsewhere"
        rows.append(
            (
                str(count),
                f"{ours:.3f}",
                "-" if theirs is None else f"{theirs:.2f}",
                "-" if theirs is None else f"{theirs / ours:.0f}x",
            )
        )
    print("\nlayout_marks, box instances on 1920x1080, CPU seconds (best of 3; all-pairs: 1 run)")
    _table(("labels", "instit s", "all-pairs s", "speed-up"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--layout-only", action="store_true", help="only the placement scaling")
    args = parser.parse_args()
    if args.layout_only:
        layout_scaling()
        return
    image = make_image()
    polygon = sv.PolygonAnnotator(thickness=1)
    label = sv.LabelAnnotator(smart_position=True, text_position=sv.Position.CENTER)
    rows, conversions = [], []
    for count in SIZES:
        masks = make_masks(count, seed=count)
        ids = list(range(1, count + 1))

        def make_instances(masks=masks, ids=ids) -> Instances:
            return Instances.from_masks(masks, ids, image_size=(WIDTH, HEIGHT))

        def make_detections(masks=masks, ids=ids) -> sv.Detections:
            return sv.Detections(
                xyxy=sv.mask_to_xyxy(masks).astype(float),
                mask=masks,
                class_id=np.arange(len(ids)),
                tracker_id=np.asarray(ids),
            )

        instances, detections = make_instances(), make_detections()
        compact = sv.Detections(
            xyxy=detections.xyxy,
            mask=CompactMask.from_dense(masks, detections.xyxy, (HEIGHT, WIDTH)),
            class_id=detections.class_id,
            tracker_id=detections.tracker_id,
        )
        labels = [str(i) for i in ids]

        def run_instit(instances=instances) -> None:
            draw_marks(image, instances)

        def run_supervision(detections=detections, labels=labels) -> None:
            scene = image.copy()
            scene = polygon.annotate(scene, detections)
            label.annotate(scene, detections, labels=labels)

        def run_compact(detections=compact, labels=labels) -> None:
            run_supervision(detections, labels)

        functions = [run_instit, run_supervision, run_compact, lambda: new_pil_image(image)]
        rows.append((count, *median_ms(functions, args.repeats)))
        conversions.append(
            (count, *median_ms([make_instances, make_detections], max(3, args.repeats // 6)))
        )
    print(f"supervision {sv.__version__}, {WIDTH}x{HEIGHT}, median of {args.repeats} runs")
    _table(
        (
            "instances",
            "instit ms",
            "supervision ms",
            "speed-up",
            "sv CompactMask ms",
            "speed-up",
            "PIL floor ms",
            "ceiling",
        ),
        [
            (
                str(n),
                f"{ours:.1f}",
                f"{dense:.1f}",
                f"{dense / ours:.1f}x",
                f"{compact:.1f}",
                f"{compact / ours:.1f}x",
                f"{floor:.2f}",
                f"{dense / floor:.1f}x",
            )
            for n, ours, dense, compact, floor in rows
        ],
    )
    print(
        "PIL floor: copying the frame into a new PIL image and nothing else, the least any\n"
        "function that returns one does; ceiling: supervision ms / PIL floor, the largest\n"
        "speed-up over supervision that any such function could show in this run"
    )
    print("\nmaking the instances from an (N, H, W) bool array (not in the times above)")
    _table(
        ("instances", "Instances.from_masks ms", "sv.Detections + mask_to_xyxy ms"),
        [(str(n), f"{ours:.1f}", f"{theirs:.1f}") for n, ours, theirs in conversions],
    )
    layout_scaling()


if __name__ == "__main__":
    main()
