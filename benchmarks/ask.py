"""Several questions about one image: one batched ``ask`` (image encoded once) vs one at a time.

    .venv/bin/python benchmarks/ask.py                  # small model, 8 questions, ~4 min
    .venv/bin/python benchmarks/ask.py --size tiny --questions 4 --new-tokens 8

Loads a random model (``--size``: ``small`` = Qwen2 256-wide x 4 layers with a 192-wide x 4-layer
SigLIP-384 tower, or ``tiny``; both with the real 152k vocabulary, tokenizer and visual geometry,
written by ``load.py``'s :func:`write_checkpoints`) on the CPU and asks ``--questions``
questions about the bundled example image with its instances (marks drawn by instit), every
answer running to ``--new-tokens`` tokens (the random model never picks the end token).

Ways, each timed end to end (median of ``--repeats``) with the vision-tower forward calls and
the 384-px tiles they encoded counted by a hook on the tower:

* ``ask x N``: ``model.ask(image, q, instances=...)`` once per question (the baseline);
* ``encode once, generate x N``: ``model.encode_media`` once, then ``model.generate`` one
  question at a time (no batching);
* ``ask_many, N copies``: ``instit.ask_many`` over N *different* copies of the image (batched
  generation, but every copy marked and encoded);
* ``ask([q1..qN])``: ``model.ask(image, [questions], instances=...)`` (one mark drawing, one
  encoding, one batched generation);
* ``ask([q1..qN]), token bar``: the same with ``progress=True``, the default (the cost of the
  tqdm bar that counts tokens, on stderr);
* ``ask_many, same image``: ``instit.ask_many(model, [image] * N, ...)`` (same).

A last line splits one question's time into drawing the marks, encoding the image and
generating (prefill of the whole prompt, then decoding).

``same answers`` counts answers identical to the baseline's (greedy decoding; batched rows are
left-padded, so float rounding may flip a near-tie of the random model).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package
from load import ARCHITECTURES, write_checkpoints

QUESTIONS = [
    "What is [1] doing?",
    "Describe [2] in detail.",
    "What colour is [3]?",
    "Where is [4] relative to [1]?",
    "Is [2] touching [3]?",
    "What is the largest object in the image?",
    "How many people are there?",
    "What is [1] holding in the left hand?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-load-bench",
        help="folder for the generated checkpoint (shared with load.py)",
    )
    args = parser.parse_args()

    import torch

    from instit import InstIt, draw_marks, example_image
    from instit.tasks import ask_many

    torch.manual_seed(0)
    paths = write_checkpoints(args.cache / args.size, ARCHITECTURES[args.size])
    model = InstIt.from_pretrained(paths["original"], device="cpu", progress=False)
    image, instances = example_image()
    questions = (QUESTIONS * (args.questions // len(QUESTIONS) + 1))[: args.questions]
    count = len(questions)
    tokens = args.new_tokens
    counts: Counter[str] = Counter()

    def count_tower(module: Any, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pixels = inputs[0] if inputs else kwargs["pixel_values"]
        counts["calls"] += 1
        counts["tiles"] += int(pixels.shape[0])

    model.module.model.vision_tower.register_forward_pre_hook(count_tower, with_kwargs=True)

    def one_at_a_time() -> list[str]:
        return [
            model.ask(image, q, instances=instances, max_new_tokens=tokens, progress=False).text
            for q in questions
        ]

    def encode_once() -> list[str]:
        encoded = model.encode_media(draw_marks(image, instances))
        return [model.generate([encoded], [q], max_new_tokens=tokens)[0] for q in questions]

    def copies() -> list[str]:
        media = [image.copy() for _ in questions]
        answers = ask_many(
            model,
            media,
            questions,
            instances=[instances] * count,
            max_new_tokens=tokens,
            progress=False,
        )
        return [a.text for a in answers]

    def batched(progress: bool = False) -> list[str]:
        answers = model.ask(
            image, questions, instances=instances, max_new_tokens=tokens, progress=progress
        )
        return [a.text for a in answers]

    def many_same() -> list[str]:
        answers = ask_many(
            model,
            [image] * count,
            questions,
            instances=[instances] * count,
            max_new_tokens=tokens,
            progress=False,
        )
        return [a.text for a in answers]

    ways: list[tuple[str, Callable[[], list[str]]]] = [
        (f"ask x {count}", one_at_a_time),
        (f"encode once, generate x {count}", encode_once),
        (f"ask_many, {count} copies", copies),
        (f"ask([q1..q{count}])", batched),
        (f"ask([q1..q{count}]), token bar", lambda: batched(progress=True)),
        ("ask_many, same image", many_same),
    ]
    encoded = model.encode_media(draw_marks(image, instances))
    print(
        f"{args.size} model on CPU ({torch.get_num_threads()} threads), {count} questions about "
        f"one {image.size[0]}x{image.size[1]} image ({encoded.num_tokens} visual tokens), "
        f"{tokens} new tokens each, median of {args.repeats}"
    )
    header = (
        f"{'way':<30} {'tower calls':>11} {'tiles':>6} {'seconds':>8} {'answers/s':>9} "
        f"{'tokens/s':>8} {'speed-up':>8} {'same answers':>12}"
    )
    print(header)
    print("-" * len(header))
    baseline_answers: list[str] | None = None
    baseline_seconds = 0.0
    for label, run in ways:
        run()  # warm-up
        times = []
        for _ in range(args.repeats):
            counts.clear()
            start = time.perf_counter()
            answers = run()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        if baseline_answers is None:
            baseline_answers, baseline_seconds = answers, seconds
        same = sum(a == b for a, b in zip(answers, baseline_answers, strict=True))
        print(
            f"{label:<30} {counts['calls']:>11} {counts['tiles']:>6} {seconds:>8.2f} "
            f"{count / seconds:>9.2f} {count * tokens / seconds:>8.1f} "
            f"{baseline_seconds / seconds:>7.2f}x {same:>8}/{count}"
        )

    def median_s(function: Callable[[], Any]) -> float:
        function()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    question = questions[0]
    parts = {
        "draw marks": median_s(lambda: draw_marks(image, instances)),
        "encode (preprocess + tower + projector)": median_s(
            lambda: model.encode_media(draw_marks(image, instances))
        ),
        "generate 1 token (prefill)": median_s(
            lambda: model.generate([encoded], [question], max_new_tokens=1)
        ),
        f"generate {tokens} tokens": median_s(
            lambda: model.generate([encoded], [question], max_new_tokens=tokens)
        ),
    }
    print("one question, split: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))


if __name__ == "__main__":
    main()
