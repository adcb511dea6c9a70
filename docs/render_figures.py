"""Render every picture in docs/marks.md into docs/img/.

Run from the repository root:  .venv/bin/python docs/render_figures.py

The option gallery uses the bundled, licence-clean example (``instit.example_image()``); the
comparison with the authors' look draws on the raw demo image and frame from the shared
reference folder (``INSTIT_REFERENCE``, default ``../shared/reference/inst-it``), with
hand-traced outlines, since the authors' masks are not published.  Figures are palette PNGs
(at most 200 KB each).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import instit
from instit.instances import Instances
from instit.marks import MarkStyle, draw_marks, layout_marks

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
REFERENCE = Path(os.environ.get("INSTIT_REFERENCE", ROOT.parent / "shared/reference/inst-it"))
MAX_BYTES = 200_000

# rough outlines of the two people the authors marked in som_frame_1.jpg (1280x720)
FRAME_POLYGONS = {
    1: [(625, 240), (650, 205), (700, 200), (730, 230), (735, 265), (790, 250), (930, 330),
        (955, 380), (945, 430), (880, 450), (820, 430), (815, 700), (570, 700), (560, 500),
        (540, 450), (470, 420), (455, 390), (500, 330), (560, 290), (620, 265)],
    2: [(875, 70), (900, 45), (925, 60), (925, 100), (960, 130), (975, 200), (1000, 260),
        (985, 265), (960, 220), (915, 250), (915, 310), (860, 480), (835, 500), (830, 400),
        (835, 320), (825, 260), (820, 200), (830, 130), (870, 110)],
}  # fmt: skip


def caption(image: Image.Image, text: str) -> Image.Image:
    """``image`` with a white caption strip below it."""
    font = ImageFont.load_default(size=15)
    strip = 24
    out = Image.new("RGB", (image.width, image.height + strip), (255, 255, 255))
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((6, image.height + 4), text, fill=(20, 20, 20), font=font)
    return out


def grid(panels: list[Image.Image], columns: int, gap: int = 6) -> Image.Image:
    """Panels (all the same size) in rows of ``columns``."""
    width, height = panels[0].size
    rows = -(-len(panels) // columns)
    sheet = Image.new(
        "RGB",
        (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap),
        (255, 255, 255),
    )
    for index, panel in enumerate(panels):
        row, column = divmod(index, columns)
        sheet.paste(panel, (column * (width + gap), row * (height + gap)))
    return sheet


def shrink(image: Image.Image, width: int) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def save(image: Image.Image, name: str) -> None:
    """Save as an optimised palette PNG, with fewer colours until it fits ``MAX_BYTES``."""
    path = OUT / name
    for colors in (256, 160, 96, 64):
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES:
            break
    else:
        raise SystemExit(f"{name} is {path.stat().st_size} bytes; shrink the figure")
    print(f"{path.relative_to(ROOT)}: {image.width}x{image.height}, {path.stat().st_size} bytes")


def options_gallery() -> None:
    image, instances = instit.example_image()
    mask_panels = [
        caption(shrink(draw_marks(image, instances, mask=mode), 320), f'mask="{mode}"')
        for mode in ("contour", "fill", "box", "point", "none")
    ]
    mask_panels.append(
        caption(shrink(draw_marks(image, instances, labels="alpha"), 320), 'labels="alpha"')
    )
    save(grid(mask_panels, 3), "options.png")
    looks = [
        caption(draw_marks(image, instances, style="image").crop((96, 40, 416, 360)), '"image"'),
        caption(draw_marks(image, instances, style="video").crop((96, 40, 416, 360)), '"video"'),
        caption(
            draw_marks(image, instances, box_color="auto", mask="fill").crop((96, 40, 416, 360)),
            'box_color="auto", mask="fill"',
        ),
    ]
    save(grid(looks, 3), "looks.png")


def crowded_scene() -> None:
    """60 instances: blobs, rings, bars and a cluster of one-pixel specks."""
    width, height = 800, 450
    rng = np.random.default_rng(11)
    masks = np.zeros((60, height, width), dtype=np.uint8)
    for index in range(40):
        cx, cy = int(rng.normal(width / 2, 150)), int(rng.normal(height / 2, 90))
        kind = index % 3
        if kind == 0:
            cv2.ellipse(masks[index], (cx, cy), (int(rng.integers(12, 45)),) * 2, 0, 0, 360, 1, -1)
        elif kind == 1:
            cv2.circle(masks[index], (cx, cy), int(rng.integers(20, 50)), 1, 6)
        else:
            cv2.line(masks[index], (cx - 60, cy - 10), (cx + 60, cy + 10), 1, 4)
    for index in range(40, 60):  # 20 specks on top of each other near the right edge
        masks[index, 200 + index % 4, 700 + index % 5] = 1
    shade = np.linspace(70, 190, width, dtype=np.uint8)
    background = np.dstack([np.tile(shade, (height, 1))] * 3)
    instances = Instances.from_masks(masks.astype(bool))
    layout = layout_marks(background, instances)
    leaders = sum(p.leader is not None for p in layout.values())
    print(f"crowded scene: {len(layout)} labels, {leaders} leader lines")
    save(draw_marks(background, instances), "crowded.png")


def interior_anchors() -> None:
    """A ring and a U: the centroid (red cross) is outside, the label is inside."""
    panels = []
    for name in ("ring", "U shape"):
        mask = np.zeros((240, 320), dtype=np.uint8)
        if name == "ring":
            cv2.circle(mask, (160, 120), 85, 1, 22)
        else:
            mask[30:210, 50:100] = mask[30:210, 220:270] = mask[160:210, 50:270] = 1
        ys, xs = np.nonzero(mask)
        image = np.full((240, 320, 3), 235, dtype=np.uint8)
        drawn = np.asarray(draw_marks(image, {1: mask.astype(bool)}, mask="fill")).copy()
        centroid = (round(xs.mean()), round(ys.mean()))
        cv2.drawMarker(drawn, centroid, (220, 0, 0), cv2.MARKER_CROSS, 18, 2)
        panels.append(caption(Image.fromarray(drawn), f"{name}: centroid (red) vs label"))
    save(grid(panels, 2), "interior.png")


def _demo_polygons() -> dict[int, list[tuple[int, int]]]:
    """The hand-traced outlines of the demo image, kept once in tests/test_marks.py."""
    spec = importlib.util.spec_from_file_location("test_marks", ROOT / "tests" / "test_marks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["test_marks"] = module
    spec.loader.exec_module(module)
    return module.DEMO_POLYGONS


def reference_comparison() -> None:
    demo = REFERENCE / "demo"
    theirs = Image.open(demo / "image_som.jpg").convert("RGB")
    raw = Image.open(demo / "image.jpg").convert("RGB").resize(theirs.size, Image.LANCZOS)
    polygons = {k: np.array(v, float) for k, v in _demo_polygons().items()}
    ours = draw_marks(raw, Instances.from_polygons(polygons, image_size=raw.size))
    crop = (380, 150, 680, 390)  # labels 9 and 10 at full size
    panels = [
        caption(shrink(theirs, 480), "authors (image_som.jpg)"),
        caption(shrink(ours, 480), "instit, default image style"),
        caption(theirs.crop(crop).resize((480, 384), Image.NEAREST), "authors, zoomed"),
        caption(ours.crop(crop).resize((480, 384), Image.NEAREST), "instit, zoomed"),
    ]
    save(grid(panels, 2), "reference-image.png")

    theirs = Image.open(demo / "som_frame_1.jpg").convert("RGB")
    raw = Image.open(demo / "frame_1.jpg").convert("RGB")
    polygons = {k: np.array(v, float) for k, v in FRAME_POLYGONS.items()}
    ours = draw_marks(raw, Instances.from_polygons(polygons, image_size=raw.size), style="video")
    crop = (640, 100, 940, 460)  # both labels at full size
    panels = [
        caption(shrink(theirs, 480), "authors (som_frame_1.jpg)"),
        caption(shrink(ours, 480), "instit, default video style"),
        caption(theirs.crop(crop).resize((300, 360)), "authors, 1:1"),
        caption(ours.crop(crop).resize((300, 360)), "instit, 1:1"),
    ]
    top = grid(panels[:2], 2)
    bottom = grid(panels[2:], 2)
    sheet = Image.new("RGB", (top.width, top.height + 6 + bottom.height), (255, 255, 255))
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, ((top.width - bottom.width) // 2, top.height + 6))
    save(sheet, "reference-video.png")


def scaling() -> None:
    """The same instances at 320 px and at 4K: labels keep their share of the picture."""
    image, instances = instit.example_image()
    panels = []
    for side in (320, 3840):
        big = image.resize((side, side), Image.LANCZOS)
        masks = np.stack(
            [
                np.asarray(Image.fromarray(m).resize((side, side), Image.NEAREST))
                for m in instances.masks()
            ]
        )
        scaled = Instances.from_masks(masks, list(instances.ids))
        height = MarkStyle.image().resolve(side, side).font_size
        panels.append(caption(shrink(draw_marks(big, scaled), 320), f"{side} px (font {height})"))
    save(grid(panels, 2), "scaling.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    options_gallery()
    crowded_scene()
    interior_anchors()
    scaling()
    reference_comparison()


if __name__ == "__main__":
    main()
