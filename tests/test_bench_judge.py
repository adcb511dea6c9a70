"""The open-ended judge against a real HTTP server on 127.0.0.1, failures included."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from instit.bench import Judge, score_oe
from instit.bench.judge import JudgeConfigError, parse_score
from instit.bench.protocol import DEFAULT_JUDGE_MODEL, JUDGE_PROMPTS
from instit.cli import main as cli_main
from instit.errors import DatasetError, JudgeError

SENTINEL = "sk-SENTINEL-7f3a9c-never-log-me"


class _Handler(BaseHTTPRequestHandler):
    server: FakeJudgeServer

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def _reply(self, content: str, refusal: str | None = None) -> None:
        message = {"role": "assistant", "content": content, "refusal": refusal}
        body = {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message}],
        }
        self._send(200, json.dumps(body).encode())

    def do_GET(self):  # what urllib sends after following a 301/302/303
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "auth": self.headers.get("Authorization")}
            )
        self._reply('{"sample_score": 1.0}')

    def _trickle(self, head: bytes, body: bytes) -> None:
        """Send ``head`` then ``body`` one byte every 0.25 s (until the client leaves)."""
        try:
            self.wfile.write(head)
            self.wfile.flush()
            for i in range(len(body)):
                time.sleep(0.25)
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        if self.path.startswith("/moved/"):
            with srv.lock:
                srv.requests.append({"path": self.path, "auth": auth, "body": body})
            self._reply('{"sample_score": 0.7}')
            return
        item = json.loads(body["messages"][0]["content"][1]["text"])
        response = item["tester_response"]
        with srv.lock:
            srv.requests.append({"path": self.path, "auth": auth, "body": body, "item": item})
            srv.counts[response] = srv.counts.get(response, 0) + 1
            count = srv.counts[response]
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            if srv.required_key is not None and auth != f"Bearer {srv.required_key}":
                self._send(401, b'{"error": {"message": "invalid api key"}}')
                return
            kind, _, arg = response.partition(":")
            if srv.delay:
                time.sleep(srv.delay)
            if kind == "score":
                self._reply(json.dumps({"sample_score": float(arg)}))
            elif kind == "flaky":
                fails, _, score = arg.partition(":")
                if count <= int(fails):
                    self._send(500, b'{"error": "overloaded"}')
                else:
                    self._reply(json.dumps({"sample_score": float(score)}))
            elif kind == "always500":
                self._send(503, b"upstream down")
            elif kind == "slow":
                time.sleep(0.6)
                self._reply('{"sample_score": 0.5}')
            elif kind == "slowonce":
                if count == 1:
                    time.sleep(0.6)
                self._reply('{"sample_score": 0.3}')
            elif kind == "malformed":
                self._send(200, b"<html>this is not json")
            elif kind == "nonnumeric":
                self._reply('{"sample_score": "quite good"}')
            elif kind == "outofrange":
                self._reply('{"sample_score": 1.5}')
            elif kind == "refuse":
                self._reply("", refusal="I cannot help with that")
            elif kind == "echo500":
                self._send(500, f"bad gateway for {auth}".encode())
            elif kind == "badrequest":
                self._send(400, b'{"error": "content filter"}')
            elif kind == "echolong":  # the key after 170 characters, where a 200 cut leaks it
                self._send(500, ("x" * 170 + f" {auth} " + "y" * 100).encode())
            elif kind == "echoprefix":  # a key cut short, as OpenAI's 401 messages show it
                self._send(503, f"key {auth[:20]}... is overloaded".encode())
            elif kind == "echocontent":
                self._reply("z" * 190 + f"{auth} not a score")
            elif kind == "echorefusal":
                self._reply("", refusal="y" * 190 + f"{auth}")
            elif kind == "redirect":
                code, _, location = arg.partition(":")
                self.send_response(int(code))
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "ratelimit":
                times, _, retry_after = arg.partition(":")
                if count <= int(times):
                    self.send_response(429)
                    self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._reply('{"sample_score": 0.4}')
            elif kind == "trickle":  # a valid reply, one byte every 0.25 s
                reply = json.dumps(
                    {"choices": [{"message": {"content": '{"sample_score": 0.2}'}}]}
                ).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(reply)}\r\n\r\n"
                self._trickle(head.encode(), reply)
            elif kind == "trickleheaders":
                self._trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 200)
            elif kind == "huge":  # 2 MiB of valid JSON
                content = json.dumps({"sample_score": 0.5, "pad": "p" * (2 << 20)})
                self._reply(content)
            else:
                self._reply('{"sample_score": 0.0}')
        finally:
            with srv.lock:
                srv.inflight -= 1


class FakeJudgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0
        self.delay = 0.0
        self.required_key: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextlib.contextmanager
def serving() -> Iterator[FakeJudgeServer]:
    """A :class:`FakeJudgeServer` answering on 127.0.0.1 while the block runs."""
    srv = FakeJudgeServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


def _judge(server, monkeypatch, **kwargs) -> Judge:
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", SENTINEL)
    settings = {"timeout": 0.3, "max_retries": 2, "backoff": 0.001, "concurrency": 4}
    settings.update(kwargs)
    return Judge(server.base_url, api_key_env="INSTIT_TEST_JUDGE_KEY", **settings)


def _pred(qid, response, split="video"):
    return {
        "question_id": qid,
        "question": f"What does [{qid}] do at <2>?",
        "model_prediction": response,
        "ground_truth": "[1] waves at <2>.",
        "split": split,
    }


def test_request_mirrors_the_reference(server, monkeypatch):
    judge = _judge(server, monkeypatch)
    result = judge.judge("image", "Q [1]?", "GT “[1]”", "score:0.8")
    assert (result.score, result.valid, result.error, result.attempts) == (0.8, True, None, 1)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {SENTINEL}"
    body = request["body"]
    assert body["model"] == DEFAULT_JUDGE_MODEL == "gpt-4o-2024-08-06"
    content = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "user" and len(body["messages"]) == 1
    assert content[0] == {"type": "text", "text": JUDGE_PROMPTS["image"]}
    assert json.loads(content[1]["text"]) == {
        "question": "Q [1]?",
        "ground_truth_answer": "GT “[1]”",
        "tester_response": "score:0.8",
    }
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["sample_score"]["type"] == "number"
    assert schema["required"] == ["sample_score"]


def test_500s_are_retried_with_exponential_backoff_and_jitter(server, monkeypatch):
    delays: list[float] = []
    judge = _judge(server, monkeypatch, max_retries=3, backoff=0.01, sleep=delays.append)
    result = judge.judge("video", "q", "gt", "flaky:3:0.6")
    assert (result.score, result.valid, result.attempts) == (0.6, True, 4)
    assert len(delays) == 3
    for attempt, delay in enumerate(delays):
        assert 0.01 * 2**attempt <= delay <= 0.02 * 2**attempt  # base * 2^n * (1 + jitter)


def test_failures_become_invalid_items_with_reasons(server, monkeypatch):
    judge = _judge(server, monkeypatch, max_retries=1)
    cases = {
        "always500": "HTTP 503",
        "slow": "timed out",
        "malformed": "malformed chat-completions response",
        "nonnumeric": "non-numeric sample_score",
        "outofrange": "outside [0, 1]",
        "refuse": "refused",
        "badrequest": "HTTP 400",
    }
    for response, reason in cases.items():
        result = judge.judge("video", "q", "gt", response)
        assert not result.valid and result.score is None, response
        assert reason in result.error, (response, result.error)
    assert server.counts["always500"] == 2  # retried
    assert server.counts["badrequest"] == 1  # a 400 is not retried
    assert server.counts["slow"] == 2


def test_a_timeout_then_success_is_valid(server, monkeypatch):
    result = _judge(server, monkeypatch).judge("video", "q", "gt", "slowonce")
    assert (result.score, result.valid, result.attempts) == (0.3, True, 2)


def test_bad_key_stops_scoring(server, monkeypatch):
    server.required_key = "the-right-key"
    judge = _judge(server, monkeypatch)
    with pytest.raises(JudgeConfigError, match="401") as info:
        judge.judge("image", "q", "gt", "score:1")
    assert SENTINEL not in str(info.value)
    preds = [_pred(str(i), "score:1") for i in range(6)]
    with pytest.raises(JudgeConfigError):
        score_oe(preds, judge, progress=False)


def test_concurrent_requests(server, monkeypatch):
    server.delay = 0.1
    judge = _judge(server, monkeypatch, concurrency=4, timeout=2.0)
    preds = [_pred(f"{i:02d}", f"score:0.{i % 10}") for i in range(12)]
    _, items = score_oe(preds, judge, progress=False)
    assert server.max_inflight > 1  # requests overlapped
    assert len(server.requests) == 12
    assert [i["score"] for i in items] == [i % 10 / 10 for i in range(12)]  # input order kept


def test_scores_invalid_counting_log_fields_and_resume(server, monkeypatch, tmp_path):
    judge = _judge(server, monkeypatch, max_retries=0)
    preds = [
        _pred("1", "score:1.0"),
        _pred("2", "score:0.5", split="image"),
        _pred("3", "always500"),
        _pred("4", "score:0.0"),
    ]
    cache = tmp_path / "log.json.judge.jsonl"
    score, items = score_oe(preds, judge, cache=cache, progress=False)
    assert (score.total_num, score.valid_num, score.invalid_num) == (4, 3, 1)
    assert score.accuracy == pytest.approx(50.0)  # (1.0 + 0.5 + 0.0) / 3, the failure left out
    assert items[2]["valid"] is False and items[2]["score"] is None
    assert "HTTP 503" in items[2]["error_in_gpt_eval"]
    assert items[0]["error_in_gpt_eval"] == "No Error." and items[3]["score"] == 0.0
    assert score.per_split["image"].accuracy == pytest.approx(50.0)
    assert score.per_split["video"].invalid_num == 1
    assert "invalid" in score.table()
    assert len(server.requests) == 4

    # resume: valid verdicts are reused, the failed item is judged again; a cut last line too
    with open(cache, "a", encoding="utf-8") as f:
        f.write('{"key": "abc", "sco')
    server.counts.clear()
    score2, _ = score_oe(preds, judge, cache=cache, progress=False)
    assert len(server.requests) == 5 and server.counts == {"always500": 1}
    assert score2.invalid_num == 1


def test_open_ended_needs_a_split(server, monkeypatch):
    judge = _judge(server, monkeypatch)
    pred = _pred("1", "score:1")
    del pred["split"]
    with pytest.raises(DatasetError, match="needs 'image' or 'video'"):
        score_oe([pred], judge, progress=False)


def test_parse_score():
    assert parse_score('{"sample_score": 0.7}') == 0.7
    assert parse_score('```json\n{"sample_score": 1}\n```') == 1.0
    assert parse_score('{"sample_score": "0.4"}') == 0.4
    for bad in ["0.7", '{"score": 1}', '{"sample_score": true}', '{"sample_score": NaN}', "[]"]:
        with pytest.raises(JudgeError):
            parse_score(bad)


def test_missing_key_for_openai_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("INSTIT_NO_SUCH_KEY", raising=False)
    with pytest.raises(JudgeError, match="INSTIT_NO_SUCH_KEY"):
        Judge("https://api.openai.com/v1", api_key_env="INSTIT_NO_SUCH_KEY")


def test_cli_scores_and_never_writes_or_prints_the_key(
    server, monkeypatch, tmp_path, capsys, caplog
):
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", SENTINEL)
    preds = [
        _pred("1", "score:0.9", split="image"),
        _pred("2", "echo500"),  # the server echoes the Authorization header in its error
        _pred("3", "flaky:1:0.1"),
    ]
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps(preds))
    log = tmp_path / "log.json"
    args = [
        "score", "--format", "oe", str(predictions), "--log", str(log),
        "--base-url", server.base_url, "--api-key-env", "INSTIT_TEST_JUDGE_KEY",
        "--timeout", "2", "--retries", "1", "--backoff", "0.01", "--concurrency", "2",
        "--json",
    ]  # fmt: skip
    assert cli_main(["bench", *args]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["valid_num"], summary["invalid_num"]) == (2, 1)
    assert summary["accuracy"] == pytest.approx(50.0)
    data = json.loads(log.read_text())
    for name in ("accuracy", "total_num", "valid_num", "timestamp", "gpt_prompt"):
        assert name in data
    assert data["model_predictons"][1]["valid"] is False
    assert "***" in data["model_predictons"][1]["error_in_gpt_eval"]
    assert all(r["auth"] == f"Bearer {SENTINEL}" for r in server.requests)  # it was used
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"log.json", "log.json.judge.jsonl"}
    for path in written:
        assert SENTINEL not in path.read_text(encoding="utf-8"), path
    assert SENTINEL not in captured.out + captured.err + caplog.text

    # a rejected key: exit code 1, and the message does not contain it either
    server.required_key = "another-key"
    log.unlink()
    Path(str(log) + ".judge.jsonl").unlink()
    assert cli_main(["bench", *args]) == 1
    captured = capsys.readouterr()
    assert "401" in captured.err and SENTINEL not in captured.out + captured.err
    assert not log.exists()


def test_reference_predictions_round_trip(server, monkeypatch, reference_dir):
    """The authors' 1001 predictions are read and judged item by item, order kept."""
    preds = json.loads((reference_dir / "video_oe_predictions_example.json").read_text())
    assert len(preds) == 1001
    judge = _judge(server, monkeypatch, concurrency=8)
    score, items = score_oe(preds[:40], judge, progress=False)
    assert score.total_num == score.valid_num == 40
    assert [i["question_id"] for i in items] == [p["question_id"] for p in preds[:40]]
    sent = {
        json.loads(r["body"]["messages"][0]["content"][1]["text"])["question"]
        for r in server.requests
    }
    assert sent == {p["question"] for p in preds[:40]}


