"""The open-ended judge: any OpenAI-compatible ``/chat/completions`` endpoint, stdlib only.

Each request mirrors the authors' ``evaluate.py``: one user message whose content is two text
parts, the judge prompt of the split and ``json.dumps({"question", "ground_truth_answer",
"tester_response"})``, with a structured-output schema ``{"sample_score": number}`` (what the
OpenAI SDK's ``beta.chat.completions.parse(response_format=SampleScore)`` sends).  The score is
read from the message content as JSON, like the SDK's parser does.

The API key is read from an environment variable when the judge is created, kept in a private
attribute, sent only in the ``Authorization`` header of requests to ``base_url`` (redirects are
never followed with it to another origin) and scrubbed, with any long prefix of it, from every
error message before that message is cut to length.  ``timeout`` is a deadline for the whole
request, replies are read up to :data:`MAX_REPLY_BYTES`.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import io
import json
import math
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from instit import _json
from instit.bench.protocol import DEFAULT_JUDGE_MODEL, JUDGE_PROMPTS
from instit.errors import InstitTypeError, InstitValueError, JudgeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: HTTP statuses worth retrying (rate limits, overload, server errors).
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: HTTP statuses that mean the configuration is wrong: scoring stops at once.
FATAL_STATUSES = frozenset({401, 403, 404})
#: Redirects that re-send the same POST; followed only with ``follow_redirects`` and same origin.
FOLLOWED_REDIRECTS = frozenset({307, 308})
#: Largest judge reply read (a chat-completions reply is a few KiB); larger ones are unusable.
MAX_REPLY_BYTES = 1 << 20
#: Largest ``timeout`` accepted, in seconds (one day).
MAX_TIMEOUT = 86400.0
#: Most requests in flight at once.
MAX_CONCURRENCY = 256
#: A key prefix this long (or the whole key, if shorter) is scrubbed wherever it appears.
SCRUB_PREFIX_CHARS = 8
_MAX_REDIRECTS = 5
_ERROR_CHARS = 300
_ERROR_BODY_BYTES = 1 << 16

_SCORE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "SampleScore",
        "schema": {
            "type": "object",
            "properties": {"sample_score": {"title": "Sample Score", "type": "number"}},
            "required": ["sample_score"],
            "title": "SampleScore",
            "additionalProperties": False,
        },
        "strict": True,
    },
}


class JudgeConfigError(JudgeError):
    """The endpoint refuses every request (bad key, wrong URL or model, a redirect, nothing
    listening): stop scoring."""


class JudgeSettingsError(JudgeError, InstitValueError):
    """A :class:`Judge` setting is invalid (URL, timeout, concurrency ...): a usage error."""


@dataclass(frozen=True)
class JudgeResult:
    """The judge's verdict on one answer: a score, or why there is none (``valid=False``)."""

    score: float | None
    valid: bool
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def parse_score(content: str) -> float:
    """The ``sample_score`` in a judge reply (JSON object text); raises :class:`JudgeError`.

    Like the SDK's structured-output parser, the content must be a JSON object with a numeric
    ``sample_score`` (a number, or a string holding one).  The score must lie in [0, 1].
    """
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    data = _json.loads(text, f"judge reply {content[:200]!r}", error=JudgeError)
    value = data.get("sample_score") if isinstance(data, dict) else None
    if isinstance(value, bool) or value is None:
        raise JudgeError(f"judge reply has no numeric sample_score: {content[:200]!r}")
    try:
        score = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise JudgeError(f"judge reply has a non-numeric sample_score: {value!r:.200}") from exc
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise JudgeError(f"judge score {score} is outside [0, 1]")
    return score


def judge_input(question: str, ground_truth: str, prediction: str) -> str:
    """The per-item text the reference sends after the judge prompt."""
    return json.dumps(
        {
            "question": question,
            "ground_truth_answer": ground_truth,
            "tester_response": prediction,
        }
    )


