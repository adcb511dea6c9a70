"""Score Inst-It Bench predictions exactly like the authors' ``evaluate.py``.

Multiple choice: :func:`extract_mc_answer` strips the reference's answer prefixes (its list,
quirks included: two pairs of prefixes are fused by missing commas), answers nothing when the
rest is longer than 10 words without any of A-D, else takes the first A-D letter.
``accuracy = correct / answers with a letter * 100`` (the leaderboard number); we also report
``strict_accuracy = correct / all questions * 100``.

Open-ended: every answer is scored in [0, 1] by a :class:`~instit.bench.judge.Judge`;
``accuracy = sum of valid scores / valid items * 100``.  Items whose judging failed are marked
``valid: false`` with the error, counted in ``invalid_num`` and left out of the mean, never
scored as 0 (the reference writes ``score: 0`` for them; we write ``null``).

Logs use the reference's field names (``accuracy``, ``total_num``, ``valid_num``,
``correct_num``, ``timestamp``, ``gpt_prompt`` and the reference's spelling
``model_predictons``), plus a few extra fields (``strict_accuracy``, ``invalid_num``,
``per_split``, ``judge_model``).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instit import _json
from instit._files import check_not_an_input
from instit.bench.data import read_text
from instit.bench.protocol import JUDGE_PROMPTS
from instit.bench.run import (
    _repair_tail,
    check_predictions,
    read_predictions,
)
from instit.errors import DatasetError, InstitError, InstitTypeError, InstitValueError

if TYPE_CHECKING:
    from instit.bench.judge import Judge, JudgeResult

#: The reference's prefix list, in its order.  Two entries are fused because the reference
#: lacks commas after "The best option is" and "Best answer:"; kept so results match.
MC_ANSWER_PREFIXES: tuple[str, ...] = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
    "Answer",
    "Answer:",
    "answer:",
    "answer",
    "Option:",
    "The correct answer",
    "The correct option",
)

_LETTER = re.compile(r"[ABCD]")


def extract_mc_answer(response: str) -> str:
    """The option letter in a multiple-choice response, or ``""`` when there is none.

    The prefixes are removed wherever they occur, as the reference's ``str.replace`` does:
    ``"I think Answer: C"`` gives ``"C"``.
    """
    if not isinstance(response, str):
        raise InstitTypeError(f"a response must be a str, got {type(response).__name__}")
    text = response.strip()
    for prefix in MC_ANSWER_PREFIXES:
        text = text.replace(prefix, "")
    match = _LETTER.search(text)
    if match is None:
        return ""  # covers "longer than 10 words and no A-D" too
    return match[0]


def _pct(numerator: float, denominator: int) -> float | None:
    return numerator / denominator * 100 if denominator else None


class _Score:
    """What both score types share: JSON output and a notebook view of :meth:`table`."""

    def table(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``asdict`` also converts the scores in ``per_split``)."""
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self, indent: int | None = 2) -> str:
        """The score as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(self.table()) + "</pre>"


@dataclass(frozen=True)
class MCScore(_Score):
    """Multiple-choice result: leaderboard ``accuracy`` and ``strict_accuracy`` (percent)."""

    accuracy: float | None
    strict_accuracy: float | None
    total_num: int
    valid_num: int
    correct_num: int
    per_split: dict[str, MCScore] = field(default_factory=dict)

    def table(self) -> str:
        """A short plain-text summary table (overall and per split)."""
        rows = [("all", self), *sorted(self.per_split.items())]
        lines = [
            f"{'split':<8} {'acc %':>7} {'strict %':>8} {'correct':>7} {'answered':>8} {'total':>6}"
        ]
        for name, s in rows:
            lines.append(
                f"{name:<8} {_fmt(s.accuracy):>7} {_fmt(s.strict_accuracy):>8} "
                f"{s.correct_num:>7} {s.valid_num:>8} {s.total_num:>6}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class OEScore(_Score):
    """Open-ended result: mean judge score of validly judged items, in percent."""

    accuracy: float | None
    total_num: int
    valid_num: int
    invalid_num: int
    judge_model: str | None = None
    per_split: dict[str, OEScore] = field(default_factory=dict)

    def table(self) -> str:
        """A short plain-text summary table (overall and per split)."""
        rows = [("all", self), *sorted(self.per_split.items())]
        lines = [f"{'split':<8} {'score %':>7} {'judged':>7} {'invalid':>7} {'total':>6}"]
        for name, s in rows:
            lines.append(
                f"{name:<8} {_fmt(s.accuracy):>7} {s.valid_num:>7} {s.invalid_num:>7} "
                f"{s.total_num:>6}"
            )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _records(predictions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The predictions as a checked list (see :func:`~instit.bench.run.check_predictions`)."""
    if isinstance(predictions, str | bytes) or not isinstance(predictions, Sequence):
        raise DatasetError(
            f"predictions must be a list of prediction dicts, got {type(predictions).__name__}"
        )
    return check_predictions(list(predictions), "predictions")