# -- hardening: redirects, key scrubbing, deadlines, reply size, URLs, Retry-After -------------


@pytest.fixture
def elsewhere():
    """A second server: where a redirect would send the key."""
    with serving() as srv:
        yield srv


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_refused_and_the_key_goes_nowhere_else(server, elsewhere, monkeypatch, code):
    judge = _judge(server, monkeypatch)
    target = f"{elsewhere.base_url}/chat/completions"
    with pytest.raises(JudgeConfigError, match=f"redirects \\(HTTP {code}\\) to .*--base-url"):
        judge.judge("image", "q", "gt", f"redirect:{code}:{target}")
    assert elsewhere.requests == []
    preds = [_pred(str(i), f"redirect:{code}:{target}") for i in range(3)]
    with pytest.raises(JudgeConfigError):  # scoring stops: every item would redirect
        score_oe(preds, judge, progress=False)
    assert elsewhere.requests == []


def test_same_origin_redirects_are_followed_only_when_asked(server, elsewhere, monkeypatch):
    moved = "/moved/v1/chat/completions"
    with pytest.raises(JudgeConfigError, match="redirects"):
        _judge(server, monkeypatch).judge("image", "q", "gt", f"redirect:307:{moved}")
    judge = _judge(server, monkeypatch, follow_redirects=True)
    result = judge.judge("image", "q", "gt", f"redirect:308:{moved}")
    assert (result.score, result.valid) == (0.7, True)
    assert server.requests[-1]["path"] == moved
    assert server.requests[-1]["auth"] == f"Bearer {SENTINEL}"
    # another origin (here: another port), or a 302, is refused even then
    other = f"{elsewhere.base_url}/chat/completions"
    with pytest.raises(JudgeConfigError, match="same origin only"):
        judge.judge("image", "q", "gt", f"redirect:307:{other}")
    with pytest.raises(JudgeConfigError, match="same origin only"):
        judge.judge("image", "q", "gt", f"redirect:302:{moved}")
    assert elsewhere.requests == []


