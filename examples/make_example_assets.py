"""Rebuild the bundled example image and its instance masks (``src/instit/assets/``).

The photo is scikit-image's ``astronaut.png`` (NASA portrait of Eileen Collins, public domain).
Get it without installing scikit-image, then run this script::

    pip download --no-deps scikit-image -d /tmp/skimg
    unzip -j /tmp/skimg/scikit_image-*.whl 'skimage/data/astronaut.png' -d /tmp/skimg
    python examples/make_example_assets.py --source /tmp/skimg/astronaut.png

It writes ``astronaut.jpg`` and ``astronaut_instances.json``: four instances outlined by hand
as polygons (in 512x512 pixel coordinates), rasterised, made disjoint (an instance in front
takes the pixels it covers) and stored as COCO RLE.  ``--source`` may also be the bundled
``astronaut.jpg`` itself: the masks depend only on the polygons and the image size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from instit.cli_support import run_script
from instit.instances import encode_rle

ASSETS = Path(__file__).resolve().parents[1] / "src" / "instit" / "assets"
SIZE = 512

# id -> (label, polygon vertices (x, y)); listed back to front.
# fmt: off
POLYGONS: dict[int, tuple[str, list[tuple[int, int]]]] = {
    2: ("flag", [
        (0, 0), (75, 0), (85, 60), (95, 150), (97, 230), (60, 262), (32, 305), (22, 360),
        (20, 460), (24, 511), (0, 511),
    ]),
    4: ("space shuttle model", [
        (398, 8), (414, 0), (432, 0), (440, 40), (447, 60), (455, 110), (459, 200), (456, 245),
        (470, 280), (420, 290), (372, 284), (376, 262), (360, 228), (355, 214), (380, 186),
        (384, 100), (394, 50),
    ]),
    1: ("astronaut", [
        (222, 14), (262, 18), (292, 45), (301, 90), (292, 135), (284, 158), (300, 190),
        (306, 240), (330, 268), (352, 290), (362, 330), (362, 346), (330, 352), (300, 365),
        (282, 400), (275, 440), (278, 511), (105, 511), (30, 500), (20, 460), (22, 360),
        (32, 308), (58, 268), (96, 244), (120, 225), (116, 190), (130, 160), (168, 140),
        (160, 110), (155, 70), (175, 30),
    ]),
    3: ("helmet", [
        (280, 440), (290, 395), (320, 362), (360, 346), (400, 343), (445, 352), (480, 375),
        (500, 400), (511, 430), (511, 511), (285, 511), (278, 480),
    ]),
}
# fmt: on


def masks() -> dict[int, np.ndarray]:
    """The disjoint masks, ``{id: 512x512 bool}`` (later polygons are in front)."""
    taken = np.zeros((SIZE, SIZE), dtype=bool)
    out: dict[int, np.ndarray] = {}
    for instance_id, (_, vertices) in reversed(POLYGONS.items()):
        canvas = Image.new("1", (SIZE, SIZE), 0)
        ImageDraw.Draw(canvas).polygon(vertices, fill=1)
        mask = np.array(canvas, dtype=bool) & ~taken
        taken |= mask
        out[instance_id] = mask
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> None:
    """Write the example image (JPEG) and its instances (COCO RLE JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="astronaut.png (512x512)")
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder")
    args = parser.parse_args(argv)
    image = Image.open(args.source).convert("RGB")
    if image.size != (SIZE, SIZE):
        parser.error(f"{args.source} is {image.size}, expected the 512x512 astronaut image")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.source.resolve() != (args.out / "astronaut.jpg").resolve():
        image.save(args.out / "astronaut.jpg", quality=88, optimize=True)
    annotations = {
        "image": "astronaut.jpg",
        "image_size": [SIZE, SIZE],
        "instances": [
            {"id": i, "label": POLYGONS[i][0], "segmentation": encode_rle(mask)}
            for i, mask in masks().items()
        ],
    }
    path = args.out / "astronaut_instances.json"
    path.write_text(json.dumps(annotations, indent=1) + "\n")
    print(f"wrote {args.out / 'astronaut.jpg'} and {path}")


if __name__ == "__main__":
    sys.exit(run_script(main, "make_example_assets.py"))
