"""The open-ended judge: any OpenAI-compatible ``/chat/completions`` endpoint, stdlib only.

Each request mirrors the authors' ``evaluate.py``: one user message whose content is two text
parts, the judge prompt of the split and ``json.dumps({"question", "ground_truth_answer",
"tester_response"})``, with a structured-output schema ``{"sample_score": number}`` (what the
OpenAI SDK's ``beta.chat.completions.parse(response_format=SampleScore)`` sends).  The score is
read from the message content as JSON, like the SDK's parser does.

The API key is read from an environment variable when the judge is created, kept in a private
attribute, sent only in the ``Authorization`` header and scrubbed from every error message.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

from instit.bench.protocol import DEFAULT_JUDGE_MODEL, JUDGE_PROMPTS
from instit.errors import JudgeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: HTTP statuses worth retrying (rate limits, overload, server errors).
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: HTTP statuses that mean the configuration is wrong: scoring stops at once.
FATAL_STATUSES = frozenset({401, 403, 404})

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
    """The endpoint refuses every request (bad key, wrong URL or model): stop scoring."""


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
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JudgeError(f"judge reply is not JSON: {content[:200]!r}") from exc
    value = data.get("sample_score") if isinstance(data, dict) else None
    if isinstance(value, bool) or value is None:
        raise JudgeError(f"judge reply has no numeric sample_score: {content[:200]!r}")
    try:
        score = float(value)
    except (TypeError, ValueError) as exc:
        raise JudgeError(f"judge reply has a non-numeric sample_score: {value!r}") from exc
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


class Judge:
    """Scores open-ended answers through an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``
            (``/chat/completions`` is appended); default ``$OPENAI_BASE_URL`` or OpenAI's.
        model: judge model name (the paper: ``gpt-4o-2024-08-06``).
        api_key_env: environment variable holding the API key (never pass the key itself).
        timeout: seconds per request.
        max_retries: extra attempts after a retryable failure (5xx, 429, timeout, connection
            error, malformed or unusable reply).
        backoff: first retry delay in seconds; doubles each retry, plus up to 100% jitter,
            capped at ``max_backoff``.
        concurrency: requests in flight at once in :meth:`score_many`.
        sleep: the delay function (tests may pass a recorder).
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise JudgeError(
                "judge settings are invalid: need max_retries >= 0, concurrency >= 1, timeout > 0"
            )
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self._sleep = sleep
        self._key = os.environ.get(api_key_env) or None
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        if self._key is None and "api.openai.com" in self.base_url:
            raise JudgeConfigError(
                f"no API key: set the environment variable {api_key_env} "
                "(or choose another variable with api_key_env / --api-key-env)"
            )

    def __repr__(self) -> str:
        key = "set" if self._key else "unset"
        return f"Judge(url={self.url!r}, model={self.model!r}, key from ${self.api_key_env}: {key})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _request(self, body: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = response.read()
        try:
            data = json.loads(payload)
            message = data["choices"][0]["message"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"malformed chat-completions response: {payload[:200]!r}") from exc
        if message.get("refusal"):
            raise JudgeError(f"the judge refused: {message['refusal']!r}")
        content = message.get("content")
        if not isinstance(content, str):
            raise JudgeError(f"the judge message has no text content: {message!r}")
        return content

    def _delay(self, attempt: int) -> float:
        with self._rng_lock:
            jitter = self._rng.random()
        return min(self.max_backoff, self.backoff * (2**attempt) * (1.0 + jitter))

    def judge(self, split: str, question: str, ground_truth: str, prediction: str) -> JudgeResult:
        """Score one answer; failures after all retries give ``valid=False`` with the reason.

        Raises :class:`JudgeConfigError` when the endpoint rejects the key, URL or model
        (401/403/404): every other item would fail the same way.
        """
        if split not in JUDGE_PROMPTS:
            return JudgeResult(None, False, f"unknown split {split!r}: use 'image' or 'video'", 0)
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
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self._delay(attempt - 1))
            try:
                return JudgeResult(parse_score(self._request(body)), True, None, attempt + 1)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:200].decode("utf-8", "replace") if exc.fp else ""
                error = self._scrub(f"HTTP {exc.code} from {self.url}: {detail}")
                if exc.code in FATAL_STATUSES:
                    raise JudgeConfigError(
                        f"{error}; check the API key variable ${self.api_key_env}, "
                        "--base-url and --judge-model"
                    ) from None
                if exc.code not in RETRY_STATUSES:
                    return JudgeResult(None, False, error, attempt + 1)
            except TimeoutError as exc:
                error = f"timed out after {self.timeout} s ({exc})"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    error = f"timed out after {self.timeout} s ({exc.reason})"
                else:
                    error = self._scrub(f"connection failed: {exc.reason}")
            except (http.client.HTTPException, OSError) as exc:
                error = self._scrub(f"connection failed: {exc}")
            except JudgeError as exc:
                error = self._scrub(str(exc))
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
        to the resume file).  A :class:`JudgeConfigError` cancels the remaining requests.
        """
        from tqdm.auto import tqdm

        results: dict[Any, JudgeResult] = {}
        items = list(items)
        with (
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
            tqdm(total=total or len(items), disable=not progress, desc="judge", unit="q") as bar,
        ):
            futures = {
                pool.submit(
                    self.judge,
                    str(record.get("split", "")),
                    str(record["question"]),
                    str(record["ground_truth"]),
                    str(record["model_prediction"]),
                ): key
                for key, record in items
            }
            try:
                for future in as_completed(futures):
                    key = futures[future]
                    result = future.result()
                    results[key] = result
                    if on_result is not None:
                        on_result(key, result)
                    bar.update(1)
            except JudgeConfigError:
                for future in futures:
                    future.cancel()
                raise
        return results