def _no_key_in(text: str) -> None:
    assert SENTINEL not in text
    assert SENTINEL[:8] not in text  # no long prefix either


def test_the_key_echoed_back_is_scrubbed_before_cutting(server, monkeypatch, tmp_path):
    judge = _judge(server, monkeypatch, max_retries=0)
    for response in ("echolong", "echoprefix", "echocontent", "echorefusal", "echo500"):
        result = judge.judge("video", "q", "gt", response)
        assert not result.valid and "***" in result.error, response
        _no_key_in(result.error)
        assert len(result.error) <= 300
    preds = [_pred(str(i), r) for i, r in enumerate(["echolong", "echoprefix", "echocontent"])]
    preds.append(_pred("9", "score:0.5"))
    log = tmp_path / "log.json"
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps(preds))
    from instit.bench import score_file

    score_file(predictions, "oe", log, judge=judge, progress=False)
    for path in (log, tmp_path / "log.json.judge.jsonl"):
        _no_key_in(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", ["trickle", "trickleheaders"])
def test_timeout_is_a_deadline_for_the_whole_request(server, monkeypatch, kind):
    judge = _judge(server, monkeypatch, timeout=1.0, max_retries=0)
    started = time.monotonic()
    result = judge.judge("video", "q", "gt", kind)
    elapsed = time.monotonic() - started
    assert not result.valid and "timed out" in result.error
    assert elapsed < 2.5  # a per-read timeout would wait for every byte (15 s and more)


def test_replies_are_read_up_to_a_cap(server, monkeypatch):
    from instit.bench.judge import MAX_REPLY_BYTES

    result = _judge(server, monkeypatch, max_retries=0).judge("video", "q", "gt", "huge")
    assert not result.valid
    assert f"larger than {MAX_REPLY_BYTES} bytes" in result.error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),  # honoured, although the backoff alone would wait 1-2 ms
        ("100000", 5.0),  # bounded by max_backoff
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # a date in the past: the backoff
        ("soon", None),  # unreadable: the backoff
    ],
)
def test_429_retry_after_is_honoured_and_bounded(server, monkeypatch, value, expected):
    delays: list[float] = []
    judge = _judge(
        server, monkeypatch, backoff=0.001, max_backoff=5.0, sleep=delays.append, max_retries=2
    )
    result = judge.judge("video", "q", "gt", f"ratelimit:1:{value}")
    assert (result.score, result.attempts) == (0.4, 2)
    if expected is None:
        assert delays[0] <= 0.002
    else:
        assert delays == [expected]


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("file:///etc/passwd", "not an http"),
        ("ftp://example.com/v1", "not an http"),
        ("garbage", "not an http"),
        ("http://", "names no host"),
        ("http://127.0.0.1:99999/v1", "invalid port"),
        ("http://[::1/v1", "cannot be parsed"),
        ("http://user:s3cr3t@127.0.0.1/v1", "holds credentials"),
        ("http://127.0.0.1/v1?key=s3cr3t", "query or fragment"),
        ("http://127.0.0.1/v1\n", "control characters"),
        ("ftp://user:s3cr3t@127.0.0.1/v1", "not an http"),
        ("http://user:s3cr3t@127.0.0.1 /v1", "spaces"),
    ],
)
def test_only_http_base_urls(monkeypatch, base_url, reason):
    from instit.bench.judge import JudgeSettingsError

    with pytest.raises(JudgeSettingsError, match=reason) as info:
        Judge(base_url)
    assert isinstance(info.value, ValueError)
    assert "s3cr3t" not in str(info.value) and "--base-url" in str(info.value)
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)  # the same from the environment
    with pytest.raises(JudgeSettingsError, match=reason) as info:
        Judge()
    assert "s3cr3t" not in str(info.value) and "$OPENAI_BASE_URL" in str(info.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"timeout": 0},
        {"timeout": 1e12},
        {"concurrency": 0},
        {"concurrency": 10_000},
        {"max_retries": -1},
        {"backoff": -1.0},
        {"max_backoff": float("nan")},
        {"timeout": "5"},
        {"concurrency": 2.5},
    ],
)
def test_bad_settings_are_usage_errors(server, settings):
    from instit.bench.judge import JudgeSettingsError

    with pytest.raises(JudgeSettingsError):
        Judge(server.base_url, **settings)


