"""Running models on the bench: format, batching, resume after a kill, real multi-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instit.bench import load_bench, make_tiny_bench, merge_predictions, run_bench
from instit.bench.synthetic import media_model
from instit.errors import DatasetError, InstitTypeError, InstitValueError

REPO = Path(__file__).resolve().parents[1]
FIELDS = ["question_id", "question", "model_prediction", "ground_truth", "split"]


@pytest.fixture
def bench_root(tmp_path):
    return make_tiny_bench(tmp_path / "bench", num_questions=8)


class BatchedModel:
    """Stands in for instit.InstIt: a batched ``generate`` with the InstIt signature."""

    def __init__(self):
        self.batches: list[int] = []
        self.kwargs: list[dict] = []

    def generate(self, media, prompts, *, max_new_tokens, temperature, progress):
        self.batches.append(len(prompts))
        self.kwargs.append(
            {"max_new_tokens": max_new_tokens, "temperature": temperature, "progress": progress}
        )
        return [media_model(m, p) + "  " for m, p in zip(media, prompts, strict=True)]


def test_predictions_in_the_reference_format_sorted(bench_root, tmp_path):
    bench = load_bench("video_open_ended", bench_root)
    seen = []

    def model(media, prompt):
        seen.append((len(media), prompt))
        return f"  answer to {prompt.splitlines()[-1]}  "

    out = tmp_path / "out" / "video_oe_inference.json"
    result = run_bench(model, list(reversed(bench.questions)), out, progress=False)
    records = json.loads(out.read_text())
    assert [list(r) for r in records] == [FIELDS] * 8
    assert [r["question_id"] for r in records] == sorted(q.question_id for q in bench)
    first = records[0]
    q = bench[0]
    assert first == {
        "question_id": q.question_id,
        "question": q.question,
        "model_prediction": f"answer to {q.question}",  # stripped like the reference
        "ground_truth": q.answer,
        "split": "video",
    }
    assert len(seen) == 8 and all(n == 3 for n, _ in seen)  # every frame of the folder
    assert {p for _, p in seen} == {q.prompt() for q in bench}
    assert (result.num_generated, result.num_resumed, result.merged) == (8, 0, True)
    # part files merged away, the producer kept beside the predictions
    assert sorted(out.parent.iterdir()) == [out, out.with_name(out.name + ".producer.json")]


def test_batched_generate_is_used_with_settings(bench_root, tmp_path):
    model = BatchedModel()
    bench = load_bench("image_multi_choice", bench_root)
    run_bench(model, bench, tmp_path / "p.json", batch_size=3, max_new_tokens=7, progress=False)
    assert model.batches == [3, 3, 2]
    assert model.kwargs[0] == {"max_new_tokens": 7, "temperature": 0.0, "progress": False}
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) == 8 and all(not r["model_prediction"].endswith(" ") for r in records)


def test_killed_run_resumes_without_duplicates_or_losses(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    calls: list[str] = []

    class Killed(Exception):
        pass

    def dying(media, prompt):
        if len(calls) == 5:
            raise Killed
        calls.append(prompt)
        return "first run"

    with pytest.raises(Killed):
        run_bench(dying, bench, out, batch_size=2, progress=False, producer="test model")
    assert not out.exists()
    part = tmp_path / "p.json.part-0.jsonl"
    assert len(part.read_text().splitlines()) == 4  # two full batches were saved
    # a kill in the middle of a write leaves half a line: it must be ignored and repaired
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"question_id": "003-01", "quest')

    resumed: list[str] = []

    def model(media, prompt):
        resumed.append(prompt)
        return "second run"

    result = run_bench(model, bench, out, batch_size=2, progress=False, producer="test model")
    records = json.loads(out.read_text())
    assert [r["question_id"] for r in records] == sorted(q.question_id for q in bench)
    assert [r["model_prediction"] for r in records] == ["first run"] * 4 + ["second run"] * 4
    assert (result.num_generated, result.num_resumed, len(resumed)) == (4, 4, 4)
    # running again answers nothing
    again = run_bench(model, bench, out, progress=False, producer="test model")
    assert again.num_generated == 0 and len(json.loads(out.read_text())) == 8


def test_manual_shards_merge_when_the_last_one_finishes(bench_root, tmp_path):
    bench = load_bench("video_multi_choice", bench_root)
    out = tmp_path / "p.json"
    first = run_bench(media_model, bench, out, shard=(0, 2), progress=False)
    assert not first.merged and not out.exists()
    assert (tmp_path / "p.json.part-0.jsonl").is_file()
    second = run_bench(media_model, bench, out, shard=(1, 2), progress=False)
    assert second.merged and first.num_generated + second.num_generated == 8
    assert len(json.loads(out.read_text())) == 8
    assert merge_predictions(out) == json.loads(out.read_text())


def test_model_errors_are_typed(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    with pytest.raises(InstitTypeError, match="return the answer text as a str"):
        run_bench(lambda media, prompt: 3, bench, tmp_path / "a.json", progress=False)
    with pytest.raises(InstitTypeError, match="must be callable"):
        run_bench(object(), bench, tmp_path / "b.json", progress=False)
    with pytest.raises(InstitValueError, match="batch_size"):
        run_bench(media_model, bench, tmp_path / "c.json", batch_size=0, progress=False)
    with pytest.raises(InstitValueError, match="shard"):
        run_bench(media_model, bench, tmp_path / "d.json", shard=(2, 2), progress=False)


def test_two_processes_under_accelerate_launch(bench_root, tmp_path):
    """A real 2-process run: each process answers its shard, process 0 merges once."""
    log = tmp_path / "calls"
    env = {**os.environ, "INSTIT_TEST_CALL_LOG": str(log), "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        "-m", "instit.bench", "run",
        "--callable", f"{REPO / 'tests' / 'bench_model.py'}:logged_model",
        "--bench", str(bench_root),
        "--config", "video_open_ended", "--config", "image_multi_choice",
        "--output-dir", str(tmp_path / "out"), "--no-progress", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])  # printed by process 0 only
    assert [r["num_processes"] for r in summary["runs"]] == [2, 2]
    assert [r["num_generated"] for r in summary["runs"]] == [4, 4]  # process 0's half
    per_rank = {
        rank: (log.parent / f"calls.{rank}").read_text().splitlines() for rank in ("0", "1")
    }
    assert len(per_rank["0"]) == len(per_rank["1"]) == 8  # 4 + 4 per process
    tags = per_rank["0"] + per_rank["1"]
    assert sorted(tags) == sorted([f"(q{i})" for i in range(8)] * 2)  # each question once
    for name in ("video_oe_inference.json", "image_mc_inference.json"):
        records = json.loads((tmp_path / "out" / name).read_text())
        assert len(records) == 8 == len({r["question_id"] for r in records})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "image_mc_inference.json",
        "image_mc_inference.json.producer.json",
        "video_oe_inference.json",
        "video_oe_inference.json.producer.json",
    ]


KILLING_MODEL = '''
import os
import signal
from pathlib import Path

from instit.bench.synthetic import media_model


def answer(media, prompt):
    """Answers like media_model, tagged with the run; SIGKILLs itself before answer KILL_AT."""
    counter = Path(os.environ["INSTIT_TEST_COUNTER"])
    done = int(counter.read_text()) if counter.exists() else 0
    if done == int(os.environ["INSTIT_TEST_KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    counter.write_text(str(done + 1))
    return os.environ["INSTIT_TEST_RUN"] + ": " + media_model(media, prompt)
'''


def test_a_process_killed_with_sigkill_resumes_without_duplicates_or_losses(bench_root, tmp_path):
    model_file = tmp_path / "killing_model.py"
    model_file.write_text(KILLING_MODEL)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "instit.bench", "run",
        "--callable", f"{model_file}:answer", "--bench", str(bench_root),
        "--config", "image_open_ended", "--output-dir", str(out),
        "--batch-size", "2", "--no-progress", "--json",
    ]  # fmt: skip

    def run(tag: str, kill_at: int) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "INSTIT_TEST_COUNTER": str(tmp_path / f"count-{tag}"),
            "INSTIT_TEST_KILL_AT": str(kill_at),
            "INSTIT_TEST_RUN": tag,
        }
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    killed = run("first", kill_at=5)  # killed while answering the third batch
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "image_oe_inference.json").exists()
    part = out / "image_oe_inference.json.part-0.jsonl"
    assert len(part.read_text().splitlines()) == 4  # the two finished batches were on disk

    resumed = run("second", kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)["runs"][0]
    assert (summary["num_generated"], summary["num_resumed"]) == (4, 4)
    assert (tmp_path / "count-second").read_text() == "4"  # nothing asked twice
    records = json.loads((out / "image_oe_inference.json").read_text())
    ids = [r["question_id"] for r in records]
    assert ids == sorted(ids) and len(set(ids)) == 8
    assert [r["model_prediction"].split(":")[0] for r in records] == ["first"] * 4 + ["second"] * 4
    # the killed run's lock file did not block the resume, and the resume removed it
    assert sorted(p.name for p in out.iterdir()) == [
        "image_oe_inference.json",
        "image_oe_inference.json.producer.json",
    ]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from instit.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", "qwen2-siglip")


def test_an_instit_checkpoint_runs_the_bench_batched(tiny_checkpoint, tmp_path, capsys):
    """``instit bench run --model``: a real InstIt answers every frame of each video."""
    from instit.cli import main as cli_main
    from instit.model import InstIt

    root = make_tiny_bench(
        tmp_path / "bench", num_questions=4, frames_per_video=2, configs=("video_open_ended",)
    )
    args = [
        "bench", "run", "--model", str(tiny_checkpoint), "--device", "cpu",
        "--bench", str(root), "--config", "video_open_ended", "--output-dir", str(tmp_path / "o"),
        "--batch-size", "2", "--max-new-tokens", "3", "--no-progress", "--json",
    ]  # fmt: skip
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out)["runs"][0]
    assert (summary["num_questions"], summary["num_generated"]) == (4, 4)
    records = json.loads((tmp_path / "o" / "video_oe_inference.json").read_text())

    # the same model asked directly, in the same batches, answers the same
    model = InstIt.from_pretrained(tiny_checkpoint, device="cpu", progress=False)
    questions = sorted(load_bench("video_open_ended", root), key=lambda q: q.question_id)
    expected = []
    for batch in (questions[:2], questions[2:]):
        media = [q.load_media() for q in batch]
        assert all(len(frames) == 2 for frames in media)
        expected += model.generate(media, [q.prompt() for q in batch], max_new_tokens=3)
    assert [r["model_prediction"] for r in records] == [a.strip() for a in expected]
    assert [r["question_id"] for r in records] == [q.question_id for q in questions]
    assert all(r["split"] == "video" for r in records)


def _cli_run(bench_root: Path, out: Path, *model_flags: str) -> list[str]:
    return [
        "bench", "run", *model_flags, "--bench", str(bench_root),
        "--config", "image_multi_choice", "--output-dir", str(out), "--no-progress", "--json",
    ]  # fmt: skip


def test_model_names_a_checkpoint_and_callable_a_callable(bench_root, tmp_path, capsys):
    """``--model`` is a checkpoint in every verb; a callable is ``--callable``."""
    from instit.cli import main as cli_main

    callable_spec = "instit.bench.synthetic:media_model"
    assert cli_main(_cli_run(bench_root, tmp_path / "a", "--callable", callable_spec)) == 0
    done = capsys.readouterr()
    assert json.loads(done.out)["runs"][0]["num_generated"] == 8 and done.err == ""
    missing = tmp_path / "no-such-checkpoint"
    assert cli_main(_cli_run(bench_root, tmp_path / "b", "--model", str(missing))) != 0
    assert "no-such-checkpoint" in capsys.readouterr().err
    assert cli_main(_cli_run(bench_root, tmp_path / "c")) == 2
    assert "--model CHECKPOINT or --callable MODULE:CALLABLE" in capsys.readouterr().err
    assert "--checkpoint" not in _bench_run_help(capsys)


def _bench_run_help(capsys: pytest.CaptureFixture[str]) -> str:
    from instit.cli import main as cli_main

    with pytest.raises(SystemExit):
        cli_main(["bench", "run", "--help"])
    return capsys.readouterr().out


def test_old_bench_run_flags_still_work_with_a_warning(bench_root, tmp_path, capsys):
    from instit.cli import main as cli_main

    old = _cli_run(bench_root, tmp_path / "a", "--model", "instit.bench.synthetic:media_model")
    assert cli_main(old) == 0
    done = capsys.readouterr()
    assert json.loads(done.out)["runs"][0]["num_generated"] == 8
    assert "--model instit.bench.synthetic:media_model is deprecated" in done.err
    assert "--callable instit.bench.synthetic:media_model" in done.err
    missing = tmp_path / "no-such-checkpoint"
    assert cli_main(_cli_run(bench_root, tmp_path / "b", "--checkpoint", str(missing))) != 0
    err = capsys.readouterr().err
    assert "--checkpoint PATH is deprecated" in err and "no-such-checkpoint" in err
    both = _cli_run(bench_root, tmp_path / "c", "--checkpoint", str(missing), "--model", "x")
    assert cli_main(both) == 2
    assert "pass --model only" in capsys.readouterr().err


# -- hardening: who answered, damaged part files, one writer at a time -------------------------


def answer_a(media, prompt):
    return "A"


def answer_b(media, prompt):
    return "B"


def test_a_second_model_into_the_same_output_is_refused_unless_forced(bench_root, tmp_path):
    bench = load_bench("image_multi_choice", bench_root)
    out = tmp_path / "p.json"
    run_bench(answer_a, bench[:4], out, progress=False)
    with pytest.raises(InstitValueError, match=r"answers from .*answer_a.*force_resume=True"):
        run_bench(answer_b, bench, out, progress=False)
    with pytest.raises(InstitValueError, match=r'"max_new_tokens": 7'):
        run_bench(answer_a, bench, out, max_new_tokens=7, progress=False)
    assert [r["model_prediction"] for r in json.loads(out.read_text())] == ["A"] * 4
    # the same model and settings resume
    assert run_bench(answer_a, bench, out, progress=False).num_resumed == 4
    forced = run_bench(answer_b, bench, out, progress=False, force_resume=True)
    assert forced.num_resumed == 8 and forced.num_generated == 0
    record = json.loads((tmp_path / "p.json.producer.json").read_text())
    assert record["producer"]["model"].endswith(":answer_b")
    assert [e["model"].rsplit(":", 1)[1] for e in record["earlier"]] == ["answer_a"]


def test_a_second_model_is_refused_in_the_part_files_too(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    run_bench(answer_a, bench, out, shard=(0, 2), merge=False, progress=False)
    assert not out.exists()
    with pytest.raises(InstitValueError, match="mix two models"):
        run_bench(answer_b, bench, out, shard=(1, 2), progress=False)


def test_the_cli_refuses_another_producer_before_loading_a_model(bench_root, tmp_path, capsys):
    from instit.cli import main as cli_main

    out = tmp_path / "o"
    common = ["bench", "run", "--bench", str(bench_root), "--config", "image_open_ended"]
    common += ["--output-dir", str(out), "--no-progress"]
    model = f"{REPO / 'tests' / 'test_bench_run.py'}:answer_a"
    assert cli_main([*common, "--callable", model]) == 0
    capsys.readouterr()
    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()  # loading it would fail: the refusal must come first
    assert cli_main([*common, "--model", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "--force-resume" in err and "force_resume=True" not in err
    assert f"checkpoint {broken}" in err and err.count("\n") == 1
    file_dir = tmp_path / "file"
    file_dir.write_text("not a folder")
    assert cli_main([*common[:-3], "--output-dir", str(file_dir), "--callable", model]) == 2
    assert "is a file: pass a folder" in capsys.readouterr().err


def test_a_corrupt_middle_line_of_a_part_file_names_file_and_line(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    run_bench(answer_a, bench, out, shard=(0, 2), merge=False, progress=False)
    part = tmp_path / "p.json.part-0.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join([lines[0], '{"question_id": "002-01", "que\n', *lines[1:]]))
    with pytest.raises(DatasetError, match=r"p\.json\.part-0\.jsonl: line 2 is not valid JSON"):
        run_bench(answer_a, bench, out, shard=(0, 2), progress=False)
    part.write_text("".join([lines[0], "[1, 2]\n", *lines[1:]]))
    with pytest.raises(DatasetError, match=r"line 2 is not a prediction record"):
        merge_predictions(out)
    part.write_bytes(lines[0].encode() + b'{"question_id": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"part-0\.jsonl: line 2 is not UTF-8"):
        merge_predictions(out)


def test_two_runs_into_the_same_output_at_once_the_second_fails_fast(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    refused: list[str] = []

    def model(media, prompt):
        if not refused:  # while this run writes, start another into the same output
            with pytest.raises(InstitValueError) as caught:
                run_bench(model, bench, out, progress=False)
            refused.append(str(caught.value))
        return "answer"

    result = run_bench(model, bench, out, progress=False)
    assert result.num_generated == 8
    assert f"another instit process (pid {os.getpid()}) is writing" in refused[0]
    assert "p.json.part-0.jsonl" in refused[0]
    # released afterwards: the next run goes ahead (and finds everything answered)
    assert run_bench(model, bench, out, progress=False).num_resumed == 8


def test_a_stale_lock_file_of_a_dead_process_does_not_block(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    lock = tmp_path / ".p.json.part-0.jsonl.instit-lock"
    lock.write_text(dead)
    assert run_bench(answer_a, bench, out, progress=False).num_generated == 8
    assert not lock.exists()


def test_an_output_that_is_a_folder_is_refused(bench_root, tmp_path):
    (tmp_path / "p.json").mkdir()
    bench = load_bench("image_open_ended", bench_root)
    with pytest.raises(InstitValueError, match=r"predictions file .*p\.json is a folder"):
        run_bench(answer_a, bench, tmp_path / "p.json", progress=False)
    assert list((tmp_path / "p.json").iterdir()) == []


def test_answers_holding_unicode_line_breaks_resume_intact(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    out = tmp_path / "p.json"
    odd = "one\u2028two\u2029three\x85four\x1cfive"

    def model(media, prompt):
        return odd

    run_bench(model, bench, out, shard=(0, 2), merge=False, progress=False)
    assert [r["model_prediction"] for r in merge_predictions(out)] == [odd] * 4


@pytest.mark.parametrize("config", ["video_open_ended", "image_multi_choice"])
@pytest.mark.parametrize("count", [2, 3, 5])
def test_shards_keep_each_media_items_questions_together(bench_root, config, count):
    from instit.bench.run import _shard, _topology, by_media

    questions = sorted(load_bench(config, bench_root), key=lambda q: q.question_id)
    groups = by_media(questions)
    shards = [
        [q for group in _shard(groups, _topology((index, count))) for q in group]
        for index in range(count)
    ]
    ids = [q.question_id for shard in shards for q in shard]
    assert sorted(ids) == [q.question_id for q in questions]  # each question once
    for group in by_media(questions):
        owners = {n for n, shard in enumerate(shards) for q in shard if q in group}
        assert len(owners) == 1  # one media item, one process: one prefill
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= max(len(g) for g in by_media(questions))


def test_a_manual_shard_answers_whole_media_items(bench_root, tmp_path):
    bench = load_bench("video_multi_choice", bench_root)
    seen: list[str] = []

    def model(media, prompt):
        seen.append(media_model(media, prompt).split("(")[1])  # what the frames look like
        return "A"

    result = run_bench(model, bench, tmp_path / "p.json", shard=(0, 2), progress=False)
    assert result.num_generated == 4
    assert len(seen) == 4 and len(set(seen)) == 2  # two whole videos, not four halves
    assert all(seen.count(frames) == 2 for frames in seen)


def test_a_file_in_the_output_path_is_a_typed_error_not_an_oserror(bench_root, tmp_path):
    bench = load_bench("image_open_ended", bench_root)
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    with pytest.raises(InstitValueError, match=r"predictions folder .*taken is a file"):
        run_bench(media_model, bench, blocker / "out" / "p.json", progress=False)
    assert blocker.read_text() == "keep me"