def _mc_counts(items: Sequence[dict[str, Any]]) -> MCScore:
    valid = sum(1 for r in items if r["extracted_model_prediction"] != "")
    correct = sum(
        1
        for r in items
        if r["extracted_model_prediction"] != ""
        and r["extracted_model_prediction"] == r["ground_truth"]
    )
    return MCScore(_pct(correct, valid), _pct(correct, len(items)), len(items), valid, correct)


def score_mc(predictions: Sequence[dict[str, Any]]) -> tuple[MCScore, list[dict[str, Any]]]:
    """Score multiple-choice predictions; returns the score and annotated copies of the records.

    Each copy gains ``extracted_model_prediction`` (the reference's field); the input records are
    not modified.  Records that break the format rules raise :class:`DatasetError`.
    """
    items = []
    for record in _records(predictions):
        item = dict(record)
        item["extracted_model_prediction"] = extract_mc_answer(record["model_prediction"])
        items.append(item)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[str(item.get("split", "unknown"))].append(item)
    overall = _mc_counts(items)
    per_split = {name: _mc_counts(group) for name, group in groups.items()}
    return (
        MCScore(
            overall.accuracy,
            overall.strict_accuracy,
            overall.total_num,
            overall.valid_num,
            overall.correct_num,
            per_split,
        ),
        items,
    )


def _item_key(record: dict[str, Any]) -> str:
    """Resume key: the question and everything the judge sees, so edits are re-judged."""
    text = json.dumps(
        [
            record.get("split"),
            record["question_id"],
            record["question"],
            record["ground_truth"],
            record["model_prediction"],
        ]
    )
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _cache_entry(entry: object) -> str | None:
    """Why a judge-cache entry is unusable, or ``None`` when it is a well-formed verdict."""
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return "is not a verdict object with a string key"
    if not isinstance(entry.get("valid"), bool):
        return "has no true/false valid field"
    score = entry.get("score")
    if not entry["valid"]:
        return None if isinstance(entry.get("error"), str | None) else "has a non-text error"
    if isinstance(score, bool) or not isinstance(score, int | float):
        return "is valid but has no numeric score"
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        return f"has the score {score}, outside [0, 1]"
    return None


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The verdicts of a judge cache (JSONL); a cut last line (a kill mid-write) is ignored,
    any other bad line is a :class:`DatasetError` naming the file and line."""
    cache: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return cache
    lines = read_text(path, "judge cache").split("\n")
    for number, line in enumerate(lines[:-1], 1):  # lines[-1]: "" or a cut last line
        if not line.strip():
            continue
        where = f"judge cache {path} line {number}"
        fix = "delete that line (its item is judged again) or the file"
        try:
            entry = _json.loads(line, where, error=DatasetError)
        except DatasetError as exc:
            raise DatasetError(f"{exc}: {fix}") from None
        problem = _cache_entry(entry)
        if problem is not None:
            raise DatasetError(f"{where} {problem}: {fix}")
        cache[entry["key"]] = entry
    return cache


def _oe_counts(items: Sequence[dict[str, Any]], judge_model: str | None) -> OEScore:
    valid = [r for r in items if r["valid"]]
    total = sum(r["score"] for r in valid)
    return OEScore(
        _pct(total, len(valid)), len(items), len(valid), len(items) - len(valid), judge_model
    )


def score_oe(
    predictions: Sequence[dict[str, Any]],
    judge: Judge,
    *,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[OEScore, list[dict[str, Any]]]:
    """Judge open-ended predictions; returns the score and annotated copies of the records.

    Each copy gains the reference's ``score``, ``valid`` and ``error_in_gpt_eval`` fields.
    With ``cache`` (a JSONL file), every verdict is appended as it arrives and valid verdicts
    found there are reused: a killed scoring run resumes; failed items are judged again.
    Records that break the format rules, and a judge cache with a bad line (corrupt, or a score
    outside [0, 1]), raise :class:`DatasetError` before anything is judged.
    """
    predictions = _records(predictions)
    for i, record in enumerate(predictions):
        if record.get("split") not in JUDGE_PROMPTS:
            raise DatasetError(
                f"prediction {i} (question_id {record.get('question_id')!r}) has split "
                f"{record.get('split')!r}: open-ended scoring needs 'image' or 'video' to pick "
                "the judge prompt"
            )
    cache_path = Path(cache) if cache is not None else None
    known = _read_cache(cache_path) if cache_path is not None else {}
    keys = [_item_key(r) for r in predictions]
    verdicts: dict[str, dict[str, Any]] = {
        k: known[k] for k in keys if k in known and known[k]["valid"]
    }
    todo = {k: r for k, r in zip(keys, predictions, strict=True) if k not in verdicts}

    def record_verdict(key: str, result: JudgeResult) -> None:
        entry = {"key": key, **result.to_dict()}
        verdicts[key] = entry
        if cache_path is not None:
            with open(cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    if cache_path is not None:
        _repair_tail(cache_path)
    judge.judge_many(todo.items(), on_result=record_verdict, progress=progress)
    items = []
    for key, record in zip(keys, predictions, strict=True):
        verdict = verdicts[key]
        item = dict(record)
        item["score"] = verdict["score"] if verdict["valid"] else None
        item["valid"] = bool(verdict["valid"])
        item["error_in_gpt_eval"] = "No Error." if verdict["valid"] else verdict["error"]
        items.append(item)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[str(item["split"])].append(item)
    overall = _oe_counts(items, judge.model)
    per_split = {name: _oe_counts(group, judge.model) for name, group in groups.items()}
    return (
        OEScore(
            overall.accuracy,
            overall.total_num,
            overall.valid_num,
            overall.invalid_num,
            judge.model,
            per_split,
        ),
        items,
    )


def mc_log(score: MCScore, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation log of the reference for multiple choice (plus our extra fields)."""
    return {
        "accuracy": score.accuracy if score.accuracy is not None else "No valid predictions.",
        "total_num": score.total_num,
        "valid_num": score.valid_num,
        "correct_num": score.correct_num,
        "timestamp": _timestamp(),
        "strict_accuracy": score.strict_accuracy,
        "per_split": {k: v.to_dict() for k, v in score.per_split.items()},
        "model_predictons": items,
    }


