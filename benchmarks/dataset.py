"""Reading an Inst-It Dataset file: instit's streaming readers against ``json.load``.

    .venv/bin/python benchmarks/dataset.py [--videos 4000] [--images 20000] [--repeats 3]

Writes synthetic ``inst_it_dataset_video_21k.json`` / ``..._image_51k.json`` look-alikes (the
real schema, realistic caption lengths: 8 frames of 4 instances and 15 QA pairs per video) to
a temporary folder, then measures, per file: the median wall time to read every record and the
peak Python memory (``tracemalloc``, a separate pass) of

- ``json.load`` (the whole list at once; what the authors' scripts do),
- ``iter_json_array`` (raw dicts, streamed),
- ``read_video_records`` / ``read_image_records`` (streamed, validated, typed),
- ``convert_to_llava`` (stream, validate, convert, write JSONL).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from instit.dataset import (
    convert_to_llava,
    iter_json_array,
    read_image_records,
    read_video_records,
)


def video(i: int) -> dict:
    return {
        "video_id": i,
        "frame_level_caption": [
            {
                "timestamp": t,
                "frame_name": f"{t:03d}.jpg",
                "instance_level": {str(k): f"[{k}] a person in a coat " * 6 for k in range(1, 5)},
                "image_level": "A street: [1] walks past [2] near [3]. " * 8,
                "temporal_change": "" if t == 1 else f"[1] moves left since <{t - 1}>. " * 4,
            }
            for t in range(1, 9)
        ],
        "question_answer_pairs": [
            {"question": f"What does [{k % 4 + 1}] do at <{k % 8 + 1}>?", "answer": "It waves."}
            for k in range(15)
        ],
        "video_level_caption": "[1] and [2] cross the street <1>-<8>. " * 12,
        "video_path": f"videos/{i}",
    }


def image(i: int) -> dict:
    return {
        "image_id": i,
        "instance_level_caption": {str(k): f"[{k}] a red kite " * 8 for k in range(1, 6)},
        "image_level_caption": "A park where [1] flies [3] next to [2]. " * 8,
        "image_path": f"images/{i}.jpg",
    }


def write(path: Path, make: Callable[[int], dict], count: int) -> Path:
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        for i in range(count):
            out.write((",\n" if i else "") + json.dumps(make(i), indent=1))
        out.write("]")
    return path


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4000)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {
            "video": (write(folder / "videos.json", video, args.videos), read_video_records),
            "image": (write(folder / "images.json", image, args.images), read_image_records),
        }
        print(f"median of {args.repeats} runs; peak = tracemalloc peak of one more run")
        header = f"{'file':<6} {'reader':<20} {'s':>6} {'MB/s':>6} {'peak MB':>8}"
        print(f"{header} {'vs json.load':>26}")
        for kind, (path, typed) in files.items():
            size = path.stat().st_size
            print(f"-- {kind} file: {size / 1e6:.0f} MB")
            out = folder / f"{kind}.jsonl"

            def convert(src: Path = path, dst: Path = out) -> object:
                return convert_to_llava(src, dst, overwrite=True, progress=False)

            cases: dict[str, Callable[[], object]] = {
                "json.load": lambda p=path: json.loads(p.read_text(encoding="utf-8")),
                "iter_json_array": lambda p=path: sum(1 for _ in iter_json_array(p)),
                f"read_{kind}_records": lambda p=path, f=typed: sum(1 for _ in f(p)),
                "convert_to_llava": convert,
            }
            base_time, base_peak = measure(cases["json.load"], args.repeats)
            for name, fn in cases.items():
                seconds, peak = (
                    (base_time, base_peak) if name == "json.load" else measure(fn, args.repeats)
                )
                ratio = f"{seconds / base_time:.2f}x time, {base_peak / peak:.0f}x less mem"
                print(
                    f"{kind:<6} {name:<20} {seconds:>6.2f} {size / 1e6 / seconds:>6.0f} "
                    f"{peak / 1e6:>8.2f} {ratio:>26}"
                )


if __name__ == "__main__":
    main()
