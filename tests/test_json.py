"""instit._json: the one JSON decoder, and the readers that call it with their own error."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from instit import _json
from instit.bench.judge import parse_score
from instit.errors import (
    CheckpointError,
    DatasetError,
    InstancesError,
    InstitValueError,
    JudgeError,
)
from instit.instances import Instances
from instit.model import InstIt

BAD = [
    ("{oops", r"Expecting property name"),
    ("[1, 2]]", r"Extra data: line 1 column 7"),
    ("[" * 100_000 + "]" * 100_000, r"nested too deeply to be read"),
    ('{"id": ' + "7" * 5000 + "}", r"Exceeds the limit \(4300 digits\).* 5000 digits$"),
    (
        b'{"a": 1,\n "b": 2,\n "c": "caf\xe9"}',
        r"line 3 is not UTF-8 text \(byte 0xe9 at offset 28\)",
    ),
    (b"\xff\xfe{\x00}\x00", r"line 1 is not UTF-8 text \(byte 0xff at offset 0\)"),
]


@pytest.mark.parametrize(("text", "reason"), BAD, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("error", [DatasetError, InstancesError, InstitValueError])
def test_every_failure_is_the_callers_error_naming_where(
    text: str | bytes, reason: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"^data\.json: line 4 is not valid JSON \(") as caught:
        _json.loads(text, "data.json: line 4", error=error, fix=": fix it")
    message = str(caught.value)
    assert message.endswith(": fix it")
    inner = message.removeprefix("data.json: line 4 is not valid JSON (").removesuffix(": fix it")
    assert re.search(reason, inner.removesuffix(")")), inner
    assert "set_int_max_str_digits" not in message  # Python's advice, not the user's fix
    # one line for the user: no chained json/recursion traceback behind it
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_good_json_decodes_as_json_loads_does() -> None:
    assert _json.loads('{"a": [1, 2.5, null]}', "x", error=DatasetError) == {"a": [1, 2.5, None]}
    assert _json.loads(bytearray(b'\xef\xbb\xbf["caf\xc3\xa9"]'), "x", error=DatasetError) == [
        "café"
    ]  # UTF-8 with a BOM
    # NaN is JSON's extension that json.loads reads; the readers that need numbers check them
    assert math.isnan(_json.loads("NaN", "x", error=DatasetError))
    assert _json.loads("9" * 4300, "x", error=DatasetError) == int("9" * 4300)


def test_utf8_names_the_line_byte_and_offset() -> None:
    assert _json.utf8(b"\xef\xbb\xbfa\nb", "f", error=DatasetError) == "a\nb"
    with pytest.raises(
        DatasetError, match=r"^notes f: line 2 is not UTF-8 text \(byte 0xe9 at offset 2\); "
    ):
        _json.utf8(b"a\n\xe9", "notes f", error=DatasetError)


# -- the readers that use it keep their error classes and say where ---------------------------


def test_instances_from_json_is_an_instances_error() -> None:
    text = Instances.from_boxes([[0, 0, 2, 2]]).to_json()
    with pytest.raises(InstancesError, match=r"the instances text is not valid JSON \(Extra"):
        Instances.from_json(text + "]")
    assert Instances.from_json(text.encode()) == Instances.from_json(text)


def test_a_broken_checkpoint_config_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llava_qwen",')
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON \(.*re-download"):
        InstIt.from_pretrained(tmp_path, device="cpu", progress=False)


def test_a_judge_reply_that_is_not_json_is_a_judge_error() -> None:
    with pytest.raises(JudgeError, match=r"judge reply '\{\"sample_score\": 1' is not valid JSON"):
        parse_score('{"sample_score": 1')
    with pytest.raises(JudgeError, match="nested too deeply"):
        parse_score("[" * 100_000)
