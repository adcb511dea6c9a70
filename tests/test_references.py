"""Parsing and writing the ``[ID]`` / ``<t>`` conventions, and instance-caption replies."""

from __future__ import annotations

import json

import pytest

from instit.errors import InstitTypeError, InstitValueError
from instit.prompting.describe import DescribePrompts, parse_instance_captions
from instit.prompting.references import (
    find_references,
    format_frame,
    format_frame_range,
    format_ids,
    frame_numbers,
    instance_ids,
)


def _ids(text: str) -> list[tuple[int, ...]]:
    return [r.ids for r in find_references(text) if r.kind == "instance"]


def _frames(text: str) -> list[tuple[int, int] | None]:
    return [r.frames for r in find_references(text) if r.kind == "frame"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[3] is a dog", [(3,)]),
        ("[ 3 ] is a dog", [(3,)]),
        ("[3] [4] [5] play", [(3, 4, 5)]),
        ("[3][4] play", [(3, 4)]),
        ("[3, 4] play", [(3, 4)]),
        ("[3,4] play", [(3, 4)]),
        ("[3; 4] play", [(3, 4)]),
        ("[3] and [4]", [(3,), (4,)]),
        ("the dog[3] runs", [(3,)]),
        ("[12] holds [007]", [(12,), (7,)]),
        ("[3]\n[4]", [(3,), (4,)]),  # adjacent only on one line
        ("[3] (the man) waves", [(3,)]),  # a parenthesis after a space is prose, not a link
    ],
)
def test_instance_reference_variants(text: str, expected: list[tuple[int, ...]]) -> None:
    assert _ids(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "see [a] and [b]",
        "a footnote[^1]",
        "a [1](https://example.com) link",
        "a range [1-3]",
        "zero [0] is not an ID",
        "[1, 0] has a zero",
        "Instance 3 and object 4",
        "<b>bold</b> <0>",
        "empty [] and [ ]",
    ],
)
def test_look_alikes_are_not_references(text: str) -> None:
    assert find_references(text) == []


def test_markdown_link_after_a_reference_only_drops_the_link() -> None:
    assert _ids("[3] [4](https://x.org)") == [(3,)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at <5>", [(5, 5)]),
        ("during <5>-<7>", [(5, 7)]),
        ("during <5> - <7>", [(5, 7)]),
        ("during <5>–<7>", [(5, 7)]),
        ("during <5>—<7>", [(5, 7)]),
        ("from <5> to <7>", [(5, 7)]),
        ("between <5> and <6>", [(5, 5), (6, 6)]),
        ("< 5 >", [(5, 5)]),
        ("<7>-<5>", [(7, 7), (5, 5)]),  # backwards: two single frames
        ("<5>-<0>", [(5, 5)]),
    ],
)
def test_frame_reference_variants(text: str, expected: list[tuple[int, int]]) -> None:
    assert _frames(text) == expected


def test_backwards_range_keeps_exact_spans() -> None:
    text = "see <7> - <5> now"
    refs = find_references(text)
    assert [text[r.start : r.end] for r in refs] == ["<7>", "<5>"]
    assert [r.text for r in refs] == ["<7>", "<5>"]


def test_references_come_in_text_order_with_exact_spans() -> None:
    text = "At <4>, [5] reaches for [3, 4] until <6>-<8>."
    refs = find_references(text)
    assert [r.kind for r in refs] == ["frame", "instance", "instance", "frame"]
    for ref in refs:
        assert text[ref.start : ref.end] == ref.text
        assert ref.span == (ref.start, ref.end)
    assert instance_ids(refs) == [5, 3, 4]
    assert frame_numbers(refs) == [4, 6, 7, 8]
    assert refs[-1].frame_numbers == (6, 7, 8)
    assert refs[1].frame_numbers == ()


def test_ids_are_unique_in_order_of_first_mention() -> None:
    refs = find_references("[4] and [2] then [4] [2] [9]")
    assert instance_ids(refs) == [4, 2, 9]


def test_reference_to_dict_is_json_ready() -> None:
    refs = find_references("[1] [2] at <3>")
    data = json.loads(json.dumps([r.to_dict() for r in refs]))
    assert data == [
        {"kind": "instance", "span": [0, 7], "text": "[1] [2]", "ids": [1, 2]},
        {"kind": "frame", "span": [11, 14], "text": "<3>", "frames": [3, 3], "seconds": None},
    ]