def test_a_key_with_a_newline_inside_is_refused_without_showing_it(server, monkeypatch):
    from instit.bench.judge import JudgeSettingsError

    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", "sk-abc\ndef-secret")
    with pytest.raises(JudgeSettingsError, match="INSTIT_TEST_JUDGE_KEY") as info:
        Judge(server.base_url, api_key_env="INSTIT_TEST_JUDGE_KEY")
    assert "secret" not in str(info.value)
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", f"  {SENTINEL}\n")  # surrounding space: dropped
    judge = Judge(server.base_url, api_key_env="INSTIT_TEST_JUDGE_KEY")
    assert judge.judge("image", "q", "gt", "score:0.5").valid
    assert server.requests[-1]["auth"] == f"Bearer {SENTINEL}"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_judge_stops_scoring(monkeypatch):
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", SENTINEL)
    judge = Judge(
        f"http://127.0.0.1:{_free_port()}/v1",
        api_key_env="INSTIT_TEST_JUDGE_KEY",
        max_retries=1,
        backoff=0.001,
    )
    with pytest.raises(JudgeConfigError, match=r"cannot reach the judge .*all 2 attempts"):
        judge.judge("image", "q", "gt", "a")
    with pytest.raises(JudgeConfigError, match="cannot reach"):
        score_oe([_pred(str(i), "a") for i in range(20)], judge, progress=False)


