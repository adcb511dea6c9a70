"""``instit segment``, ``instit track`` and ``--text`` on mark / ask / describe (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instit.cli import EXIT_OK, EXIT_USAGE, build_parser, main
from instit.instances import Instances, Tracks
from instit.segment import Detector, Segmenter
from instit.testing import make_tiny_checkpoint, make_tiny_detector, make_tiny_segmenter


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "sam": make_tiny_segmenter(root / "sam"),
        "gd": make_tiny_detector(root / "gd"),
        "instit": make_tiny_checkpoint(root / "instit", "qwen2-siglip"),
    }


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


def _frames(folder: Path, count: int) -> Path:
    folder.mkdir()
    for t in range(count):
        pixels = np.full((90, 120, 3), 30, dtype=np.uint8)
        pixels[20:50, 10 + 6 * t : 40 + 6 * t] = (230, 200, 40)
        Image.fromarray(pixels).save(folder / f"frame_{t}.png")
    return folder


@pytest.mark.parametrize("verb", ["segment", "track"])
def test_verbs_have_help_with_examples_and_json(verb: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        main([verb, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"instit {verb}" in text
    sub = build_parser()._subparsers._group_actions[0].choices[verb]  # type: ignore[union-attr]
    assert "--json" in sub._option_string_actions


def test_segment_boxes_writes_the_segmenters_instances(models, photo: Path, tmp_path: Path):
    out = tmp_path / "instances.json"
    boxes = "[[10, 10, 60, 50], [30, 20, 110, 85]]"
    args = ["segment", str(photo), "--boxes", boxes, "--model", str(models["sam"])]
    assert main([*args, "--device", "cpu", "-o", str(out)]) == EXIT_OK
    written = Instances.from_json(out.read_text())
    expected = Segmenter.from_pretrained(models["sam"], device="cpu").segment(
        photo, boxes=json.loads(boxes)
    )
    assert written == expected
    assert main([*args, "-o", str(out)]) == EXIT_USAGE  # no silent overwrite
    assert Instances.from_json(out.read_text()) == expected
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(boxes)
    again = tmp_path / "again.json"
    args = ["segment", str(photo), "--boxes", str(boxes_file), "--model", str(models["sam"])]
    assert main([*args, "--device", "cpu", "-o", str(again)]) == EXIT_OK
    assert Instances.from_json(again.read_text()) == expected


def test_segment_boxes_reads_long_lists_and_refuses_bad_json_in_one_line(
    models, photo: Path, tmp_path: Path, capsys
):
    """--boxes takes an inline list longer than a file name may be (30 boxes), and bad JSON
    (inline or in a file: not UTF-8, nested too deeply, a number of 5000 digits) is a usage
    error naming --boxes, not a traceback."""
    boxes = [[10 + i, 10, 60 + i, 50] for i in range(30)]
    inline = json.dumps(boxes)
    assert len(inline) > 255
    out = tmp_path / "long.json"
    args = ["segment", str(photo), "--boxes", inline, "--model", str(models["sam"])]
    assert main([*args, "--device", "cpu", "-o", str(out)]) == EXIT_OK
    expected = Segmenter.from_pretrained(models["sam"], device="cpu").segment(photo, boxes=boxes)
    assert Instances.from_json(out.read_text()) == expected
    capsys.readouterr()
    not_utf8 = tmp_path / "latin1.json"
    not_utf8.write_bytes(b"[[10, 10, 60, 50]] \xff")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    for value, reason in [
        (str(not_utf8), "not UTF-8"),
        (str(deep), "nested too deeply"),
        ("[" + "1" * 5000 + "]", "digits"),
    ]:
        target = tmp_path / "never.json"
        assert main(["segment", str(photo), "--boxes", value, "-o", str(target)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "--boxes" in err and reason in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and not target.exists()


def test_segment_text_and_everything(models, photo: Path, tmp_path: Path, capsys):
    out = tmp_path / "found.json"
    args = ["segment", str(photo), "--text", "a person. a ball.", "--model", str(models["sam"])]
    args += ["--detector", str(models["gd"]), "--device", "cpu", "-o", str(out), "--json"]
    assert main(args) == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    found = Instances.from_json(out.read_text())
    boxes = Detector.from_pretrained(models["gd"], device="cpu").detect(photo, "a person. a ball.")
    assert printed["ids"] == list(found.ids) and found.labels is not None
    assert set(found.ids) <= set(boxes.ids) and found.kind == "mask"
    everything = tmp_path / "everything.json"
    args = ["segment", str(photo), "--model", str(models["sam"]), "--device", "cpu"]
    args += ["--points-per-side", "4", "--min-area", "1", "-o", str(everything)]
    assert main(args) == EXIT_OK
    assert Instances.from_json(everything.read_text()).kind == "mask"
    both = ["segment", str(photo), "--boxes", "[[1, 1, 9, 9]]", "--text", "a cat"]
    assert main([*both, "-o", str(tmp_path / "x.json")]) == EXIT_USAGE
    bad = ["segment", str(photo), "--boxes", "[[1, 1", "-o", str(tmp_path / "y.json")]
    assert main(bad) == EXIT_USAGE
    assert "is not valid JSON" in capsys.readouterr().err


def test_track_writes_tracks_keyed_by_source_frame(models, tmp_path: Path, capsys):
    folder = _frames(tmp_path / "frames", 5)
    segmenter = Segmenter.from_pretrained(models["sam"], device="cpu")
    given = segmenter.segment(folder / "frame_1.png", boxes=[[16, 20, 46, 50]], ids=[4])
    instances = tmp_path / "instances.json"
    instances.write_text(given.to_json())
    out = tmp_path / "tracks.json"
    args = ["track", str(folder), "--instances", str(instances), "--frame", "1"]
    args += ["--model", str(models["sam"]), "--device", "cpu", "--quiet", "-o", str(out), "--json"]
    assert main(args) == EXIT_OK
    tracks = Tracks.from_json(out.read_text())
    assert json.loads(capsys.readouterr().out)["ids"] == list(tracks.ids)
    frames = [Image.open(folder / f"frame_{t}.png") for t in range(5)]
    assert tracks == segmenter.track(frames, given, frame=1, progress=False)
    tracks_file = tmp_path / "t2.json"
    bad = ["track", str(folder), "--instances", str(out), "-o", str(tracks_file)]
    assert main(bad) == EXIT_USAGE  # tracks are not the instances of one frame


def test_mark_ask_and_describe_accept_text(models, photo: Path, tmp_path: Path, capsys):
    finders = ["--text", "a person. a ball.", "--segmenter", str(models["sam"])]
    finders += ["--detector", str(models["gd"]), "--device", "cpu"]
    marked = tmp_path / "marked.png"
    assert main(["mark", str(photo), *finders, "-o", str(marked)]) == EXIT_OK
    assert Image.open(marked).size == (120, 90)
    assert main(["mark", str(photo), "-o", str(tmp_path / "m2.png")]) == EXIT_USAGE
    capsys.readouterr()
    model = ["--model", str(models["instit"]), "--max-new-tokens", "3", "--json"]
    assert main(["ask", str(photo), "What is [1] doing?", *finders, *model]) == EXIT_OK
    answer = json.loads(capsys.readouterr().out)
    assert isinstance(answer["text"], str)
    assert main(["describe", str(photo), *finders, *model, "--quiet"]) == EXIT_OK
    assert isinstance(json.loads(capsys.readouterr().out), dict)
    both = ["ask", str(photo), "q", *finders, "--instances", str(marked), *model]
    assert main(both) == EXIT_USAGE


def test_segment_text_with_a_sam3_detector_writes_its_masks(models, photo: Path, tmp_path: Path):
    sam3 = make_tiny_detector(tmp_path / "sam3", "sam3")
    unused = tmp_path / "not-a-checkpoint"  # SAM 3 gives masks: the segmenter is never loaded
    unused.mkdir()
    out = tmp_path / "found.json"
    args = ["segment", str(photo), "--text", "a person. a ball.", "--detector", str(sam3)]
    args += ["--box-threshold", "0.25", "--model", str(unused), "--device", "cpu"]
    assert main([*args, "-o", str(out)]) == EXIT_OK
    found = Instances.from_json(out.read_text())
    expected = Detector.from_pretrained(sam3, device="cpu").detect(
        photo, "a person. a ball.", box_threshold=0.25
    )
    assert found == expected and found.kind == "mask" and len(found) >= 1
    finders = ["--text", "a person", "--detector", str(sam3), "--segmenter", str(unused)]
    marked = tmp_path / "marked.png"
    assert main(["mark", str(photo), *finders, "--device", "cpu", "-o", str(marked)]) == EXIT_OK
    assert Image.open(marked).size == (120, 90)
