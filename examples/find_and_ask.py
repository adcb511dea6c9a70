"""From a plain photo to a grounded answer: find the instances by words, mark them, ask.

    python examples/find_and_ask.py                                  # bundled photo, real models
    python examples/find_and_ask.py --image photo.jpg --text "a person. a dog." \\
        --question "What is [1] doing with [2]?" --out marked.png

Needs ``pip install 'instit[segment]'``.  Loads Grounding DINO (words -> boxes), SAM 2.1
(boxes -> masks) and an Inst-It model (the weights download on first use), draws the numbered
marks the model was trained on, asks the question and prints the instances and the answer as
JSON.  ``--segmenter``, ``--detector`` and ``--model`` take hub ids or local folders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from instit.marks import draw_marks
from instit.media import load_image
from instit.model import InstIt
from instit.segment import DEFAULT_DETECTOR, DEFAULT_SEGMENTER, Detector, Segmenter, find_instances
from instit.tasks import ask

DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"
PHOTO = Path(__file__).resolve().parents[1] / "src" / "instit" / "assets" / "astronaut.jpg"


def main(argv: list[str] | None = None) -> None:
    """Find, mark, ask; print JSON; save the marked image."""
    parser = argparse.ArgumentParser(description="Find instances by words, then ask about them.")
    parser.add_argument("--image", type=Path, default=PHOTO, help="image file")
    parser.add_argument("--text", default="a person. a flag.", help="what to find")
    parser.add_argument("--question", default="What is [1] doing?")
    parser.add_argument("--segmenter", default=DEFAULT_SEGMENTER)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Inst-It hub id or folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("marked.png"), help="marked image")
    args = parser.parse_args(argv)

    image = load_image(args.image)
    instances = find_instances(
        image,
        args.text,
        segmenter=Segmenter.from_pretrained(args.segmenter, device=args.device),
        detector=Detector.from_pretrained(args.detector, device=args.device),
    )
    marked = draw_marks(image, instances)
    marked.save(args.out)
    model = InstIt.from_pretrained(args.model, device=args.device)
    answer = ask(
        model,
        marked,
        args.question,
        instances=instances,
        marks="as_is",
        max_new_tokens=args.max_new_tokens,
    )
    found = [
        {"id": i.id, "label": i.label, "score": round(i.score or 0.0, 3), "box": list(i.box)}
        for i in instances
    ]
    summary = {"instances": found, "question": args.question, "answer": answer.text}
    print(json.dumps({**summary, "marked_image": str(args.out)}, indent=2))


if __name__ == "__main__":
    main()
