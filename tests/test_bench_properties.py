"""Property tests: the scorers and readers give a result or an InstitError, never anything else.

Deterministic (``derandomize=True``) with a bounded number of examples, so they run in CI in
seconds.  The open-ended scorer talks to a real judge server on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from instit.bench import (
    Judge,
    MCScore,
    OEScore,
    extract_mc_answer,
    read_predictions,
    score_mc,
    score_oe as score_oe_,
)
from instit.bench.judge import parse_score
from instit.errors import InstitError, JudgeError

SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,  # nothing written into the work tree
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
answers = st.sampled_from(["A", "B", "C", "D", "", "The answer is B", "I think Answer: C"])
texts = st.text(max_size=40) | answers
records = st.fixed_dictionaries(
    {
        "question_id": st.text(max_size=3) | st.integers(-5, 5) | json_values,
        "question": texts | json_values,
        "model_prediction": texts | json_values,
        "ground_truth": answers | json_values,
    },
    optional={"split": st.sampled_from(["image", "video"]) | json_values},
)
prediction_lists = st.lists(records | json_values, max_size=6)


def _check_mc(score: MCScore, total: int) -> None:
    assert score.total_num == total
    assert 0 <= score.correct_num <= score.valid_num <= total
    for value in (score.accuracy, score.strict_accuracy):
        assert value is None or 0.0 <= value <= 100.0


@SETTINGS
@given(st.text())
def test_mc_extraction_gives_a_letter_of_the_text_or_nothing(text):
    letter = extract_mc_answer(text)
    assert letter in ("", "A", "B", "C", "D")
    assert letter in text  # removing prefixes never creates a letter


@SETTINGS
@given(prediction_lists | json_values)
def test_score_mc_gives_a_score_or_an_institerror(predictions):
    try:
        score, items = score_mc(predictions)
    except InstitError:
        return
    _check_mc(score, len(predictions))
    assert all(isinstance(p["model_prediction"], str) for p in predictions)
    assert len(items) == len(predictions)


def _mutations() -> st.SearchStrategy[bytes]:
    valid = json.dumps(
        [
            {"question_id": "1", "question": "q", "model_prediction": "A", "ground_truth": "A"},
            {"question_id": "2", "question": "q", "model_prediction": "x", "ground_truth": "B"},
        ]
    ).encode()

    @st.composite
    def cut_or_spliced(draw: st.DrawFn) -> bytes:
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(max_size=8)) + valid[at + draw(st.integers(0, 4)) :]

    return (
        st.binary(max_size=64)
        | cut_or_spliced()
        | prediction_lists.map(lambda v: json.dumps(v).encode())
        | st.just(b"[" * 5000)
        | st.just(b"[" + b"9" * 5000 + b"]")
    )


@SETTINGS
@given(_mutations())
def test_read_predictions_gives_records_or_an_institerror(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "preds.json"
        path.write_bytes(data)
        try:
            records_read = read_predictions(path)
        except InstitError:
            return
    score, _ = score_mc(records_read)  # what was read is scoreable
    _check_mc(score, len(records_read))


@SETTINGS
@given(st.text(max_size=60) | json_values.map(json.dumps))
def test_parse_score_gives_a_score_in_range_or_a_judgeerror(content):
    try:
        score = parse_score(content)
    except JudgeError:
        return
    assert math.isfinite(score) and 0.0 <= score <= 1.0


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        content = json.dumps({"sample_score": 0.5})
        body = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _check_oe(score: OEScore, items: list[dict], total: int) -> None:
    assert score.total_num == total == score.valid_num + score.invalid_num
    assert score.accuracy is None or 0.0 <= score.accuracy <= 100.0
    assert all(0.0 <= i["score"] <= 1.0 for i in items if i["valid"])


cache_lines = st.lists(
    st.text(max_size=20)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries(
        {"key": st.text(max_size=4), "valid": json_values, "score": json_values}
    ).map(json.dumps),
    max_size=3,
)


@SETTINGS
@given(
    predictions=prediction_lists,
    edited_score=json_values,
    extra_lines=cache_lines,
    cut=st.booleans(),
)
def test_score_oe_gives_a_score_or_an_institerror(
    judge_url, predictions, edited_score, extra_lines, cut
):
    judge = Judge(judge_url, max_retries=0, timeout=5.0, concurrency=2)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "log.json.judge.jsonl"
        try:
            score, items = score_oe_(predictions, judge, cache=cache, progress=False)
        except InstitError:
            return
        _check_oe(score, items, len(predictions))
        # edit the cache as a person or a crash might, then resume from it
        lines = cache.read_text(encoding="utf-8").splitlines() if cache.exists() else []
        if lines:
            entry = json.loads(lines[0])
            entry["score"] = edited_score
            lines[0] = json.dumps(entry)
        text = "\n".join([*lines, *extra_lines]) + "\n"
        cache.write_text(text[:-5] if cut and len(text) > 5 else text, encoding="utf-8")
        try:
            score, items = score_oe_(predictions, judge, cache=cache, progress=False)
        except InstitError:
            return
        _check_oe(score, items, len(predictions))


@SETTINGS
@given(
    base_url=st.text(max_size=30) | st.sampled_from(["http://127.0.0.1:1/v1", "https://x/v1"]),
    timeout=st.floats(allow_nan=True) | st.integers(-3, 10**13),
    concurrency=st.integers(-3, 10**6),
    backoff=st.floats(allow_nan=True),
)
def test_judge_settings_give_a_judge_or_an_institerror(base_url, timeout, concurrency, backoff):
    try:
        judge = Judge(base_url or "x", timeout=timeout, concurrency=concurrency, backoff=backoff)
    except InstitError:
        return
    assert judge.url.startswith(("http://", "https://")) and judge.url.endswith("/completions")
    assert 0 < judge.timeout <= 86400 and 1 <= judge.concurrency <= 256
