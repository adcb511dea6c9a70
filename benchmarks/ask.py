"""Many questions about one image or video: the KV prefix cache vs today's paths, one run.

    .venv/bin/python benchmarks/ask.py                   # prefill model, ~15 min on 2 cores
    .venv/bin/python benchmarks/ask.py --size tiny --questions 4 --new-tokens 4 --frames 3

Loads a random model (``--size``: ``prefill`` = Qwen2 512-wide x 8 layers, large enough that
a prompt's prefill dominates its new tokens; ``small`` = 256 x 4; ``tiny``; all with a SigLIP-384
tower, the real 152k vocabulary, tokenizer and visual geometry, written by ``load.py``) on the
CPU.  Every answer runs to ``--new-tokens`` tokens (the random model never picks the end token).

Sections, each timed end to end (median of ``--repeats``; the ``x 32`` rows once):

* **image**: ``--questions`` (default 8 and 32) questions about the bundled 512x512 example
  image with its instances (marks drawn): ``ask`` once per question (the baseline), today's
  ``ask(image, [questions])`` (media encoded once, every question prefilled in full: the model
  wrapped so that ``generate(..., prefix_cache=False)``), and ``ask(image, [questions])`` with
  the prefix cache (head + image prefilled once, each question's suffix batched on it);
* **video**: the same for an ``--frames``-frame 384x384 clip;
* **describe**: ``describe_instances`` on that clip with 4 tracks, today's path vs the cache;
* **bench**: ``run_bench`` on a synthetic image bench, 3 anyres images x 4 questions,
  ``batch_size=4``, today's path vs the cache.

``same`` counts answers identical to the first row's (greedy decoding).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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


class TodaysPath:
    """The model as the code before the prefix cache ran it: ``generate`` without the cache."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def generate(self, media: list[Any], prompts: list[str], **kwargs: Any) -> list[str]:
        return self.model.generate(media, prompts, prefix_cache=False, **kwargs)

    def stream(self, media: Any, prompt: str, **kwargs: Any) -> Any:
        return self.model.stream(media, prompt, **kwargs)

    def encode_media(self, media: Any) -> Any:
        return self.model.encode_media(media)


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds over ``repeats`` runs (after a warm-up when ``repeats > 1``), last result."""
    if repeats > 1:
        function()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def table(title: str, rows: Sequence[tuple[str, Callable[[], list[str]]]], repeats: int) -> None:
    """Time each way; print seconds, speed-up over the first and answers equal to the first's."""
    print(f"\n{title}")
    header = f"{'way':<44} {'seconds':>8} {'speed-up':>8} {'same':>9}"
    print(header + "\n" + "-" * len(header))
    base_seconds, base_answers = 0.0, None
    for label, run in rows:
        seconds, answers = timed(run, repeats)
        if base_answers is None:
            base_seconds, base_answers = seconds, answers
        same = sum(a == b for a, b in zip(answers, base_answers, strict=True))
        print(
            f"{label:<44} {seconds:>8.2f} {base_seconds / seconds:>7.2f}x "
            f"{same:>4}/{len(base_answers)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "small", "prefill"], default="prefill")
    parser.add_argument("--questions", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-load-bench",
        help="folder for the generated checkpoint (shared with load.py)",
    )
    args = parser.parse_args()

    import io
    import json

    import numpy as np
    import torch
    from PIL import Image

    from instit import Instances, InstIt, Tracks, example_image
    from instit.bench.data import BenchQuestion
    from instit.bench.run import run_bench
    from instit.tasks import ask, describe_instances

    torch.manual_seed(0)
    paths = write_checkpoints(args.cache / args.size, ARCHITECTURES[args.size])
    model = InstIt.from_pretrained(paths["original"], device="cpu", progress=False)
    today = TodaysPath(model)
    tokens = args.new_tokens
    image, instances = example_image()
    encoded = model.encode_media(image)
    print(
        f"{args.size} model on CPU ({torch.get_num_threads()} threads), {tokens} new tokens per "
        f"answer, median of {args.repeats}; image {image.size[0]}x{image.size[1]} = "
        f"{encoded.num_tokens} visual tokens"
    )

    model.generate([encoded, encoded], QUESTIONS[:2], max_new_tokens=2)  # warm-up, both paths
    today.generate([encoded, encoded], QUESTIONS[:2], max_new_tokens=2)

    def questions_about(count: int) -> list[str]:
        return (QUESTIONS * (count // len(QUESTIONS) + 1))[:count]

    def asking(who: Any, media: Any, qs: list[str], marks: Any) -> list[str]:
        return [a.text for a in ask(who, media, qs, instances=marks, max_new_tokens=tokens)]

    def one_by_one(media: Any, qs: list[str], marks: Any) -> list[str]:
        return [ask(model, media, q, instances=marks, max_new_tokens=tokens).text for q in qs]

    def compare(title: str, media: Any, marks: Any, count: int) -> None:
        qs = questions_about(count)
        repeats = 1 if count > 8 else args.repeats
        table(
            title,
            [
                (f"ask x {count} (one question at a time)", lambda: one_by_one(media, qs, marks)),
                (f"ask([q1..q{count}]), no prefix cache", lambda: asking(today, media, qs, marks)),
                (f"ask([q1..q{count}]), prefix cache", lambda: asking(model, media, qs, marks)),
            ],
            repeats,
        )

    for count in args.questions:
        compare(f"image: {count} questions", image, instances, count)

    rng = np.random.default_rng(0)
    frames = [
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).resize((384, 384))
        for _ in range(args.frames)
    ]
    video_tokens = model.encode_media(frames).num_tokens
    compare(
        f"video: {args.frames} frames ({video_tokens} visual tokens), 8 questions", frames, None, 8
    )

    boxes = Instances.from_boxes(
        [(40 * i, 30 * i, 40 * i + 120, 30 * i + 160) for i in range(1, 5)],
        [1, 2, 3, 4],
        image_size=(384, 384),
    )
    tracks = Tracks({t: boxes for t in range(args.frames)})

    def describing(who: Any) -> list[str]:
        out = describe_instances(who, frames, tracks, max_new_tokens=tokens, progress=False)
        return [out.to_json()]

    table(
        f"describe_instances: {args.frames} frames, 4 tracks",
        [
            ("no prefix cache", lambda: describing(today)),
            ("prefix cache", lambda: describing(model)),
        ],
        1,
    )

    def png() -> bytes:
        picture = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        picture.resize((640, 480)).save(buffer, format="PNG")
        return buffer.getvalue()

    pictures = [png() for _ in range(3)]
    bench = [
        BenchQuestion(f"{n:03d}-{k:02d}", QUESTIONS[k], "", "image", "oe", image_bytes=data)
        for n, data in enumerate(pictures)
        for k in range(4)
    ]

    def benching(who: Any) -> list[str]:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "predictions.json"
            run_bench(who, bench, out, batch_size=4, max_new_tokens=tokens, progress=False)
            return [r["model_prediction"] for r in json.loads(out.read_text())]

    table(
        f"bench run: {len(pictures)} images x 4 questions, batch_size 4",
        [("no prefix cache", lambda: benching(today)), ("prefix cache", lambda: benching(model))],
        1,
    )


if __name__ == "__main__":
    main()
