"""A tiny Inst-It Bench in the real on-disk layout, for tests, demos and dry runs.

Images and frames are small solid-colour PNGs whose colour encodes the question / frame index,
so a test model can prove it received the right media in the right order.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Literal

from instit._files import require_new_folder
from instit.bench.data import VIDEO_ARCHIVE
from instit.bench.protocol import CONFIGS
from instit.errors import DatasetError, DependencyError

LETTERS = "ABCD"


def frame_colour(video: int, t: int) -> tuple[int, int, int]:
    """The RGB colour of frame ``t`` (1-based) of synthetic video ``video``."""
    return (10 * t % 256, 40 + 20 * video % 200, 200)


def image_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of synthetic image ``index``."""
    return (200, 7 * index % 256, 30)


def _png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(config: str, count: int) -> list[dict[str, Any]]:
    split, fmt = CONFIGS[config]
    rows = []
    for i in range(count):
        qid = f"{i // 2 + 1:03d}-{i % 2 + 1:02d}"
        row: dict[str, Any] = {
            "question_id": qid,
            "question": f"What does [{i + 1}] do at <{i % 3 + 1}>? (q{i})",
        }
        if fmt == "mc":
            for c in "abcd":
                row[f"choice_{c}"] = f"[{i + 1}] option {c.upper()}"
            row["answer"] = LETTERS[i % 4]
        else:
            row["answer"] = f"[{i + 1}] waves at <{i % 3 + 1}>."
        if split == "video":
            row["video_path"] = f"videos_vpt/video_{i // 2:03d}"
        rows.append(row)
    return rows


def make_tiny_bench(
    root: str | os.PathLike[str],
    *,
    num_questions: int = 6,
    frames_per_video: int = 3,
    file_format: Literal["jsonl", "parquet"] = "jsonl",
    configs: tuple[str, ...] = tuple(CONFIGS),
) -> Path:
    """Write a small bench under ``root`` in the dataset repository's layout; returns ``root``.

    ``file_format="parquet"`` writes ``<config>/test-00000-of-00001.parquet`` with images as
    ``{"bytes", "path"}`` structs exactly as the hub copy (needs pyarrow); ``"jsonl"`` writes
    ``<config>/test.jsonl`` with image files beside it.  Videos go to ``videos_vpt.zip``.
    Two questions share each image / video, as in the real bench.  ``root`` must be new or
    empty (a real bench copy is never written into).
    """
    root = require_new_folder(root, "make_tiny_bench")
    root.mkdir(parents=True, exist_ok=True)
    video_folders: set[str] = set()
    for config in configs:
        if config not in CONFIGS:
            raise DatasetError(f"unknown bench config {config!r}: use one of {', '.join(CONFIGS)}")
        split, _ = CONFIGS[config]
        folder = root / config
        folder.mkdir(exist_ok=True)
        rows = _rows(config, num_questions)
        for i, row in enumerate(rows):
            if split == "image":
                data = _png(image_colour(i // 2))
                name = f"images/{row['question_id']}.png"
                if file_format == "parquet":
                    row["image"] = {"bytes": data, "path": name}
                else:
                    (folder / "images").mkdir(exist_ok=True)
                    (folder / name).write_bytes(data)
                    row["image"] = name
            else:
                video_folders.add(row["video_path"])
        if file_format == "parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError as exc:
                raise DependencyError(
                    "file_format='parquet' needs pyarrow: pip install pyarrow"
                ) from exc
            pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
        else:
            with open(folder / "test.jsonl", "w", encoding="utf-8") as out:
                for row in rows:
                    out.write(json.dumps(row) + "\n")
    if video_folders:
        with zipfile.ZipFile(root / VIDEO_ARCHIVE, "w") as zf:
            for video_path in sorted(video_folders):
                index = int(video_path.rsplit("_", 1)[1])
                zf.writestr(video_path + "/", "")
                # frame names sort correctly as strings (zero padded), like the real bench
                for t in range(1, frames_per_video + 1):
                    zf.writestr(f"{video_path}/{t:03d}.png", _png(frame_colour(index, t)))
    return root


def _describe(image: Any) -> str:
    r, g, b = image.convert("RGB").getpixel((0, 0))
    return f"{r}-{g}-{b}"


def media_model(media: Any, prompt: str) -> str:
    """A weightless, deterministic "model" for dry runs and tests.

    It answers with a letter chosen from the media's colours and reports what it saw
    (``Answer: B (frames 10-60-200 20-60-200)``), so a run exercises loading, prompting, sharding
    and scoring end to end without any weights.
    """
    frames = media if isinstance(media, list) else [media]
    seen = [_describe(frame) for frame in frames]
    letter = LETTERS[sum(sum(int(v) for v in s.split("-")) for s in seen) % 4]
    kind = "frames" if isinstance(media, list) else "image"
    return f"Answer: {letter} ({kind} {' '.join(seen)}; prompt {len(prompt)} chars)"