def test_a_judge_that_answered_and_then_drops_out_gives_invalid_items(server, monkeypatch):
    judge = _judge(server, monkeypatch, max_retries=0)
    assert judge.judge("image", "q", "gt", "score:0.5").valid
    server.shutdown()
    server.server_close()
    result = judge.judge("image", "q", "gt", "score:0.5")
    assert not result.valid and "connection failed" in result.error


def _score_args(predictions, log, base_url, *extra):
    return [
        "bench", "score", "--format", "oe", str(predictions), "--log", str(log),
        "--base-url", base_url, "--api-key-env", "INSTIT_TEST_JUDGE_KEY",
        "--retries", "1", "--backoff", "0.001", "--no-progress", *extra,
    ]  # fmt: skip


def test_cli_unreachable_or_useless_judge_exits_1_with_a_message(
    server, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", SENTINEL)
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps([_pred("1", "always500"), _pred("2", "always500")]))
    log = tmp_path / "log.json"
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    assert cli_main(_score_args(predictions, log, dead)) == 1
    err = capsys.readouterr().err
    assert "cannot reach the judge" in err and len(err.strip().splitlines()) == 1
    # reachable, but nothing could be judged: the log is written, and the exit code says so
    assert cli_main(_score_args(predictions, log, server.base_url)) == 1
    err = capsys.readouterr().err
    assert "scored none of the 2 answers" in err and len(err.strip().splitlines()) == 1
    assert json.loads(log.read_text())["invalid_num"] == 2
    # some judged: exit 0 and a warning line
    predictions.write_text(json.dumps([_pred("1", "always500"), _pred("2", "score:0.5")]))
    assert cli_main(_score_args(predictions, log, server.base_url)) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 2 answers could not be judged" in err


