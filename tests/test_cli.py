"""The ``instit`` command: every verb run for real (tiny checkpoints, encoded clips, real files).

Verbs run in-process through :func:`instit.cli.main` (exit code, stdout JSON, files written);
the installed console script is run once as a subprocess.  ``bench`` and ``dataset`` verbs have
their own tests (``test_bench_*.py``, ``test_dataset.py``); here they only have to be wired in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import torch
from PIL import Image

from instit.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, build_parser, main
from instit.examples_data import example_image
from instit.instances import Instances, Tracks, encode_rle
from instit.marks import draw_marks
from instit.video import load_video, uniform_positions
from lock_holder import lock_held_elsewhere
from video_clips import frame_code, write_clip

VERBS = ["mark", "frames", "ask", "describe", "convert", "bench run", "bench score"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from instit.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "qwen2-siglip")


@pytest.fixture
def example_files(tmp_path: Path) -> tuple[Path, Path, Instances]:
    image, instances = example_image()
    image_path = tmp_path / "photo.png"
    image.save(image_path)
    instances_path = tmp_path / "instances.json"
    instances_path.write_text(instances.to_json())
    return image_path, instances_path, instances


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 30, rate=10)


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("verb", [*VERBS, "dataset to-llava"])
def test_every_verb_has_help_with_examples(verb: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        main([*verb.split(), "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"instit {verb.split()[0]}" in text


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_offers_json_output(verb: str):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[verb.split()[0]]  # type: ignore[union-attr]
    if " " in verb:
        sub = sub._subparsers._group_actions[0].choices[verb.split()[1]]  # type: ignore[union-attr]
    assert "--json" in sub._option_string_actions


def test_console_script_is_installed(clip: Path):
    script = Path(sys.executable).with_name("instit")
    done = subprocess.run(
        [str(script), "frames", str(clip), "--num-frames", "4", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["indices"] == list(uniform_positions(30, 4))


def test_mark_image_writes_the_marks_and_their_placements(
    example_files: tuple[Path, Path, Instances], tmp_path: Path, capsys
):
    image_path, instances_path, instances = example_files
    out = tmp_path / "marked.png"
    code = main(["mark", str(image_path), "--instances", str(instances_path), "-o", str(out)])
    assert code == EXIT_OK
    assert "4 marks" in capsys.readouterr().out
    marked = np.asarray(Image.open(out).convert("RGB"))
    original = np.asarray(Image.open(image_path).convert("RGB"))
    assert marked.shape == original.shape and (marked != original).any()

    again = tmp_path / "filled.png"
    code = main(
        [
            "mark",
            str(image_path),
            "--instances",
            str(instances_path),
            "-o",
            str(again),
            "--mask",
            "fill",
            "--labels",
            "alpha",
            "--json",
        ]
    )
    payload = _json_out(capsys)
    assert code == EXIT_OK and payload["output"] == str(again)
    assert sorted(payload["placements"]) == [str(i) for i in instances.ids]
    for placement in payload["placements"].values():
        x0, y0, x1, y1 = placement["box"]
        assert 0 <= x0 < x1 <= marked.shape[1] and 0 <= y0 < y1 <= marked.shape[0]
    filled = np.asarray(Image.open(again).convert("RGB"))
    assert (filled != marked).any()  # the fill option took effect


def test_mark_refuses_to_overwrite_without_the_flag(
    example_files: tuple[Path, Path, Instances], tmp_path: Path, capsys
):
    image_path, instances_path, _ = example_files
    out = tmp_path / "mine.png"
    out.write_bytes(b"the user's own file")
    args = ["mark", str(image_path), "--instances", str(instances_path), "-o", str(out)]
    assert main(args) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's own file"
    assert main([*args, "--overwrite"]) == EXIT_OK
    assert Image.open(out).size == Image.open(image_path).size


def test_mark_video_draws_tracks_of_the_sampled_source_frames(clip: Path, tmp_path: Path, capsys):
    size = (160, 120)
    box = Instances.from_boxes([[10, 10, 60, 60]], ids=[7], image_size=size)
    tracks = Tracks({k: box for k in range(0, 30, 2)}, image_size=size)  # even frames only
    tracks_path = tmp_path / "tracks.json"
    tracks_path.write_text(tracks.to_json())
    out = tmp_path / "marked"
    code = main(
        [
            "mark",
            str(clip),
            "--instances",
            str(tracks_path),
            "--num-frames",
            "4",
            "-o",
            str(out),
            "--mask",
            "box",
            "--json",
        ]
    )
    payload = _json_out(capsys)
    assert code == EXIT_OK and payload["indices"] == list(uniform_positions(30, 4))
    files = [Path(f) for f in payload["files"]]
    assert [f.name for f in files] == [f"frame_{t}.png" for t in range(1, 5)]
    plain = load_video(clip, num_frames=4)
    for index, file, raw in zip(payload["indices"], files, plain.frames, strict=True):
        changed = np.asarray(Image.open(file).convert("RGB")) != np.asarray(raw)
        assert changed.any() == (index % 2 == 0), f"source frame {index}"


def test_mark_video_needs_tracks(clip: Path, example_files, tmp_path: Path, capsys):
    _, instances_path, _ = example_files
    code = main(["mark", str(clip), "--instances", str(instances_path), "-o", str(tmp_path / "o")])
    assert code == EXIT_USAGE
    assert "needs tracks" in capsys.readouterr().err


def test_frames_lists_timestamps_and_writes_files(clip: Path, tmp_path: Path, capsys):
    out = tmp_path / "frames"
    code = main(["frames", str(clip), "--num-frames", "5", "-o", str(out), "--json"])
    payload = _json_out(capsys)
    expected = list(uniform_positions(30, 5))
    assert code == EXIT_OK and payload["indices"] == expected
    assert payload["timestamps"] == pytest.approx([i / 10 for i in expected])
    codes = [frame_code(Image.open(f)) for f in payload["files"]]
    assert codes == expected

    code = main(["frames", str(clip), "--fps", "2", "--start", "1", "--end", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == EXIT_OK and [line.split()[0] for line in lines] == ["<1>", "<2>"]
    assert [int(line.split()[2]) for line in lines] == [10, 15]  # the window end is exclusive


def test_frames_refuses_a_non_empty_output_folder(clip: Path, tmp_path: Path, capsys):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "frame_1.jpg").write_bytes(b"keep me")
    assert main(["frames", str(clip), "-o", str(out)]) == EXIT_USAGE
    assert (out / "frame_1.jpg").read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err


def test_bad_media_is_a_usage_error(tmp_path: Path, capsys):
    assert main(["frames", str(tmp_path / "missing.mp4")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("instit frames: error:") and "missing.mp4" in err
    assert "Traceback" not in err


def test_bad_instances_file_is_a_usage_error(example_files, tmp_path: Path, capsys):
    image_path, _, _ = example_files
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    out = str(tmp_path / "o.png")
    for instances, message in [(tmp_path / "nope.json", "does not exist"), (broken, "not valid")]:
        assert main(["mark", str(image_path), "--instances", str(instances), "-o", out]) == 2
        assert message in capsys.readouterr().err
    assert not Path(out).exists()


def test_ask_with_a_local_checkpoint(tiny_model: Path, example_files, tmp_path: Path, capsys):
    image_path, instances_path, instances = example_files
    marked = tmp_path / "seen.png"
    common = ["--model", str(tiny_model), "--device", "cpu", "--max-new-tokens", "4"]
    code = main(
        [
            "ask",
            str(image_path),
            "What is [1] doing?",
            "--instances",
            str(instances_path),
            "--save-marked",
            str(marked),
            "--json",
            *common,
        ]
    )
    payload = _json_out(capsys)
    assert code == EXIT_OK
    seen = np.asarray(Image.open(marked).convert("RGB"))
    assert (seen != np.asarray(Image.open(image_path).convert("RGB"))).any()
    # the same answer as the API gives for the same checkpoint, image, instances and settings
    from instit.model.core import InstIt

    model = InstIt.from_pretrained(tiny_model, device="cpu", progress=False)
    direct = model.ask(image_path, "What is [1] doing?", instances=instances, max_new_tokens=4)
    assert payload["question"] == "What is [1] doing?"
    assert payload["text"] == direct.text and payload["instance_ids"] == direct.instance_ids

    code = main(["ask", str(image_path), "Describe it.", "--json", *common])
    whole = _json_out(capsys)["text"]
    code = main(["ask", str(image_path), "Describe it.", "--stream", *common])
    assert code == EXIT_OK and capsys.readouterr().out == whole + "\n"  # streamed = whole


def test_ask_a_video_maps_frames(tiny_model: Path, clip: Path, capsys, monkeypatch):
    """``<t>`` in the answer maps to the sampled frames' seconds in ``--json``.

    The tiny model really runs on the sampled frames; its random-weight text is then replaced by
    a reply that refers to frames, since random weights never write ``<t>``.
    """
    from instit.model.core import EncodedMedia, InstIt

    generate, encode = InstIt.generate, InstIt._encode  # every path to features
    seen: list[int] = []

    def encode_and_count(self: InstIt, media) -> EncodedMedia:
        encoded = encode(self, media)
        seen.append(encoded.num_frames)
        return encoded

    def generate_then_reply(self: InstIt, media, prompts, **kwargs) -> list[str]:
        generate(self, media, prompts, **kwargs)
        return ["[1] moves at <3>, then <1>-<2>."] * len(prompts)

    monkeypatch.setattr(InstIt, "_encode", encode_and_count)
    monkeypatch.setattr(InstIt, "generate", generate_then_reply)
    code = main(
        [
            "ask",
            str(clip),
            "What happens?",
            "--num-frames",
            "3",
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--max-new-tokens",
            "3",
            "--json",
        ]
    )
    payload = _json_out(capsys)
    assert code == EXIT_OK and seen == [3]  # the model saw the three sampled frames
    times = load_video(clip, num_frames=3).timestamps
    assert payload["text"] == "[1] moves at <3>, then <1>-<2>."
    assert payload["frames"] == [3, 1, 2] and payload["unknown_frames"] == []
    assert payload["seconds"] == pytest.approx([times[2], times[0], times[1]])
    assert payload["instance_ids"] == [1]


def test_describe_with_a_local_checkpoint(tiny_model: Path, example_files, capsys):
    image_path, instances_path, instances = example_files
    ids = [str(i) for i in instances.ids]
    code = main(
        [
            "describe",
            str(image_path),
            "--instances",
            str(instances_path),
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--max-new-tokens",
            "4",
            "--quiet",  # the old name of --no-progress still works
            "--json",
            "--id",
            "7",
        ]
    )
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert code == EXIT_OK
    # the Inst-It Dataset image record, as docs/cli.md promises
    assert list(payload) == [
        "image_id",
        "instance_level_caption",
        "image_level_caption",
        "image_path",
    ]
    assert payload["image_id"] == 7 and payload["image_path"] == str(image_path)
    assert sorted(payload["instance_level_caption"]) == ids
    assert isinstance(payload["image_level_caption"], str)
    assert "Loading weights" not in captured.err and "generating" not in captured.err

    model = ["--model", str(tiny_model), "--device", "cpu", "--max-new-tokens", "4"]
    code = main(["describe", str(image_path), "--instances", str(instances_path), *model])
    captured = capsys.readouterr()
    text = captured.out.splitlines()
    assert code == EXIT_OK and "Description(" not in captured.out  # text, not a dataclass repr
    assert text[0] == f"image: {payload['image_level_caption']}"
    described = [line for line in text if line.startswith("[")]
    assert [line.split("]")[0][1:] for line in described] == ids
    assert "token" in captured.err  # the progress bar counts tokens


def test_describe_a_video_prints_the_dataset_video_record(tiny_model: Path, clip: Path, capsys):
    common = ["--model", str(tiny_model), "--device", "cpu", "--max-new-tokens", "3"]
    code = main(["describe", str(clip), "--marks", "as_is", "--num-frames", "2", "--json", *common])
    payload = _json_out(capsys)
    assert code == EXIT_OK
    assert list(payload) == [
        "video_id",
        "frame_level_caption",
        "question_answer_pairs",
        "video_level_caption",
        "video_path",
    ]
    assert payload["video_id"] == 0 and payload["video_path"] == str(clip)
    frames = payload["frame_level_caption"]
    assert [f["timestamp"] for f in frames] == [1, 2]
    assert set(frames[0]) == {
        "timestamp",
        "frame_name",
        "instance_level",
        "image_level",
        "temporal_change",
    }


def test_ask_with_a_missing_checkpoint_fails_cleanly(example_files, tmp_path: Path, capsys):
    image_path, _, _ = example_files
    code = main(["ask", str(image_path), "Hi?", "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert code in (EXIT_USAGE, EXIT_FAILURE)
    assert "no-such-model" in err and "Traceback" not in err


def test_stream_with_json_is_refused_before_loading(example_files, tmp_path: Path, capsys):
    image_path, _, _ = example_files
    missing = tmp_path / "never-loaded"
    code = main(["ask", str(image_path), "Hi?", "--stream", "--json", "--model", str(missing)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "--stream" in err and "--json" in err and "never-loaded" not in err


def test_one_progress_flag_name_in_every_verb(capsys: pytest.CaptureFixture[str]):
    verbs = ["ask", "describe", "bench run", "bench score", "dataset to-llava", "finetune"]
    for verb in verbs:
        with pytest.raises(SystemExit):
            main([*verb.split(), "--help"])
        page = capsys.readouterr().out
        assert "--no-progress" in page and "--quiet" not in page, verb  # --quiet: hidden alias
    for verb in verbs:
        args = build_parser().parse_args([*verb.split(), *_required(verb), "--quiet"])
        assert args.no_progress is True, verb


def _required(verb: str) -> list[str]:
    return {
        "ask": ["a.png", "q"],
        "describe": ["a.png"],
        "bench score": ["p.json", "--format", "mc"],
        "dataset to-llava": ["d.json", "-o", "o.jsonl"],
        "finetune": ["ckpt", "d.jsonl", "-o", "out"],
    }.get(verb, [])


def test_errors_name_the_cli_flags(tiny_model: Path, example_files, capsys):
    image_path, _, _ = example_files
    # 4-bit works on CUDA and on the CPU (bitsandbytes), not on Apple's mps
    model = ["--model", str(tiny_model), "--device", "mps", "--quantization", "4bit"]
    code = main(["ask", str(image_path), "Hi?", *model])
    err = capsys.readouterr().err
    assert code in (EXIT_USAGE, EXIT_FAILURE)
    assert "--quantization 4bit needs a CUDA GPU or the CPU" in err
    assert "pass --quantization none" in err
    assert "quantization=" not in err


def test_keywords_become_the_verbs_flags():
    from instit.cli import _verb_parser
    from instit.cli_support import flags_for_keywords

    parser = build_parser()
    ask = _verb_parser(parser, parser.parse_args(["ask", "a.png", "q"]))
    assert ask.prog == "instit ask"
    said = (
        "pass overwrite=True (--overwrite); quantization=None; num_frames=8, fps=, "
        "marks='draw', max_new_tokens=0; source_fps= and image_id=3 have no flag"
    )
    assert flags_for_keywords(said, ask) == (
        "pass --overwrite; --quantization none; --num-frames 8, --fps, --marks draw, "
        "--max-new-tokens 0; source_fps= and image_id=3 have no flag"
    )
    assert flags_for_keywords(said, None) == said


def test_convert_then_refuse_to_overwrite(tiny_model: Path, tmp_path: Path, capsys):
    out = tmp_path / "hf"
    assert main(["convert", str(tiny_model), str(out), "--json"]) == EXIT_OK
    assert _json_out(capsys)["destination"] == str(out)
    assert (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava_onevision"
    before = sorted(p.name for p in out.iterdir())
    assert main(["convert", str(tiny_model), str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--overwrite" in err and "overwrite=True" not in err  # the CLI's flag, not the API's
    assert sorted(p.name for p in out.iterdir()) == before


def test_warnings_report_what_the_model_made_up(capsys: pytest.CaptureFixture[str]):
    """A record or an answer keeps what is valid; what is not is reported on stderr."""
    from instit.cli import _warn_ids, _warn_unknown
    from instit.results import Answer, FrameDescription, ImageDescription, VideoDescription

    answer = Answer.parse("[1] and [7] at <2> and <9>", "q", known_ids=[1], num_frames=8)
    _warn_unknown(answer)
    _warn_ids(ImageDescription({1: "a."}, "img", missing_ids=[2], extra_ids=[5]))
    frames = [
        FrameDescription(1, "f1", {1: "a."}, "x", ""),
        FrameDescription(2, "f2", {}, "y", "", missing_ids=[1]),
    ]
    _warn_ids(VideoDescription(frames, "v"))
    assert capsys.readouterr().err.splitlines() == [
        "instit ask: warning: the answer mentions instances not among those given: [7]",
        "instit ask: warning: the answer mentions frames the media does not have: <9>",
        "instit describe: warning: not described: [2]",
        "instit describe: warning: described but not given: [5]",
        "instit describe: warning: not described on frame <2>: [1]",
    ]


# -- hardening: output paths, checked before any model loads -------------------------------------


@pytest.fixture
def broken_model(tmp_path: Path) -> Path:
    """A checkpoint folder that fails to load: a verb that reaches the model exits 1."""
    folder = tmp_path / "broken-model"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("verb", ["ask", "describe"])
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/x.png", "folder {tmp}/missing does not exist"),
        ("x.xyz", "unknown extension '.xyz'"),
        ("adir", "is a folder: pass a file path"),
        ("afile/x.png", "afile is a file, not a folder"),
        ("existing.png", "exists: choose another path or pass --overwrite"),
        ("photo.png", "would replace the input"),
    ],
)
def test_save_marked_problems_exit_2_before_the_model_loads(
    example_files, broken_model: Path, tmp_path: Path, capsys, verb: str, target: str, message
):
    image_path, instances_path, _ = example_files
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "existing.png").write_bytes(b"mine")
    extra = ["Hi?"] if verb == "ask" else []
    args = [verb, str(image_path), *extra, "--instances", str(instances_path)]
    args += ["--model", str(broken_model), "--save-marked", str(tmp_path / target)]
    if target == "photo.png":
        args.append("--overwrite")
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "--save-marked" in err
    assert err.count("\n") == 1 and "overwrite=True" not in err
    assert (tmp_path / "existing.png").read_bytes() == b"mine"
    assert not (tmp_path / "x.xyz").exists()


def test_save_marked_for_a_video_must_be_a_folder(clip: Path, broken_model: Path, tmp_path, capsys):
    (tmp_path / "afile.png").write_bytes(b"mine")
    args = ["ask", str(clip), "Hi?", "--model", str(broken_model), "--save-marked"]
    assert main([*args, str(tmp_path / "afile.png"), "--overwrite"]) == EXIT_USAGE
    assert "is a file: pass a folder" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "new-folder")]) == EXIT_FAILURE  # reached the model
    assert "broken-model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/m.png", "folder {tmp}/missing does not exist"),
        ("m.txt", "unknown extension '.txt'"),
        ("adir", "is a folder"),
        ("instances.json", "unknown extension '.json'"),
    ],
)
def test_mark_output_problems_exit_2(example_files, tmp_path: Path, capsys, target, message):
    image_path, instances_path, _ = example_files
    (tmp_path / "adir").mkdir()
    args = ["mark", str(image_path), "--instances", str(instances_path)]
    assert main([*args, "-o", str(tmp_path / target), "--overwrite"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and err.count("\n") == 1


def test_mark_never_overwrites_its_source_image(example_files, tmp_path: Path, capsys):
    image_path, instances_path, _ = example_files
    before = image_path.read_bytes()
    args = ["mark", str(image_path), "--instances", str(instances_path), "--overwrite", "-o"]
    assert main([*args, str(tmp_path / "." / "photo.png")]) == EXIT_USAGE
    assert "would replace the input" in capsys.readouterr().err
    assert image_path.read_bytes() == before


def test_frames_overwrite_replaces_the_older_runs_frames_as_one_unit(clip: Path, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["frames", str(clip), "--num-frames", "6", "-o", str(out)]) == EXIT_OK
    assert len(list(out.iterdir())) == 6
    assert main(["frames", str(clip), "--num-frames", "3", "-o", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_1.jpg", "frame_2.jpg", "frame_3.jpg"]
    codes = [frame_code(Image.open(out / f"frame_{t}.jpg")) for t in (1, 2, 3)]
    assert codes == list(uniform_positions(30, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "frames"]  # no leftovers
    # a failing run (bad video) leaves the older frames in place
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["frames", str(broken), "-o", str(out), "--overwrite"]) == EXIT_USAGE
    assert len(list(out.iterdir())) == 3
    capsys.readouterr()


def test_mark_video_overwrite_replaces_the_older_frames(clip: Path, tmp_path: Path):
    size = (160, 120)
    box = Instances.from_boxes([[10, 10, 60, 60]], ids=[7], image_size=size)
    tracks_path = tmp_path / "tracks.json"
    tracks_path.write_text(Tracks({k: box for k in range(30)}, image_size=size).to_json())
    out = tmp_path / "marked"
    args = ["mark", str(clip), "--instances", str(tracks_path), "-o", str(out)]
    assert main([*args, "--num-frames", "5"]) == EXIT_OK
    assert main([*args, "--num-frames", "2", "--overwrite"]) == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["frame_1.png", "frame_2.png"]


def test_frames_overwrite_refuses_folders_holding_other_files(clip: Path, tmp_path, capsys):
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "frame_1.jpg").write_bytes(b"old frame")
    (out / "notes.txt").write_text("the user's notes")
    assert main(["frames", str(clip), "-o", str(out), "--overwrite"]) == EXIT_USAGE
    assert "holds files that are not frames (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "the user's notes"
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["frames", str(clip), "-o", str(afile), "--overwrite"]) == EXIT_USAGE
    assert "is a file: pass a folder" in capsys.readouterr().err
    # a frame folder as its own output would be deleted by the swap
    source = tmp_path / "source-frames"
    assert main(["frames", str(clip), "--num-frames", "3", "-o", str(source)]) == EXIT_OK
    assert main(["frames", str(source), "-o", str(source), "--overwrite"]) == EXIT_USAGE
    assert "would replace the input" in capsys.readouterr().err
    assert len(list(source.iterdir())) == 3


def test_frames_into_a_folder_another_run_writes_fails_fast(clip: Path, tmp_path: Path, capsys):
    out = tmp_path / "frames"
    with lock_held_elsewhere(out) as holder:
        assert main(["frames", str(clip), "-o", str(out)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"another instit process (pid {holder.pid}) is writing -o/--output" in err
        assert not out.exists()
    assert main(["frames", str(clip), "--num-frames", "2", "-o", str(out)]) == EXIT_OK


def test_convert_names_the_cli_flag(tiny_model: Path, tmp_path: Path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["convert", str(tiny_model), str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "pass --overwrite" in err and "overwrite=True" not in err
    assert main(["convert", str(tiny_model), str(tmp_path / "f" / "x"), "--json"]) == EXIT_OK


def test_a_non_utf8_or_deeply_nested_instances_file_is_a_usage_error(
    example_files, tmp_path, capsys
):
    image_path, _, _ = example_files
    for name, data in [("latin1.json", b'{"ids": "caf\xe9"}'), ("deep.json", b"[" * 100_000)]:
        (tmp_path / name).write_bytes(data)
        args = ["mark", str(image_path), "--instances", str(tmp_path / name)]
        assert main([*args, "-o", str(tmp_path / "o.png")]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"instances file {tmp_path / name} is not valid JSON" in err
        assert err.count("\n") == 1


def test_an_output_where_nothing_can_be_written_is_a_usage_error(clip: Path, capsys):
    assert main(["frames", str(clip), "-o", "/proc/instit-frames/out"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot write -o/--output /proc/instit-frames/out" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["ask", "IMAGE", "Hi?", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["describe", "IMAGE", "--max-new-tokens", "-3"], "--max-new-tokens"),
        (["bench", "run", "--callable", "m:f", "--batch-size", "0"], "--batch-size"),
        (["bench", "run", "--callable", "m:f", "--max-new-tokens", "x"], "--max-new-tokens"),
        (["bench", "run", "--callable", "m:f", "--shard", "2", "2"], "--shard 2 2 is invalid"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_flag_before_a_model_loads(
    example_files, broken_model: Path, capsys, args, flag
):
    image_path, _, _ = example_files
    argv = [str(image_path) if a == "IMAGE" else a for a in args]
    if argv[0] in ("ask", "describe"):
        argv += ["--model", str(broken_model)]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse reports bad option values itself
        code = stop.code
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and flag in err
    assert "batch_size" not in err and "max_new_tokens" not in err


ASSETS = Path(__file__).resolve().parents[1] / "src" / "instit" / "assets"


def test_mark_reads_the_bundled_annotation_file(tmp_path: Path, capsys):
    out = tmp_path / "marked.png"
    instances = str(ASSETS / "astronaut_instances.json")
    code = main(["mark", str(ASSETS / "astronaut.jpg"), "--instances", instances, "-o", str(out)])
    assert code == EXIT_OK, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"wrote {out} with 4 marks"
    image, example = example_image()
    direct = np.asarray(draw_marks(image, example))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), direct)


def _sink_detections() -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[40.0, 50.0, 200.0, 300.0], [300.0, 20.0, 480.0, 160.0]]),
        confidence=np.array([0.9, 0.8]),
        class_id=np.array([0, 3]),
        tracker_id=np.array([7, 2]),
    )


@pytest.mark.parametrize("sink", ["json", "csv"])
def test_mark_reads_supervision_sink_files(sink: str, example_files, tmp_path: Path, capsys):
    image_path, _, _ = example_files
    path = tmp_path / f"detections.{sink}"
    with (sv.JSONSink if sink == "json" else sv.CSVSink)(str(path)) as writer:
        writer.append(_sink_detections())
    out = tmp_path / "marked.png"
    args = ["mark", str(image_path), "--instances", str(path), "-o", str(out), "--json"]
    assert main(args) == EXIT_OK
    assert sorted(_json_out(capsys)["placements"]) == ["2", "7"]  # the tracker IDs
    expected = draw_marks(image_path, Instances.from_supervision(_sink_detections()))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(expected))


def test_mark_reads_a_coco_file_with_categories_and_scores(example_files, tmp_path, capsys):
    image_path, _, example = example_files
    width, height = Image.open(image_path).size
    annotations = [
        {
            "id": instance.id,
            "image_id": 1,
            "segmentation": encode_rle(instance.mask),
            "category_id": 1 + index % 2,
            "score": 0.5 + index / 10,
        }
        for index, instance in enumerate(example)
    ]
    coco = {
        "images": [{"id": 1, "width": width, "height": height, "file_name": image_path.name}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "astronaut"}, {"id": 2, "name": "thing"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    out = tmp_path / "marked.png"
    assert main(["mark", str(image_path), "--instances", str(path), "-o", str(out)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"wrote {out} with {len(example)} marks"
    read = Instances.from_dict(coco)  # what the CLI read, through the API
    assert read.labels == ("astronaut", "thing", "astronaut", "thing")[: len(example)]
    assert read.scores.tolist() == pytest.approx([0.5 + i / 10 for i in range(len(example))])
    expected = np.asarray(draw_marks(image_path, example))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected)
    # a category the file does not name is a usage error that says so, and nothing is written
    coco["annotations"][0]["category_id"] = 9
    path.write_text(json.dumps(coco))
    out.unlink()
    assert main(["mark", str(image_path), "--instances", str(path), "-o", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "annotation 0: category_id 9 is not in the file's" in err and err.count("\n") == 1
    assert not out.exists()


def test_instances_files_in_other_formats_are_usage_errors(example_files, tmp_path: Path, capsys):
    image_path, _, _ = example_files
    out = str(tmp_path / "o.png")
    cases = [
        ("a.csv", "left,top\n1,2\n", "no column 'x_min'; a CSV of instances is a supervision"),
        ("b.json", '{"cat": [0, 0, 1, 1]}', "instance id 'cat' is not a number"),
        ("c.json", '[{"label": "cat"}]', "cannot use a list as instances"),
        ("d.json", '[{"segmentation": [[0, 0, 9, 0, 9, 9]]}]', None),  # polygons: image's size
    ]
    for name, text, message in cases:
        (tmp_path / name).write_text(text)
        code = main(["mark", str(image_path), "--instances", str(tmp_path / name), "-o", out])
        err = capsys.readouterr().err
        if message is None:
            assert code == EXIT_OK, err
            Path(out).unlink()
        else:
            assert code == EXIT_USAGE and message in err and "Traceback" not in err


def test_mark_video_warns_about_unsampled_tracked_frames_or_snaps(
    clip: Path, tmp_path: Path, capsys
):
    size = (160, 120)
    box = Instances.from_boxes([[10, 10, 60, 60]], ids=[7], image_size=size)
    tracks_path = tmp_path / "tracks.json"
    tracks_path.write_text(Tracks({1: box, 10: box}, image_size=size).to_json())
    base = ["mark", str(clip), "--instances", str(tracks_path), "--num-frames", "4"]
    # 4 of 30 frames sample 0, 9, 19, 29: frames 1 and 10 are not among them
    assert main([*base, "-o", str(tmp_path / "a")]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("(0 of them show instances)")
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith("instit mark: warning: 2 of 2 tracked frames were not sampled")
    assert "--snap" in warning
    assert main([*base, "-o", str(tmp_path / "b"), "--snap", "--json"]) == EXIT_OK
    payload = _json_out(capsys)
    assert payload["frames_with_marks"] == 2 and capsys.readouterr().err == ""
    plain = load_video(clip, num_frames=4)
    changed = [
        (np.asarray(Image.open(f).convert("RGB")) != np.asarray(raw)).any()
        for f, raw in zip(payload["files"], plain.frames, strict=True)
    ]
    assert changed == [True, True, False, False]  # 1 -> frame 0, 10 -> frame 9


def test_mark_video_reads_supervision_rows_with_frame_index(clip: Path, tmp_path: Path, capsys):
    path = tmp_path / "tracked.csv"
    one = sv.Detections(xyxy=np.array([[10.0, 10.0, 60.0, 60.0]]), tracker_id=np.array([3]))
    with sv.CSVSink(str(path)) as sink:
        for frame in (0, 29):
            sink.append(one, custom_data={"frame_index": frame})
    args = ["mark", str(clip), "--instances", str(path), "--num-frames", "4", "-o", "m"]
    assert main([*args[:-1], str(tmp_path / "m"), "--json"]) == EXIT_OK
    assert _json_out(capsys)["frames_with_marks"] == 2


def test_dtype_and_quantization_flags_reach_the_model(tiny_model: Path) -> None:
    from instit.cli import _load_model, build_parser

    argv = ["describe", "x.png", "--model", str(tiny_model), "--device", "cpu", "--no-progress"]
    model = _load_model(build_parser().parse_args([*argv, "--dtype", "bfloat16"]))
    assert (model.dtype, model.quantization) == (torch.bfloat16, None)
    args = build_parser().parse_args([*argv, "--dtype", "bfloat16", "--quantization", "4bit"])
    model = _load_model(args)
    assert (model.dtype, model.quantization) == (torch.bfloat16, "4bit")
    assert model.info()["dtype"] == "bfloat16"