def test_parses_the_authors_video_predictions(reference_dir) -> None:
    """Every ``[ID]`` the authors' model wrote is found (cross-checked with a plain scan)."""
    import re

    records = json.loads((reference_dir / "video_oe_predictions_example.json").read_text())
    assert len(records) > 1000 - 10
    checked = 0
    for record in records:
        text = record["model_prediction"]
        simple = [int(m) for m in re.findall(r"\[(\d+)\](?!\()", text) if int(m) > 0]
        assert sorted(set(instance_ids(find_references(text)))) == sorted(set(simple)), text
        frames = [int(m) for m in re.findall(r"<(\d+)>", text) if int(m) > 0]
        assert set(frame_numbers(find_references(text))) >= set(frames), text
        checked += bool(simple)
    assert checked > 500  # most predictions mention instances


def test_find_references_rejects_non_text() -> None:
    with pytest.raises(InstitTypeError, match="needs a str"):
        find_references(b"[1]")  # type: ignore[arg-type]


def test_formatting_helpers_round_trip() -> None:
    assert format_ids(3) == "[3]"
    assert format_ids([3, 4, 5]) == "[3] [4] [5]"
    assert format_frame(5) == "<5>"
    assert format_frame_range(5, 7) == "<5>-<7>"
    assert format_frame_range(5, 5) == "<5>"
    text = f"{format_ids([1, 2])} at {format_frame_range(2, 4)}"
    assert instance_ids(find_references(text)) == [1, 2]
    assert frame_numbers(find_references(text)) == [2, 3, 4]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: format_ids(0), InstitValueError),
        (lambda: format_ids([1, -2]), InstitValueError),
        (lambda: format_ids(True), InstitTypeError),
        (lambda: format_frame(1.0), InstitTypeError),
        (lambda: format_frame_range(7, 5), InstitValueError),
    ],
)
def test_formatting_rejects_bad_values(call, error) -> None:
    with pytest.raises(error, match="pass"):
        call()


# -- instance-caption replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "[1]: a man in red.\n[2]: a dog.",
        "[1] - a man in red.\n[2] - a dog.",
        "[1] a man in red.\n[2] a dog.",
        "**[1]**: a man in red.\n**[2]**: a dog.",
        "**[1]:** a man in red.\n**[2]:** a dog.",
        "1. [1]: a man in red.\n2. [2]: a dog.",
        "- [1]: a man in red.\n- [2]: a dog.",
        "* **[1]** — a man in red.\n* **[2]** — a dog.",
        "Here are the instances:\n\n[1]: a man in red.\n\n[2]: a dog.\n",
        "[1]: a man in red. [2]: a dog.",
        "Instance [1]: a man in red.\nInstance [2]: a dog.",
        "[1]: a man\nin red.\n[2]: a dog.",
        "[1]: a man in red.,\n[2]: a dog.",
    ],
)
def test_instance_caption_styles(reply: str) -> None:
    assert parse_instance_captions(reply) == {1: "a man in red.", 2: "a dog."}


def test_instance_captions_keep_references_inside_captions() -> None:
    reply = "[1]: a woman holding [2] next to [3].\n[2]: a cup held by [1]."
    assert parse_instance_captions(reply) == {
        1: "a woman holding [2] next to [3].",
        2: "a cup held by [1].",
    }


def test_instance_captions_edge_cases() -> None:
    assert parse_instance_captions("") == {}
    assert parse_instance_captions("The image shows a street.") == {}
    assert parse_instance_captions("[0]: nothing\n[3]:\n[4]: a car") == {4: "a car"}
    assert parse_instance_captions("[2]: a cat\n[1]: a hat\n[2]: sleeping") == {
        1: "a hat",
        2: "a cat sleeping",
    }
    with pytest.raises(InstitTypeError, match="needs a str"):
        parse_instance_captions(None)  # type: ignore[arg-type]


def test_describe_prompts_fill_placeholders_and_validate() -> None:
    prompts = DescribePrompts()
    assert "[1] [3]" in prompts.instances_prompt([1, 3])
    assert prompts.instances_prompt(None) == prompts.all_instances
    assert "[7]" in prompts.single_instance_prompt(7)
    change = prompts.temporal_change_prompt(2, 3, 8)
    assert "<2>" in change and "<3>" in change and "<8>" in change
    assert find_references(prompts.video_prompt(4))  # the prompt shows the conventions
    custom = DescribePrompts(image="Caption this.")
    assert custom.image == "Caption this." and custom.instances == prompts.instances
    with pytest.raises(InstitValueError, match="placeholder"):
        DescribePrompts(single_instance="Describe {name}")
    with pytest.raises(InstitTypeError, match="non-empty str"):
        DescribePrompts(image="  ")