@pytest.mark.parametrize(
    "extra",
    [
        ["--timeout", "nan"],
        ["--timeout", "-1"],
        ["--concurrency", "0"],
        ["--retries", "-1"],
        ["--base-url", "garbage"],
        ["--base-url", "file:///etc/passwd"],
    ],
)
def test_cli_bad_judge_settings_exit_2_in_one_line(server, monkeypatch, tmp_path, capsys, extra):
    monkeypatch.setenv("INSTIT_TEST_JUDGE_KEY", SENTINEL)
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps([_pred("1", "score:1")]))
    args = _score_args(predictions, tmp_path / "log.json", server.base_url, *extra)
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "instit bench score: error:" in err
    assert extra[0] in err  # the message names the flag
    assert server.requests == [] and not (tmp_path / "log.json").exists()


def _cached_run(server, monkeypatch, tmp_path):
    judge = _judge(server, monkeypatch, max_retries=0)
    preds = [_pred("1", "score:0.5"), _pred("2", "score:1.0")]
    cache = tmp_path / "log.json.judge.jsonl"
    score, _ = score_oe(preds, judge, cache=cache, progress=False)
    assert score.accuracy == pytest.approx(75.0)
    # concurrent requests finish in any order: put the 0.5 verdict first, as the edits expect
    lines = sorted(cache.read_text().splitlines(), key=lambda line: json.loads(line)["score"])
    cache.write_text("\n".join(lines) + "\n")
    return judge, preds, cache


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [lines[0].replace("0.5", "5.0"), lines[1]], "line 1 has the score 5.0"),
        (lambda lines: [lines[0], lines[1].replace("1.0", "NaN")], "line 2 has the score nan"),
        (lambda lines: ['{"key": "k", "sco', *lines], "line 1 is not valid JSON"),
        (
            lambda lines: [lines[0], "[" * 50_000, lines[1]],
            r"line 2 is not valid JSON \(nested too deeply",
        ),
        (lambda lines: [lines[0].replace("true", '"yes"'), lines[1]], "no true/false valid"),
        (lambda lines: [lines[0].replace('"score": 0.5', '"score": "0.5"'), lines[1]], "numeric"),
        (lambda lines: ["[]", *lines], "line 1 is not a verdict"),
    ],
)
def test_a_bad_judge_cache_line_is_named_not_trusted(server, monkeypatch, tmp_path, edit, message):
    """The old behaviour: a score edited to 5.0 gave 213 %, a corrupt line a raw JSONDecodeError."""
    judge, preds, cache = _cached_run(server, monkeypatch, tmp_path)
    cache.write_text("\n".join(edit(cache.read_text().splitlines())) + "\n")
    before = cache.read_bytes()
    requests = len(server.requests)
    with pytest.raises(DatasetError, match=f"judge cache {cache}.*{message}.*delete that line"):
        score_oe(preds, judge, cache=cache, progress=False)
    assert cache.read_bytes() == before and len(server.requests) == requests


