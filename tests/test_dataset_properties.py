"""Property suite over the Inst-It Dataset readers: any file gives records or an InstitError.

Hypothesis runs derandomised with a fixed budget (no example database), so every run tries the
same inputs and the suite takes seconds. Each property also checks the readers against the
standard library where both accept a file, so "no crash" is not the only thing asserted.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from instit.dataset import (
    ImageRecord,
    VideoRecord,
    convert_to_llava,
    iter_json_array,
    read_image_records,
    read_records,
    read_video_records,
)
from instit.errors import InstitError

PROPERTY = settings(
    derandomize=True,
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
CAPTIONS = st.dictionaries(st.from_regex(r"[0-9]{1,3}", fullmatch=True), st.text(max_size=10))
IMAGE = st.fixed_dictionaries(
    {
        "image_id": st.integers(),
        "instance_level_caption": CAPTIONS,
        "image_level_caption": st.text(max_size=10),
        "image_path": st.text(max_size=10),
    }
)
FRAME = st.fixed_dictionaries(
    {
        "timestamp": st.integers(1, 50),
        "frame_name": st.text(max_size=6),
        "instance_level": CAPTIONS,
        "image_level": st.text(max_size=10),
        "temporal_change": st.none() | st.text(max_size=10),
    }
)
VIDEO = st.fixed_dictionaries(
    {
        "video_id": st.integers(),
        "frame_level_caption": st.lists(FRAME, max_size=3, unique_by=lambda f: f["timestamp"]),
        "question_answer_pairs": st.lists(
            st.fixed_dictionaries({"question": st.text(max_size=8), "answer": st.text(max_size=8)}),
            max_size=2,
        ),
        "video_level_caption": st.text(max_size=10),
        "video_path": st.text(max_size=10),
    }
)
READERS: list[Callable[[Path], Any]] = [
    lambda p: list(iter_json_array(p, chunk_size=7)),
    lambda p: list(read_records(p)),
    lambda p: list(read_image_records(p)),
    lambda p: list(read_video_records(p)),
]


def _file(data: bytes) -> Path:
    """``data`` in a fresh temporary file (hypothesis calls a test many times per tmp_path)."""
    handle = tempfile.NamedTemporaryFile(suffix=".json", delete=False)  # noqa: SIM115
    with handle:
        handle.write(data)
    return Path(handle.name)


def _outcome(read: Callable[[Path], Any], path: Path) -> Any:
    """What ``read`` gives, or the InstitError it raised; anything else fails the test."""
    try:
        return read(path)
    except InstitError as exc:
        assert str(exc).startswith(str(path)) or str(path) in str(exc), str(exc)
        return exc


def _stdlib(data: bytes) -> list[Any] | None:
    """The list ``json.loads`` reads from UTF-8 ``data`` (BOM allowed), or None."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN (``json`` reads ``NaN``)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _check_file(data: bytes) -> None:
    path = _file(data)
    try:
        results = [_outcome(read, path) for read in READERS]
    finally:
        path.unlink()
    expected = _stdlib(data)
    raw = results[0]
    if expected is not None:  # the stdlib accepts it: so must the streaming reader, equally
        assert not isinstance(raw, InstitError), raw
        assert _same(raw, expected)
    elif not isinstance(
        raw, InstitError
    ):  # the stdlib refuses it: only a BOM-less reason may differ
        raise AssertionError(f"the reader accepted what json.loads refuses: {data[:80]!r}")
    for typed, build in ((results[2], ImageRecord.from_dict), (results[3], VideoRecord.from_dict)):
        if not isinstance(typed, InstitError):
            assert typed == [build(r, index=i) for i, r in enumerate(raw)]


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes_give_records_or_an_instit_error(data: bytes) -> None:
    _check_file(data)


@PROPERTY
@given(st.lists(IMAGE | VIDEO | JSON, max_size=4), st.data())
def test_damaged_dataset_files_give_records_or_an_instit_error(records: list, data) -> None:
    text = json.dumps(records, ensure_ascii=data.draw(st.booleans())).encode()
    edits = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["insert", "delete", "replace", "truncate"]),
                st.integers(0, len(text)),
                st.binary(min_size=1, max_size=4)
                | st.sampled_from(
                    [b"]", b"[", b"{", b",", b"\n", b'"', b"\xff", b" x", b"[" * 3000, b"9" * 4400]
                ),
            ),
            max_size=3,
        )
    )
    for kind, at, chunk in edits:
        if kind == "insert":
            text = text[:at] + chunk + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + len(chunk) :]
        elif kind == "replace":
            text = text[:at] + chunk + text[at + len(chunk) :]
        else:
            text = text[:at]
    _check_file(text)


@PROPERTY
@given(st.lists(IMAGE, min_size=1, max_size=3) | st.lists(VIDEO, min_size=1, max_size=3))
def test_well_formed_records_round_trip_and_convert(records: list) -> None:
    path = _file(json.dumps(records, ensure_ascii=False).encode())
    output = path.with_suffix(".jsonl")
    try:
        typed = list(read_records(path))
        assert [r.to_dict() for r in typed] == [
            {
                **r,
                "frame_level_caption": sorted(
                    r["frame_level_caption"], key=lambda f: f["timestamp"]
                ),
            }
            if "video_id" in r
            else r
            for r in records
        ]
        result = convert_to_llava(path, output, progress=False)
        lines = output.read_text(encoding="utf-8").splitlines()
        assert result.records == len(records)
        assert len(lines) == result.conversations == result.records - result.skipped
    finally:
        path.unlink()
        output.unlink(missing_ok=True)


@PROPERTY
@given(st.lists(JSON | IMAGE | VIDEO, min_size=1, max_size=3))
def test_conversion_of_any_records_gives_a_result_or_an_instit_error(records: list) -> None:
    path = _file(json.dumps(records).encode())
    output = path.with_suffix(".jsonl")
    try:
        try:
            convert_to_llava(path, output, progress=False)
        except InstitError:
            assert not output.exists()  # a failed conversion leaves nothing behind
        else:
            assert output.is_file()
    finally:
        path.unlink()
        output.unlink(missing_ok=True)
