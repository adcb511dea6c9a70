"""Describe every marked instance of an image with an Inst-It model (the README's main job).

    python examples/describe_image.py                      # bundled example, default checkpoint
    python examples/describe_image.py --model PATH_OR_HUB_ID --out marked.png
    python examples/describe_image.py --quantization 4bit  # a 16 GB machine without CUDA

Loads ``Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B`` (4-bit on CUDA; on a CPU float32, or the most
faithful setting that fits in memory; the weights download on first use), draws the marks of the
bundled example's four instances, asks the model to caption each instance and the whole image,
prints the result as an Inst-It Dataset image record (JSON) and saves the marked image the model
saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instit.cli_support import run_script
from instit.examples_data import example_image
from instit.instances import Instances
from instit.media import load_image
from instit.model import InstIt
from instit.tasks import describe_instances

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"


def main(argv: list[str] | None = None) -> None:
    """Load the model, describe the instances, print JSON, save the marked image."""
    parser = argparse.ArgumentParser(description="Caption each marked instance of an image.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or checkpoint folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "4bit", "8bit", "none"],
        help="auto: 4-bit on CUDA; on a CPU float32, or what fits in memory",
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="auto: bfloat16 on recent GPUs, float32 on a CPU (or what fits in memory)",
    )
    parser.add_argument("--image", type=Path, help="image file (default: the bundled example)")
    parser.add_argument("--instances", type=Path, help="instances JSON (with --image)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("marked.png"), help="marked image")
    args = parser.parse_args(argv)
    if args.image is None:
        image, instances = example_image()
        image_path = "instit/assets/astronaut.jpg"
    else:
        if args.instances is None:
            parser.error("--image needs --instances (a JSON file of masks)")
        image = load_image(args.image)
        instances = Instances.coerce(json.loads(args.instances.read_text()), image_size=image.size)
        image_path = str(args.image)
    quantization = None if args.quantization == "none" else args.quantization
    model = InstIt.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, quantization=quantization
    )
    description = describe_instances(
        model, image, instances, max_new_tokens=args.max_new_tokens, progress=False
    )
    description.media.save(args.out)
    record = description.to_dataset_record(image_id=0, image_path=image_path)
    record["missing_ids"] = description.missing_ids
    record["extra_ids"] = description.extra_ids
    record["marked_image"] = str(args.out)
    print(json.dumps(record, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    hint = "pass --model PATH for a local checkpoint folder"
    sys.exit(run_script(main, "describe_image.py", checkpoint_hint=hint))