def _check_base_url(base: object, source: str) -> str:
    """``base`` as an http(s) API root without a trailing slash, or :class:`JudgeSettingsError`
    saying to fix ``source`` (the argument, or the variable it came from)."""
    if not isinstance(base, str):
        raise JudgeSettingsError(f"{source} must be a str, got {type(base).__name__}")
    fix = f"set {source} to an http:// or https:// API root such as http://127.0.0.1:8000/v1"
    # shown without user info, query or fragment: they may hold a secret
    shown = repr(re.sub(r"//[^/]*@", "//***@", re.split(r"[?#]", base, maxsplit=1)[0])[:100])
    if any(c.isspace() or not c.isprintable() for c in base):
        raise JudgeSettingsError(f"base URL {shown} contains spaces or control characters: {fix}")
    try:
        parts = urllib.parse.urlsplit(base)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise JudgeSettingsError(f"base URL {shown} cannot be parsed: {fix}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise JudgeSettingsError(f"base URL {shown} is not an http(s) URL: {fix}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise JudgeSettingsError(f"base URL {shown} has an invalid port: {fix}") from None
    if not parts.hostname:
        raise JudgeSettingsError(f"base URL {shown} names no host: {fix}")
    if parts.username is not None or parts.password is not None:
        raise JudgeSettingsError(
            f"base URL {shown} holds credentials: remove them from {source} and put the key "
            "in the environment variable named by api_key_env (--api-key-env)"
        )
    if parts.query or parts.fragment:
        raise JudgeSettingsError(
            f"base URL {shown} has a query or fragment (not shown): set {source} to the API "
            "root only (/chat/completions is appended)"
        )
    return base.rstrip("/")


def _number(name: str, value: object, low: float, high: float, *, low_open: bool) -> float:
    """A finite real ``value`` in the range, or :class:`JudgeSettingsError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JudgeSettingsError(f"{name} must be a number, got {type(value).__name__}")
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
        raise JudgeSettingsError(f"{name} must be a finite number {bound} and <= {high:g}")
    return float(value)


def _count(name: str, value: object, low: int, high: int | None = None) -> int:
    """An int ``value`` in the range, or :class:`JudgeSettingsError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise JudgeSettingsError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f">= {low}"
        raise JudgeSettingsError(f"{name} must be {limit}, got {value}")
    return value


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)  # a huge value becomes inf, then capped by the caller
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# -- a socket whose every operation shares one deadline ------------------------------------------


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request deadline passed")
    return left


class _DeadlineSocket:
    """Wraps a connected socket: each send and receive may only use the time left until the
    deadline, so a server trickling bytes cannot hold a request past it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_left(self._deadline))
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def release(self) -> None:
        self._readers -= 1
        if self._closed and not self._readers:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if not self._readers:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.release()
        super().close()


class _DeadlineConnection:
    """Mixin for ``http.client`` connections: the connected socket gets the request deadline."""

    deadline: float

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock, self.deadline)  # type: ignore[has-type]


class _HTTPConnection(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnection, http.client.HTTPSConnection):
    pass


def _connection(cls: type, deadline: float, *args: Any, **kwargs: Any) -> Any:
    conn = cls(*args, **kwargs)
    conn.deadline = deadline
    return conn


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_connection, _HTTPConnection, self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_connection, _HTTPSConnection, self._deadline)
        return self.do_open(factory, req, context=self._context)  # type: ignore[attr-defined]


def _opener(deadline: float) -> urllib.request.OpenerDirector:
    """http(s) only (no file:, ftp:, data:), proxies from the environment, no redirects: a 3xx
    reply is raised as an :class:`urllib.error.HTTPError` for :class:`Judge` to decide on."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        _HTTPHandler(deadline),
        _HTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


class Judge:
    """Scores open-ended answers through an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: http(s) API root, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended); default
            ``$OPENAI_BASE_URL`` or OpenAI's.
        model: judge model name (the paper: ``gpt-4o-2024-08-06``).
        api_key_env: environment variable holding the API key (never pass the key itself).
        timeout: deadline in seconds for each request as a whole (connecting, sending and
            reading the reply), at most :data:`MAX_TIMEOUT`.
        max_retries: extra attempts after a retryable failure (5xx, 429, timeout, connection
            error, malformed or unusable reply).
        backoff: first retry delay in seconds; doubles each retry, plus up to 100% jitter,
            capped at ``max_backoff``.  A ``Retry-After`` header (429, 503) makes the wait at
            least that long, up to ``max_backoff``.
        concurrency: requests in flight at once in :meth:`judge_many` (1 to
            :data:`MAX_CONCURRENCY`).
        follow_redirects: follow a 307/308 redirect to the same origin (scheme, host and
            port), re-sending the request; other redirects always stop scoring.
        sleep: the delay function between retries (tests may pass a recorder); by default a
            wait that ends early when :meth:`judge_many` is stopping.

    Raises:
        JudgeSettingsError: a setting is invalid (a ``ValueError``; exit code 2 in the CLI).
        JudgeConfigError: no key for OpenAI's endpoint.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str = DEFAULT_JUDGE_MODEL,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        follow_redirects: bool = False,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        from_env = os.environ.get("OPENAI_BASE_URL")
        self.base_url = _check_base_url(
            base_url or from_env or DEFAULT_BASE_URL,
            "base_url (--base-url)" if base_url or not from_env else "$OPENAI_BASE_URL",
        )
        self.url = self.base_url + "/chat/completions"
        if not isinstance(model, str) or not model.strip():
            raise JudgeSettingsError("the judge model (--judge-model) must be a non-empty name")
        if not isinstance(api_key_env, str) or not api_key_env or "=" in api_key_env:
            raise JudgeSettingsError(
                "api_key_env (--api-key-env) must name an environment variable, e.g. OPENAI_API_KEY"
            )
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = _number("timeout (--timeout)", timeout, 0.0, MAX_TIMEOUT, low_open=True)
        self.max_retries = _count("max_retries (--retries)", max_retries, 0)
        self.backoff = _number("backoff (--backoff)", backoff, 0.0, MAX_TIMEOUT, low_open=False)
        self.max_backoff = _number("max_backoff", max_backoff, 0.0, MAX_TIMEOUT, low_open=False)
        self.concurrency = _count("concurrency (--concurrency)", concurrency, 1, MAX_CONCURRENCY)
        self.follow_redirects = bool(follow_redirects)
        self._sleep = sleep
        key = (os.environ.get(api_key_env) or "").strip()
        if key and not all("!" <= c <= "~" for c in key):
            raise JudgeSettingsError(
                f"the API key in ${api_key_env} contains spaces, control or non-ASCII characters "
                "(a stray newline or quote?): set it to the key alone"
            )
        self._key = key or None
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._answered = threading.Event()  # the endpoint has sent an HTTP reply at least once
        if self._key is None and "api.openai.com" in self.base_url:
            raise JudgeConfigError(
                f"no API key: set the environment variable {api_key_env} "
                "(or choose another variable with api_key_env / --api-key-env)"
            )

    def __repr__(self) -> str:
        key = "set" if self._key else "unset"
        return f"Judge(url={self.url!r}, model={self.model!r}, key from ${self.api_key_env}: {key})"

    def _scrub(self, text: str) -> str:
        """``text`` with the key, and any run of its first :data:`SCRUB_PREFIX_CHARS` or more
        characters, replaced by ``***``."""
        key = self._key
        if not key:
            return text
        head = key[:SCRUB_PREFIX_CHARS]
        out: list[str] = []
        start = 0
        while (found := text.find(head, start)) >= 0:
            end = found + len(head)
            while end - found < len(key) and end < len(text) and text[end] == key[end - found]:
                end += 1
            out += [text[start:found], "***"]
            start = end
        return "".join(out) + text[start:]

    def _clean(self, text: str) -> str:
        """An error text safe to show and store: scrubbed first, then cut to length."""
        text = self._scrub(text)
        return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 3] + "..."

    def _post(self, url: str, body: bytes, deadline: float) -> bytes:
        """One POST within the deadline; the reply body (at most :data:`MAX_REPLY_BYTES`)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with _opener(deadline).open(request, timeout=_left(deadline)) as response:
            self._answered.set()
            payload = response.read(MAX_REPLY_BYTES + 1)
        if len(payload) > MAX_REPLY_BYTES:
            raise JudgeError(
                f"the reply from {url} is larger than {MAX_REPLY_BYTES} bytes: "
                "not a chat-completions reply (check --base-url)"
            )
        return payload

    def _request(self, body: bytes) -> str:
        url = self.url
        deadline = time.monotonic() + self.timeout  # one deadline, redirects included
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                payload = self._post(url, body, deadline)
                break
            except urllib.error.HTTPError as exc:
                if not 300 <= exc.code < 400:
                    raise
                exc.close()
                location = exc.headers.get("Location")
                target = urllib.parse.urljoin(url, location) if location else "nowhere"
                if not (
                    self.follow_redirects
                    and exc.code in FOLLOWED_REDIRECTS
                    and _origin(target) == _origin(url)
                ):
                    raise JudgeConfigError(
                        self._clean(
                            f"the judge at {url} redirects (HTTP {exc.code}) to {target}: "
                            "redirects are not followed with the API key; set --base-url "
                            "(base_url) to the address that answers"
                            + (
                                " (follow_redirects follows 307/308 to the same origin only)"
                                if self.follow_redirects
                                else ""
                            )
                        )
                    ) from None
                url = target
        else:
            raise JudgeConfigError(
                self._clean(f"the judge at {self.url} redirected more than {_MAX_REDIRECTS} times")
            )
        try:
            data = json.loads(payload)
            message = data["choices"][0]["message"]
            refusal = message.get("refusal")
            content = message.get("content")
        except (ValueError, RecursionError, KeyError, IndexError, TypeError, AttributeError):
            text = self._clean(payload.decode("utf-8", "replace"))
            raise JudgeError(f"malformed chat-completions response: {text!r}") from None
        if refusal:
            raise JudgeError(f"the judge refused: {self._clean(str(refusal))!r}")
        if not isinstance(content, str):
            raise JudgeError(f"the judge message has no text content: {self._clean(repr(message))}")
        return self._scrub(content)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            jitter = self._rng.random()
        delay = self.backoff * (2**attempt) * (1.0 + jitter)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(self.max_backoff, delay)

    def judge(self, split: str, question: str, ground_truth: str, prediction: str) -> JudgeResult:
        """Score one answer; failures after all retries give ``valid=False`` with the reason.

        Raises :class:`JudgeConfigError` when the endpoint rejects the key, URL or model
        (401/403/404), redirects, or cannot be reached at all before it ever answered: every
        other item would fail the same way.
        """
        return self._judge(split, question, ground_truth, prediction, None)

    def _judge(
        self,
        split: str,
        question: str,
        ground_truth: str,
        prediction: str,
        stop: threading.Event | None,
    ) -> JudgeResult:
        for name, value in (
            ("question", question),
            ("ground_truth", ground_truth),
            ("prediction", prediction),
        ):
            if not isinstance(value, str):
                raise InstitTypeError(
                    f"the judge's {name} must be a str, got {type(value).__name__}"
                )
        if not isinstance(split, str) or split not in JUDGE_PROMPTS:
            shown = repr(split[:40]) if isinstance(split, str) else type(split).__name__
            return JudgeResult(None, False, f"unknown split {shown}: use 'image' or 'video'", 0)
        body = json.dumps(
            {
                "model": self.model,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": JUDGE_PROMPTS[split]},  # type: ignore[index]
                            {
                                "type": "text",
                                "text": judge_input(question, ground_truth, prediction),
                            },
                        ],
                    }
                ],
                "response_format": _SCORE_SCHEMA,
            }
        ).encode("utf-8")
        error = "not attempted"
        unreached = 0  # attempts that could not connect at all
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self._delay(attempt - 1, retry_after)
                if self._sleep is not None:
                    self._sleep(delay)
                else:
                    (stop or threading.Event()).wait(delay)
            if stop is not None and stop.is_set():
                return JudgeResult(None, False, "scoring stopped", attempt)
            retry_after = None
            try:
                return JudgeResult(parse_score(self._request(body)), True, None, attempt + 1)
            except JudgeConfigError:
                raise
            except urllib.error.HTTPError as exc:
                self._answered.set()
                try:
                    detail = exc.read(_ERROR_BODY_BYTES) if exc.fp else b""
                except (http.client.HTTPException, OSError):  # the body timed out or broke off
                    detail = b""
                finally:
                    exc.close()
                error = self._clean(
                    f"HTTP {exc.code} from {self.url}: {detail.decode('utf-8', 'replace')}"
                )
                if exc.code in FATAL_STATUSES:
                    raise JudgeConfigError(
                        f"{error}; check the API key variable ${self.api_key_env}, "
                        "--base-url and --judge-model"
                    ) from None
                if exc.code not in RETRY_STATUSES:
                    return JudgeResult(None, False, error, attempt + 1)
                if exc.headers is not None:
                    retry_after = _retry_after(exc.headers.get("Retry-After"))
            except TimeoutError as exc:
                error = f"timed out after {self.timeout} s ({self._clean(str(exc))})"
            except urllib.error.URLError as exc:
                unreached += 1
                if isinstance(exc.reason, TimeoutError):
                    error = f"timed out after {self.timeout} s ({self._clean(str(exc.reason))})"
                else:
                    error = self._clean(f"connection failed: {exc.reason}")
            except (http.client.HTTPException, OSError) as exc:
                error = self._clean(f"connection failed: {exc!r}")
            except JudgeError as exc:
                error = self._clean(str(exc))
        if unreached == self.max_retries + 1 and not self._answered.is_set():
            raise JudgeConfigError(
                f"cannot reach the judge at {self.url}: {error} (all {unreached} attempts); "
                "check --base-url (base_url) and that the server is running"
            )
        return JudgeResult(None, False, error, self.max_retries + 1)

    def judge_many(
        self,
        items: Iterable[tuple[Any, dict[str, Any]]],
        *,
        on_result: Callable[[Any, JudgeResult], None] | None = None,
        progress: bool = True,
        total: int | None = None,
    ) -> dict[Any, JudgeResult]:
        """Judge ``(key, prediction_record)`` pairs concurrently; returns ``key -> result``.

        ``on_result`` is called in the calling thread as each verdict arrives (used to append
        to the resume file).  Any error (a :class:`JudgeConfigError`, Ctrl-C) cancels the
        requests not yet started and ends the ones in flight after their current attempt.
        """
        from tqdm.auto import tqdm

        results: dict[Any, JudgeResult] = {}
        items = list(items)
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            with tqdm(
                total=total or len(items), disable=not progress, desc="judge", unit="q"
            ) as bar:
                futures = {
                    pool.submit(
                        self._judge,
                        str(record.get("split", "")),
                        record["question"],
                        record["ground_truth"],
                        record["model_prediction"],
                        stop,
                    ): key
                    for key, record in items
                }
                for future in as_completed(futures):
                    key = futures[future]
                    result = future.result()
                    results[key] = result
                    if on_result is not None:
                        on_result(key, result)
                    bar.update(1)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        return results