def oe_log(score: OEScore, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation log of the reference for open-ended answers (plus our extra fields)."""
    splits = sorted({str(item["split"]) for item in items})
    prompt: Any = (
        JUDGE_PROMPTS[splits[0]]
        if len(splits) == 1
        else {  # type: ignore[index]
            s: JUDGE_PROMPTS[s]
            for s in splits  # type: ignore[index]
        }
    )
    return {
        "accuracy": score.accuracy if score.accuracy is not None else "No valid evaluations.",
        "total_num": score.total_num,
        "valid_num": score.valid_num,
        "timestamp": _timestamp(),
        "gpt_prompt": prompt,
        "invalid_num": score.invalid_num,
        "judge_model": score.judge_model,
        "per_split": {k: v.to_dict() for k, v in score.per_split.items()},
        "model_predictons": items,
    }


def write_log(path: str | os.PathLike[str], log: dict[str, Any]) -> Path:
    """Write an evaluation log atomically (JSON, indent 4 like the reference).

    The text goes to a new uniquely named file beside ``path`` first, which then replaces
    ``path``: no other file is ever overwritten.
    """
    path = Path(path)
    check_output(path, "the log (--log)")
    try:
        text = json.dumps(log, indent=4, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate from a \ud800 escape: keep it escaped
        text = json.dumps(log, indent=4)
    except (TypeError, ValueError, RecursionError) as exc:
        raise DatasetError(
            f"the log {path} cannot be written as JSON: a record holds a value JSON cannot "
            f"represent or nested too deeply ({str(exc)[:100]})"
        ) from None
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "x", encoding="utf-8") as f:  # "x": a new file, never another one
            created = True
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if created:
            tmp.unlink(missing_ok=True)
        raise InstitError(f"cannot write the log {path}: {exc.strerror or exc}") from None
    return path


def check_output(path: Path, what: str, inputs: Sequence[Path] = ()) -> None:
    """Refuse an output ``path`` that is an input (symlinks and hard links resolved), a folder,
    or under a file: usage errors, raised before any work is done."""
    try:
        if path.is_dir():
            raise InstitValueError(f"{what} {path} is a folder: give a file path")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise InstitValueError(
                f"{what} {path} is inside {parent}, which is a file, not a folder"
            )
        check_not_an_input(path, inputs, what)
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name too long ...
        if isinstance(exc, InstitValueError):
            raise
        raise InstitValueError(f"{what} {path!s:.200} is not a usable path: {exc}") from None


def score_file(
    predictions: str | os.PathLike[str],
    fmt: str,
    log: str | os.PathLike[str] | None = None,
    *,
    judge: Judge | None = None,
    progress: bool = True,
) -> MCScore | OEScore:
    """Score a predictions file (``fmt`` ``"mc"`` or ``"oe"``) and write the evaluation log.

    Open-ended scoring needs ``judge`` and resumes from ``<log>.judge.jsonl``.  A log (or judge
    cache) path that is the predictions file itself (after resolving symlinks), a folder, or
    under a file is refused before anything is read or judged.
    """
    if fmt not in ("mc", "oe"):
        raise InstitValueError(f"unknown format {fmt!r}: use 'mc' or 'oe'")
    if fmt == "oe" and judge is None:
        raise InstitValueError("open-ended scoring needs a judge: pass judge=Judge(...)")
    source = Path(predictions)
    cache = Path(str(log) + ".judge.jsonl") if log is not None and fmt == "oe" else None
    if log is not None:
        check_output(Path(log), "the log (--log)", [source])
    if cache is not None:
        check_output(cache, "the judge cache (<log>.judge.jsonl)", [source])
    records = read_predictions(source)
    if fmt == "mc":
        mc, items = score_mc(records)
        if log is not None:
            write_log(log, mc_log(mc, items))
        return mc
    assert judge is not None
    oe, items = score_oe(records, judge, cache=cache, progress=progress)
    if log is not None:
        write_log(log, oe_log(oe, items))
    return oe
