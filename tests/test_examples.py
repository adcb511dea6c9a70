"""Run every script in ``examples/`` as a user would (a subprocess), on tiny random checkpoints.

A script added to ``examples/`` without an entry in ``RUNS`` fails ``test_every_example_is_run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
ASSETS = REPO / "src" / "instit" / "assets"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from instit.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-qwen2", "qwen2-siglip")


def _start(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _run(script: str, *args: str, cwd: Path) -> str:
    done = _start(script, *args, cwd=cwd)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _check_mark_image(tmp_path: Path, model: Path | None) -> None:
    out = json.loads(_run("mark_image.py", "--out", "m.png", cwd=tmp_path))
    assert out == {"ids": [1, 2, 3, 4], "size": [512, 512], "out": "m.png"}
    marked = np.asarray(Image.open(tmp_path / "m.png"))
    original = np.asarray(Image.open(ASSETS / "astronaut.jpg").convert("RGB"))
    assert marked.shape == original.shape and (marked != original).any(axis=2).mean() > 0.005


def _check_make_example_assets(tmp_path: Path, model: Path | None) -> None:
    _run(
        "make_example_assets.py",
        "--source",
        str(ASSETS / "astronaut.jpg"),
        "--out",
        ".",
        cwd=tmp_path,
    )
    rebuilt = json.loads((tmp_path / "astronaut_instances.json").read_text())
    assert rebuilt == json.loads((ASSETS / "astronaut_instances.json").read_text())


def _check_describe_image(tmp_path: Path, model: Path | None) -> None:
    assert model is not None
    args = ["--model", str(model), "--device", "cpu", "--max-new-tokens", "6", "--out", "d.png"]
    # the README's command for a 16 GB machine without CUDA
    args += ["--quantization", "4bit", "--dtype", "bfloat16"]
    record = json.loads(_run("describe_image.py", *args, cwd=tmp_path))
    assert list(record)[:4] == [
        "image_id",
        "instance_level_caption",
        "image_level_caption",
        "image_path",
    ]
    assert isinstance(record["image_level_caption"], str)
    captions = record["instance_level_caption"]
    assert set(captions) | {str(i) for i in record["missing_ids"]} == {"1", "2", "3", "4"}
    assert all(isinstance(c, str) and c for c in captions.values())
    assert Image.open(tmp_path / "d.png").size == (512, 512)


def _check_ask_video(tmp_path: Path, model: Path | None) -> None:
    assert model is not None
    args = ["--model", str(model), "--device", "cpu", "--max-new-tokens", "6", "--out", "f"]
    answer = json.loads(_run("ask_video.py", *args, cwd=tmp_path))
    assert answer["question"].startswith("Which instances")
    assert isinstance(answer["text"], str)
    assert answer["frame_seconds"] == [t / 4 for t in range(8)]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        f"frame_{t}.png" for t in range(1, 9)
    ]


def _check_bench_your_model(tmp_path: Path, model: Path | None) -> None:
    assert model is not None
    printed = _run("bench_your_model.py", "--demo", "--no-progress", cwd=tmp_path)
    assert "acc %" in printed
    scores = json.loads((tmp_path / "bench_out" / "scores.json").read_text())
    for config, split in [("image_multi_choice", "image"), ("video_multi_choice", "video")]:
        assert scores[config]["total_num"] == 6
        predictions = json.loads(
            (tmp_path / "bench_out" / f"{split}_mc_inference.json").read_text()
        )
        assert sorted(p["question_id"] for p in predictions) == sorted(
            {p["question_id"] for p in predictions}
        )
        assert len(predictions) == 6
    # an Inst-It checkpoint through the same script, into another folder
    args = ["--demo", "--no-progress", "--model", str(model), "--device", "cpu", "--out", "ck"]
    args += ["--max-new-tokens", "4"]
    _run("bench_your_model.py", *args, cwd=tmp_path)
    assert len(json.loads((tmp_path / "ck" / "video_mc_inference.json").read_text())) == 6


def _check_finetune_on_your_instances(tmp_path: Path, model: Path | None) -> None:
    assert model is not None
    args = ["--model", str(model), "--steps", "12", "--learning-rate", "1e-2", "--no-progress"]
    report = json.loads(_run("finetune_on_your_instances.py", *args, "--out", "a", cwd=tmp_path))
    assert report["steps"] == 12 and report["losses"][-1] < report["losses"][0]
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()
    assert report["before"] != report["target"]


def _check_find_and_ask(tmp_path: Path, model: Path | None) -> None:
    from instit.testing import make_tiny_detector, make_tiny_segmenter

    assert model is not None
    segmenter = make_tiny_segmenter(tmp_path / "sam")
    detector = make_tiny_detector(tmp_path / "gdino")
    args = ["--segmenter", str(segmenter), "--detector", str(detector), "--model", str(model)]
    args += ["--device", "cpu", "--max-new-tokens", "4", "--out", "m.png"]
    printed = json.loads(_run("find_and_ask.py", *args, cwd=tmp_path))
    assert printed["question"] == "What is [1] doing?" and isinstance(printed["answer"], str)
    ids = [item["id"] for item in printed["instances"]]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 1
    assert all(isinstance(item["label"], str) for item in printed["instances"])
    marked = np.asarray(Image.open(tmp_path / "m.png"))
    original = np.asarray(Image.open(ASSETS / "astronaut.jpg").convert("RGB"))
    assert marked.shape == original.shape and (marked != original).any()


RUNS: dict[str, tuple[Callable[[Path, Any], None], bool]] = {
    # script: (check, needs the tiny model)
    "mark_image.py": (_check_mark_image, False),
    "make_example_assets.py": (_check_make_example_assets, False),
    "describe_image.py": (_check_describe_image, True),
    "ask_video.py": (_check_ask_video, True),
    "bench_your_model.py": (_check_bench_your_model, True),
    "finetune_on_your_instances.py": (_check_finetune_on_your_instances, True),
    "find_and_ask.py": (_check_find_and_ask, True),
}


def test_every_example_is_run() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs(script: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    check, needs_model = RUNS[script]
    model = request.getfixturevalue("tiny_model") if needs_model else None
    check(tmp_path, model)


@pytest.mark.parametrize(
    ("script", "args", "option"),
    [
        ("describe_image.py", ["--model", "Inst-IT/no-such-model"], "--model PATH"),
        ("ask_video.py", ["--model", "Inst-IT/no-such-model"], "--model PATH"),
        ("finetune_on_your_instances.py", ["--model", "Inst-IT/no-such-model"], "--model PATH"),
        ("bench_your_model.py", ["--demo", "--model", "Inst-IT/no-such"], "--model PATH"),
    ],
)
def test_examples_end_offline_failures_in_one_line(
    script: str, args: list[str], option: str, tmp_path: Path
) -> None:
    done = _start(script, *args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()  # no traceback
    assert line.startswith(f"{script}: failed: could not get checkpoint 'Inst-IT/no-such")
    assert line.endswith(f"pass {option} for a local checkpoint folder")
    assert done.stdout == ""


def test_examples_bad_input_exits_2(tmp_path: Path) -> None:
    args = ["--image", str(tmp_path / "missing.png"), "--instances", "i.json"]
    done = _start("mark_image.py", *args, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mark_image.py: error:")
