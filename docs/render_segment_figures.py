"""Render the pictures of docs/segment.md into docs/img/.

Run from the repository root:  .venv/bin/python docs/render_segment_figures.py

No SAM weights can be downloaded here, so the model pictures use the tiny *random* SAM 2 of
``instit.testing``: they show the plumbing (prompts in, masks at the image's size, the IDs kept
on every frame), not segmentation quality.  The selection picture runs the real
``select_masks`` on hand-made candidate masks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_figures import caption, grid, save, shrink

from instit.examples_data import example_image
from instit.instances import Instances
from instit.marks import draw_marks
from instit.segment import Segmenter, select_masks
from instit.testing import make_tiny_segmenter

W, H = 320, 240


def _candidates() -> tuple[np.ndarray, np.ndarray]:
    """What automatic mask generation returns: duplicates, parts inside wholes, specks."""
    yy, xx = np.mgrid[0:H, 0:W]

    def disc(cx: int, cy: int, r: int) -> np.ndarray:
        return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2

    def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)

    masks = [
        rect(0, 150, 320, 240),  # floor
        disc(90, 100, 55),  # ball
        disc(92, 101, 54),  # the ball again (duplicate)
        disc(80, 90, 12),  # a spot on the ball (swallowed)
        rect(180, 40, 290, 200),  # box
        rect(230, 120, 300, 215),  # cup in front of the box (overlaps it)
        disc(20, 20, 3),  # speck
    ]
    scores = np.array([0.90, 0.97, 0.95, 0.93, 0.92, 0.96, 0.91])
    return np.stack(masks), scores


def selection() -> None:
    masks, scores = _candidates()
    background = Image.new("RGB", (W, H), (128, 128, 128))
    before = draw_marks(background, Instances.from_masks(masks), mask="contour")
    chosen, _ = select_masks(masks, scores, min_area=50)
    after = draw_marks(background, Instances.from_masks(chosen), mask="fill")
    panels = [
        caption(before, f"{len(masks)} candidates"),
        caption(after, f"select_masks: {len(chosen)} instances"),
    ]
    save(grid(panels, 2), "segment-select.png")


def plumbing() -> None:
    folder = make_tiny_segmenter(Path(tempfile.mkdtemp()) / "sam2")
    segmenter = Segmenter.from_pretrained(folder, device="cpu")
    image, instances = example_image()
    boxes = Instances.from_boxes(instances.boxes(), instances.ids, image_size=image.size)
    found = segmenter.segment(image, boxes=boxes)
    panels = [
        caption(shrink(draw_marks(image, boxes, mask="box"), 256), "boxes in (IDs 1-4)"),
        caption(shrink(draw_marks(image, found), 256), "tiny random SAM 2: masks out"),
    ]
    frames = []
    for t in range(4):
        pixels = np.full((120, 160, 3), 40, dtype=np.uint8)
        pixels[30:70, 10 + 25 * t : 50 + 25 * t] = (230, 200, 40)
        frames.append(Image.fromarray(pixels))
    given = segmenter.segment(frames[0], boxes=[[10, 30, 50, 70]], ids=[7])
    tracks = segmenter.track(frames, given, progress=False)
    strip = [
        caption(tracks.show(frames, max_frames=4)[k].resize((256, 192)), f"frame {key}")
        for k, key in enumerate(tracks.frame_indices[:4])
    ]
    save(grid(panels, 2), "segment-plumbing.png")
    save(grid(strip, 4), "segment-track.png")


def main() -> None:
    selection()
    plumbing()


if __name__ == "__main__":
    main()
