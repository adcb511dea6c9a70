"""Draw Set-of-Marks visual prompts on an image; no model needed.

    python examples/mark_image.py                       # the bundled example -> marked.png
    python examples/mark_image.py --image photo.jpg --instances masks.json --out marked.png

``--instances`` is a JSON file ``instit`` can read as instances: what ``Instances.to_json()``
writes, ``{"1": [x0, y0, x1, y1]}`` boxes, ``{id: COCO RLE}``, COCO annotations or supervision
``JSONSink`` rows (see docs/instances.md).  Prints the IDs it marked and where the image went.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instit.cli_support import run_script
from instit.examples_data import example_image
from instit.instances import Instances
from instit.marks import draw_marks
from instit.media import load_image


def main(argv: list[str] | None = None) -> None:
    """Mark the image, save it, print a JSON summary."""
    parser = argparse.ArgumentParser(description="Draw numbered instance marks on an image.")
    parser.add_argument("--image", type=Path, help="image file (default: the bundled example)")
    parser.add_argument("--instances", type=Path, help="instances JSON (with --image)")
    parser.add_argument("--style", choices=["image", "video"], default="image")
    parser.add_argument("--out", type=Path, default=Path("marked.png"), help="output image")
    args = parser.parse_args(argv)
    if args.image is None:
        image, instances = example_image()
    else:
        if args.instances is None:
            parser.error("--image needs --instances (a JSON file of masks)")
        image = load_image(args.image)
        instances = Instances.coerce(json.loads(args.instances.read_text()), image_size=image.size)
    marked = draw_marks(image, instances, style=args.style)
    marked.save(args.out)
    print(json.dumps({"ids": list(instances.ids), "size": list(marked.size), "out": str(args.out)}))


if __name__ == "__main__":
    sys.exit(run_script(main, "mark_image.py"))
