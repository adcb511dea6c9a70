"""Multiple-choice scoring identical to the reference evaluate.py, and the log format."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from instit.bench import extract_mc_answer, score_file, score_mc
from instit.bench.score import MC_ANSWER_PREFIXES, mc_log
from instit.cli import main as cli_main
from instit.errors import DatasetError, InstitValueError


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("B", "B"),
        ("  C.  ", "C"),
        ("The best answer is: D", "D"),
        ("The correct answer is (A) [1] holds the cup", "A"),
        ("Answer: C", "C"),
        ("answer: b", ""),  # lower-case letters are not options
        ("The answer is B because [2] moves", "B"),
        # prefixes are removed anywhere, not only at the start: stripping only a leading
        # prefix would take the A of "Answer" / "answer" here
        ("I pick D. The answer is", "D"),
        ("I think Answer: C", "C"),
        ("Final Answer: B", "B"),
        ("My answer: D", "D"),
        # the reference fused two pairs of prefixes (missing commas): "Best option:" is not
        # stripped, so the B of "Best" is taken, exactly as on the leaderboard
        ("Best option: A", "B"),
        ("Best answer: A", "B"),  # only "answer:" is stripped, "Best" keeps its B
        ("The best option isThe correct option is C", "C"),
        # more than 10 words and no A-D at all: no answer
        ("the person on the left is holding something near the table in the room", ""),
        # more than 10 words but with a letter: the first letter counts
        ("the person on the left is holding something near the table, so C", "C"),
        ("", ""),
    ],
)
def test_extraction_matches_the_reference(response, letter):
    assert extract_mc_answer(response) == letter


def test_prefix_list_is_the_references_in_order():
    assert MC_ANSWER_PREFIXES[:6] == (
        "The best answer is",
        "The correct answer is",
        "The answer is",
        "The answer",
        "The best option isThe correct option is",
        "Best answer:Best option:",
    )
    assert len(MC_ANSWER_PREFIXES) == 13


def _pred(qid, prediction, truth, split="image"):
    return {
        "question_id": qid,
        "question": f"q{qid}",
        "model_prediction": prediction,
        "ground_truth": truth,
        "split": split,
    }


def test_accuracy_over_answered_and_strict_over_all():
    preds = [
        _pred("1", "A", "A"),
        _pred("2", "The best answer is: B", "B"),
        _pred("3", "C", "D"),
        _pred("4", "no idea at all, sorry, the picture is really too dark to tell", "A"),
        _pred("5", "D", "D", split="video"),
    ]
    original = copy.deepcopy(preds)
    score, items = score_mc(preds)
    assert preds == original  # the caller's records are not modified
    assert (score.total_num, score.valid_num, score.correct_num) == (5, 4, 3)
    assert score.accuracy == pytest.approx(75.0)
    assert score.strict_accuracy == pytest.approx(60.0)
    assert [i["extracted_model_prediction"] for i in items] == ["A", "B", "C", "", "D"]
    image = score.per_split["image"]
    assert (image.total_num, image.valid_num, image.correct_num) == (4, 3, 2)
    assert score.per_split["video"].accuracy == pytest.approx(100.0)
    assert "75.0" in score.table() and "60.0" in score.table()
    assert score._repr_html_().startswith("<pre>")
    assert json.loads(score.to_json())["per_split"]["video"]["correct_num"] == 1


def test_log_has_the_reference_field_names(tmp_path):
    preds = [_pred("1", "A", "A"), _pred("2", "B", "C")]
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(preds))
    score = score_file(path, "mc", tmp_path / "log.json")
    log = json.loads((tmp_path / "log.json").read_text())
    for name in ("accuracy", "total_num", "valid_num", "correct_num", "timestamp"):
        assert name in log
    assert log["accuracy"] == 50.0 == score.accuracy
    assert log["model_predictons"][1]["extracted_model_prediction"] == "B"
    assert list(log["model_predictons"][0])[:5] == list(preds[0])


def test_no_valid_prediction_is_reported_like_the_reference():
    score, items = score_mc([_pred("1", "", "A")])
    assert score.accuracy is None and score.strict_accuracy == 0.0
    assert mc_log(score, items)["accuracy"] == "No valid predictions."


def test_bad_prediction_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([_pred("1", "A", "A"), {"question_id": "2", "question": "q"}]))
    with pytest.raises(DatasetError, match=r"record 1 \(question_id '2'\).*'model_prediction'"):
        score_file(bad, "mc")
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        score_file(bad, "mc")
    with pytest.raises(DatasetError, match="does not exist"):
        score_file(tmp_path / "missing.json", "mc")
    bad.write_text("[]")
    with pytest.raises(InstitValueError, match="'mc' or 'oe'"):
        score_file(bad, "xx")
    with pytest.raises(InstitValueError, match="needs a judge"):
        score_file(bad, "oe")


def test_summary_table_has_a_row_per_split():
    score, _ = score_mc([_pred("1", "A", "A"), _pred("2", "B", "A"), _pred("3", "C", "C", "video")])
    header, *rows = score.table().splitlines()
    assert header.split() == ["split", "acc", "%", "strict", "%", "correct", "answered", "total"]
    assert [row.split() for row in rows] == [
        ["all", "66.7", "66.7", "2", "3", "3"],
        ["image", "50.0", "50.0", "1", "2", "2"],
        ["video", "100.0", "100.0", "1", "1", "1"],
    ]


def test_instit_bench_score_mc_command(tmp_path, capsys):
    """``instit bench score --format mc PREDICTIONS --log LOG``, as the reference's command."""
    preds = [_pred("1", "The best answer is: A", "A"), _pred("2", "C", "B", "video")]
    predictions = tmp_path / "video_mc_inference.json"
    predictions.write_text(json.dumps(preds))
    log = tmp_path / "logs" / "video_mc_evaluate.json"
    args = ["bench", "score", "--format", "mc", str(predictions), "--log", str(log)]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["all", "50.0", "50.0", "1", "2", "2"]
    assert f"log: {log}" in out
    written = json.loads(log.read_text())
    assert list(written)[:6] == [
        "accuracy", "total_num", "valid_num", "correct_num", "timestamp", "strict_accuracy"
    ]  # fmt: skip
    assert written["accuracy"] == 50.0 and written["per_split"]["video"]["correct_num"] == 0

    assert cli_main([*args, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["format"], payload["accuracy"], payload["valid_num"]) == ("mc", 50.0, 2)

    # a missing predictions file is a usage error that names it
    assert cli_main(["bench", "score", "--format", "mc", str(tmp_path / "nope.json")]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err


def test_installed_console_script_scores(tmp_path):
    predictions = tmp_path / "image_mc_inference.json"
    predictions.write_text(json.dumps([_pred("1", "D", "D"), _pred("2", "", "A")]))
    log = tmp_path / "image_mc_evaluate.json"
    script = Path(sys.executable).with_name("instit")
    done = subprocess.run(
        [str(script), "bench", "score", "--format", "mc", str(predictions), "--log", str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(log.read_text())["accuracy"] == 100.0  # the empty answer is not counted
    assert done.stdout.splitlines()[1].split() == ["all", "100.0", "50.0", "1", "1", "2"]


# -- bad input: one typed error naming the problem, never a traceback or a wrong score ----------

_GOOD = [_pred("1", "A", "A"), _pred("2", "B", "C")]


def _dump(records) -> bytes:
    return json.dumps(records).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"question_id": "1", "model_prediction": "\xff\xfe"}]', "not UTF-8 text .*0xff"),
        (_dump(_GOOD) + b"\n]]garbage", "not valid JSON .*Extra data"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'[{"question_id": ' + b"7" * 5000 + b"}]", "not valid JSON .*4300 digits"),
        (
            _dump([_pred(1, "A", "A"), _pred("2", "B", "B")]),
            "question_id is a string but earlier ones are not",
        ),
        (_dump([_pred("1", "A", "A"), _pred("1", "B", "A")]), "record 1 .* repeats record 0"),
        (_dump([_pred("1", ["A"], "A")]), "has a list model_prediction: it must be a string"),
        (_dump([_pred("1", None, "A")]), "has a NoneType model_prediction"),
        (_dump([_pred("1", "A", 1)]), "has a int ground_truth"),
        (_dump([{**_pred("1", "A", "A"), "split": ["image"]}]), "has a list split"),
        (_dump([_pred(True, "A", "A")]), "question_id must be a string or an integer"),
        (_dump([_pred(2**63, "A", "A")]), "question_id integers must fit in 64 bits"),
        (_dump([_pred(1.5, "A", "A")]), "question_id must be a string or an integer"),
        (_dump({"1": _pred("1", "A", "A")}), "must hold a JSON list"),
        (_dump(["A"]), "record 0 .* lacks the field 'question_id'"),
    ],
)
def test_bad_prediction_files_are_one_typed_error(tmp_path, capsys, data, message):
    path = tmp_path / "preds.json"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        score_file(path, "mc")
    log = tmp_path / "log.json"
    assert cli_main(["bench", "score", "--format", "mc", str(path), "--log", str(log)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err
    assert path.read_bytes() == data and not log.exists()


def test_in_memory_records_follow_the_same_rules():
    """The old behaviour: ["A"] became "['A']" and scored as a correct A; a duplicate counted
    twice."""
    with pytest.raises(DatasetError, match="list model_prediction"):
        score_mc([_pred("1", ["A"], "A")])
    with pytest.raises(DatasetError, match="repeats record 0"):
        score_mc([_pred("1", "A", "A"), _pred("1", "A", "A")])
    with pytest.raises(DatasetError, match="list of prediction dicts"):
        score_mc("A")  # type: ignore[arg-type]
    from instit.errors import InstitTypeError

    with pytest.raises(InstitTypeError, match="must be a str"):
        extract_mc_answer(["A"])  # type: ignore[arg-type]
    # the same question_id in two splits is two questions
    score, _ = score_mc([_pred("1", "A", "A"), _pred("1", "B", "B", split="video")])
    assert (score.total_num, score.correct_num) == (2, 2)


def test_a_bom_is_accepted(tmp_path):
    """Rule: a UTF-8 byte-order mark (Windows editors) is dropped, not an error."""
    path = tmp_path / "preds.json"
    path.write_bytes(b"\xef\xbb\xbf" + _dump(_GOOD))
    assert score_file(path, "mc").correct_num == 1


def test_a_folder_is_not_a_predictions_file(tmp_path):
    with pytest.raises(DatasetError, match="is a folder"):
        score_file(tmp_path, "mc")


def test_the_log_never_replaces_an_input(tmp_path, capsys):
    predictions = tmp_path / "preds.json"
    predictions.write_bytes(_dump(_GOOD))
    link = tmp_path / "link.json"
    link.symlink_to(predictions)
    hard = tmp_path / "hard.json"
    hard.hardlink_to(predictions)
    for log in (predictions, tmp_path / "." / "preds.json", link, hard):
        args = ["bench", "score", "--format", "mc", str(predictions), "--log", str(log)]
        assert cli_main(args) == 2, log
        err = capsys.readouterr().err
        assert "would replace the input" in err and len(err.strip().splitlines()) == 1
        assert predictions.read_bytes() == _dump(_GOOD)
    with pytest.raises(InstitValueError, match="would replace the input"):
        score_file(link, "mc", predictions)
    assert predictions.read_bytes() == _dump(_GOOD)


def test_the_judge_cache_never_appends_to_an_input(tmp_path):
    from instit.bench import Judge

    predictions = tmp_path / "out.json.judge.jsonl"  # the cache path of the log "out.json"
    predictions.write_bytes(_dump([_pred("1", "x", "y")]))
    judge = Judge("http://127.0.0.1:9/v1")
    with pytest.raises(InstitValueError, match=r"judge cache .* would replace the input"):
        score_file(predictions, "oe", tmp_path / "out.json", judge=judge, progress=False)
    assert predictions.read_bytes() == _dump([_pred("1", "x", "y")])


def test_log_paths_that_cannot_be_files(tmp_path, capsys):
    predictions = tmp_path / "preds.json"
    predictions.write_bytes(_dump(_GOOD))
    (tmp_path / "afile").write_text("x")
    for log, reason in (
        (tmp_path, "is a folder"),
        (tmp_path / "afile" / "log.json", "which is a file"),
        (tmp_path / "afile" / "deeper" / "log.json", "which is a file"),
    ):
        args = ["bench", "score", "--format", "mc", str(predictions), "--log", str(log)]
        assert cli_main(args) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1


def test_the_log_is_written_through_a_unique_temporary_file(tmp_path):
    """The old temporary name was ``<log>.tmp``: predictions saved under that name were
    overwritten and then renamed to the log."""
    predictions = tmp_path / "log.json.tmp"
    predictions.write_bytes(_dump(_GOOD))
    score_file(predictions, "mc", tmp_path / "log.json")
    assert predictions.read_bytes() == _dump(_GOOD)
    assert json.loads((tmp_path / "log.json").read_text())["total_num"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json", "log.json.tmp"]


def test_the_authors_predictions_pass_the_rules(reference_dir):
    """The new rules (string fields, unique string IDs) accept the authors' own file."""
    from instit.bench import read_predictions

    records = read_predictions(reference_dir / "video_oe_predictions_example.json")
    assert len(records) == 1001 and len({r["question_id"] for r in records}) == 1001


def test_unusable_log_paths(tmp_path):
    predictions = tmp_path / "preds.json"
    predictions.write_bytes(_dump(_GOOD))
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for log in (tmp_path / ("x" * 300), loop / "log.json", tmp_path / "a\0b"):
        with pytest.raises(InstitValueError):
            score_file(predictions, "mc", log)
    with pytest.raises(DatasetError, match="cannot be read"):
        score_file(tmp_path / "a\0b", "mc")


def test_records_too_deep_or_too_long_to_print_are_still_one_error():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    for qid in (deep, 10**5000):
        with pytest.raises(DatasetError, match="question_id of type"):
            score_mc([{**_pred("1", "A", "A"), "question_id": qid}])
    with pytest.raises(DatasetError, match="list model_prediction"):
        score_mc([_pred("1", deep, "A")])


def test_unpaired_surrogate_escapes_survive_into_the_log(tmp_path):
    """A ``\\ud800`` escape is valid JSON but not UTF-8 text: the log keeps it escaped."""
    predictions = tmp_path / "preds.json"
    predictions.write_text(
        '[{"question_id": "1", "question": "q\\ud800", "model_prediction": "A",'
        ' "ground_truth": "A", "note": "\\udfff"}]'
    )
    log = tmp_path / "log.json"
    assert score_file(predictions, "mc", log).correct_num == 1
    item = json.loads(log.read_text(encoding="utf-8"))["model_predictons"][0]
    assert (item["question"], item["note"]) == ("q\ud800", "\udfff")


def test_extra_fields_json_cannot_hold_are_one_error(tmp_path):
    from instit.bench.score import write_log

    with pytest.raises(DatasetError, match="cannot be written as JSON"):
        write_log(tmp_path / "log.json", {"model_predictons": [{"extra": {1, 2}}]})
    assert not list(tmp_path.iterdir())


def test_the_log_gets_ordinary_permissions(tmp_path):
    import os
    import stat

    predictions = tmp_path / "preds.json"
    predictions.write_bytes(_dump(_GOOD))
    log = tmp_path / "log.json"
    score_file(predictions, "mc", log)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(log.stat().st_mode) == 0o666 & ~umask