def test_a_non_utf8_judge_cache_and_blank_lines(server, monkeypatch, tmp_path):
    judge, preds, cache = _cached_run(server, monkeypatch, tmp_path)
    text = cache.read_text()
    cache.write_text("\n" + text.replace("\n", "\n\n"))  # blank lines: harmless, skipped
    requests = len(server.requests)
    score, _ = score_oe(preds, judge, cache=cache, progress=False)
    assert score.accuracy == pytest.approx(75.0) and len(server.requests) == requests
    cache.write_bytes(b"\xff" + text.encode())
    with pytest.raises(DatasetError, match="not UTF-8"):
        score_oe(preds, judge, cache=cache, progress=False)
    cache.unlink()
    cache.mkdir()
    with pytest.raises(DatasetError, match="is a folder"):
        score_oe(preds, judge, cache=cache, progress=False)


def test_non_string_fields_are_refused_before_judging(server, monkeypatch):
    judge = _judge(server, monkeypatch)
    with pytest.raises(DatasetError, match="list model_prediction"):
        score_oe([_pred("1", ["score:1"])], judge, progress=False)
    from instit.errors import InstitTypeError

    with pytest.raises(InstitTypeError, match="prediction must be a str"):
        judge.judge("image", "q", "gt", ["score:1"])  # type: ignore[arg-type]
    assert server.requests == []


def test_a_fatal_error_ends_the_waiting_retries_at_once(server, monkeypatch):
    judge = _judge(server, monkeypatch, max_retries=3, backoff=5.0, timeout=2.0, concurrency=4)
    preds = [_pred(str(i), "always500") for i in range(3)]
    preds.append(_pred("9", f"redirect:302:{server.base_url}/x"))
    started = time.monotonic()
    with pytest.raises(JudgeConfigError, match="redirects"):
        score_oe(preds, judge, progress=False)
    assert time.monotonic() - started < 3.0  # the 500s were waiting 5-10 s before retrying
