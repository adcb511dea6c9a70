"""The Inst-It Dataset: streaming typed readers, validation, LLaVA conversion and its CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from instit.cli import main as cli_main
from instit.dataset import (
    ImageRecord,
    JsonArrayReader,
    VideoRecord,
    convert_to_llava,
    image_to_llava,
    iter_json_array,
    read_image_records,
    read_records,
    read_video_records,
    video_to_llava,
)
from instit.dataset.schema import detect_kind
from instit.errors import DatasetError, InstitValueError
from instit.results import FrameDescription, ImageDescription, VideoDescription
from lock_holder import lock_held_elsewhere


def video_record(video_id: int = 12) -> dict:
    """A video record in the file's schema; frames listed out of order on purpose."""
    return {
        "video_id": video_id,
        "frame_level_caption": [
            {
                "timestamp": 2,
                "frame_name": "002.jpg",
                "instance_level": {"10": "a dog runs", "2": "a man in red sits"},
                "image_level": "[2] sits on a bench while [10] runs past.",
                "temporal_change": "[10] enters from the left; [1] leaves.",
            },
            {
                "timestamp": 1,
                "frame_name": "001.jpg",
                "instance_level": {"1": "a woman with a kite", "2": "a man in red stands"},
                "image_level": "A park: [1] flies a kite next to [2].",
                "temporal_change": "",
            },
            {
                "timestamp": 3,
                "frame_name": "003.jpg",
                "instance_level": {},
                "image_level": "An empty bench.",
                "temporal_change": None,
            },
        ],
        "question_answer_pairs": [
            {"question": "What does [2] do at <2>?", "answer": "[2] sits on the bench."},
            {"question": "When does [10] appear?", "answer": "At <2>."},
        ],
        "video_level_caption": "[1] flies a kite <1>, then [10] runs past [2] <2>-<3>.",
        "video_path": f"videos/{video_id}",
    }


def image_record(image_id: int = 7) -> dict:
    """An image record in the file's schema."""
    return {
        "image_id": image_id,
        "instance_level_caption": {"3": "a red “kite” über the trees", "1": "a child"},
        "image_level_caption": "[1] holds the string of [3].",
        "image_path": f"images/{image_id}.jpg",
    }


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


# -- reading -------------------------------------------------------------------------------------


def test_video_records_are_typed_and_frames_ordered(tmp_path):
    path = write_json(tmp_path / "v.json", [video_record(12), video_record(13)])
    videos = list(read_video_records(path))
    assert [v.video_id for v in videos] == [12, 13]
    video = videos[0]
    assert isinstance(video, VideoRecord)
    assert [f.timestamp for f in video.frame_level_caption] == [1, 2, 3]
    assert [f.frame_name for f in video.frame_level_caption] == ["001.jpg", "002.jpg", "003.jpg"]
    assert video.frame_level_caption[1].instance_ids == ["2", "10"]  # numeric, not string order
    assert video.frame_level_caption[2].temporal_change is None
    assert video.question_answer_pairs[1].answer == "At <2>."
    assert video.video_path == "videos/12"
    # the record round-trips through the file schema and JSON
    back = VideoRecord.from_dict(json.loads(json.dumps(video.to_dict())))
    assert back == video


def test_image_records_are_typed(tmp_path):
    path = write_json(tmp_path / "i.json", [image_record(7), image_record(8)])
    images = list(read_image_records(path))
    assert [i.image_id for i in images] == [7, 8]
    assert [i.image_path for i in images] == ["images/7.jpg", "images/8.jpg"]
    assert images[0].instance_ids == ["1", "3"]
    assert images[0].instance_level_caption["3"] == "a red “kite” über the trees"
    assert ImageRecord.from_dict(images[0].to_dict()) == images[0]


def test_kind_is_detected_from_the_first_record(tmp_path):
    videos = write_json(tmp_path / "v.json", [video_record()])
    images = write_json(tmp_path / "i.json", [image_record()])
    assert detect_kind(videos) == "video" and detect_kind(images) == "image"
    assert [type(r) for r in read_records(images)] == [ImageRecord]
    assert [type(r) for r in read_records(videos, "video")] == [VideoRecord]
    with pytest.raises(DatasetError, match=r"empty list.*kind="):
        detect_kind(write_json(tmp_path / "e.json", []))
    with pytest.raises(DatasetError, match="neither 'video_id' nor 'image_id'"):
        detect_kind(write_json(tmp_path / "x.json", [{"id": 1}]))
    with pytest.raises(InstitValueError, match="'video' or 'image'"):
        read_records(videos, "audio")  # type: ignore[arg-type]


def test_streaming_reads_record_by_record_in_bounded_memory(tmp_path):
    """A ~6 MB file is read one record at a time: peak memory is a small fraction of it."""
    path = tmp_path / "big.json"
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        for i in range(2000):
            record = video_record(i)
            record["video_level_caption"] = f"<{i % 8 + 1}> " + "[1] walks past [2]. " * 120
            out.write(("," if i else "") + json.dumps(record))
        out.write("]")
    size = path.stat().st_size
    assert size > 5_000_000

    reader = JsonArrayReader(path)
    first = next(iter(reader))
    assert first["video_id"] == 0 and reader.bytes_read < size // 50  # not read whole

    tracemalloc.start()
    try:
        count = 0
        for count, video in enumerate(read_video_records(path), start=1):
            assert video.video_id == count - 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte file"


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 16])
def test_any_chunk_size_gives_what_json_load_gives(tmp_path, chunk_size):
    # multi-byte UTF-8 split across reads, numbers at chunk ends, nested arrays, odd whitespace
    items = [video_record(1), image_record(2), {"n": 12345678901234567890}, [1, [2.5e3]], "東京"]
    path = tmp_path / "mixed.json"
    path.write_text(" \n[ " + " ,\n\t".join(json.dumps(x, ensure_ascii=False) for x in items) + "]")
    assert list(iter_json_array(path, chunk_size=chunk_size)) == items


def test_empty_array_and_top_level_numbers(tmp_path):
    assert list(iter_json_array(write_json(tmp_path / "e.json", []))) == []
    path = tmp_path / "n.json"
    path.write_text("[1234567,89]")
    assert list(iter_json_array(path, chunk_size=3)) == [1234567, 89]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"video_id": 1}', r"does not start with a JSON array"),
        ("", r"does not start with a JSON array"),
        ('[{"video_id": 1}, {"video_id": 2', r"record 1 is not valid JSON.*truncated"),
        ('[{"video_id": 1}, {"video_id": 2}', r"after record 1, found the end of the file"),
        ('[{"video_id": 1} {"video_id": 2}]', r"expected ',' or '\]' after record 0, found '\{'"),
        ('[{"video_id": 1}, {"video_id": 2,}]', r"record 1 is not valid JSON"),
    ],
)
def test_damaged_files_name_the_record(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        list(iter_json_array(path, chunk_size=4))


def test_unreadable_files(tmp_path):
    with pytest.raises(DatasetError, match="cannot open"):
        list(iter_json_array(tmp_path / "missing.json"))
    latin = tmp_path / "latin1.json"
    latin.write_bytes('["caf\u00e9"]'.encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        list(iter_json_array(latin))
    with pytest.raises(InstitValueError, match="chunk_size"):
        JsonArrayReader(latin, chunk_size=0)


def _image_file(tmp_path: Path, middle: bytes, name: str = "bad.json") -> Path:
    """An image file whose second of three records is ``middle`` (raw bytes)."""
    good = [json.dumps(image_record(i), ensure_ascii=False).encode() for i in (1, 3)]
    path = tmp_path / name
    path.write_bytes(b"[" + good[0] + b",\n" + middle + b",\n" + good[1] + b"]\n")
    return path


@pytest.mark.parametrize("chunk_size", [1, 5, 1 << 16])
def test_a_byte_that_is_not_utf8_names_its_record_and_offset(tmp_path, chunk_size):
    middle = json.dumps(image_record(2), ensure_ascii=False).encode().replace(b"child", b"ch\xefld")
    path = _image_file(tmp_path, middle)
    offset = path.read_bytes().index(b"\xef")
    reader = JsonArrayReader(path, chunk_size=chunk_size)
    records = iter(read_records(path, "image", reader=reader))
    assert next(records).image_id == 1  # records before the bad byte are still read
    with pytest.raises(DatasetError, match=rf"record 1 is not UTF-8.*byte {offset} .*re-encode"):
        next(records)


@pytest.mark.parametrize("chunk_size", [1, 3, 1 << 16])
def test_a_utf8_byte_order_mark_is_skipped(tmp_path, chunk_size):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([image_record(1)]).encode())
    assert [r.image_id for r in read_image_records(path)] == [1]
    assert list(iter_json_array(path, chunk_size=chunk_size)) == [image_record(1)]


@pytest.mark.parametrize(
    ("middle", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, r"record 1 \(from character \d+ of the file\) nests"),
        (
            b'{"image_id": ' + b"9" * 5000 + b"}",
            r"record 1 \(from character \d+ of the file\) holds an integer with more than 4300",
        ),
        (b'{"image_id": 2, "instance_le\n', r"record 1 is not valid JSON"),
        (b'{"image_id": 2, "image_path": "a\x00b"}', r"record 1 is not valid JSON"),
    ],
    ids=["deep nesting", "5000-digit integer", "corrupt middle line", "control character"],
)
def test_damaged_middle_records_are_named(tmp_path, middle, message):
    path = _image_file(tmp_path, middle)
    raw = iter(iter_json_array(path))
    assert next(raw) == image_record(1)  # the records before the damage are read
    with pytest.raises(DatasetError, match=message):
        next(raw)
    for read in (read_image_records, read_records):
        records = iter(read(path))
        assert next(records) == ImageRecord.from_dict(image_record(1))
        with pytest.raises(DatasetError, match=message):
            next(records)


@pytest.mark.parametrize("tail", [b"garbage", b"]", b",", b'[{"image_id": 9}]', b"\x00", b"\xff"])
@pytest.mark.parametrize("chunk_size", [1, 1 << 16])
def test_anything_after_the_closing_bracket_is_refused(tmp_path, tail, chunk_size):
    path = tmp_path / "joined.json"
    path.write_bytes(json.dumps([image_record(1)]).encode() + b"\n" + tail)
    with pytest.raises(DatasetError, match=r"(after the array's closing '\]'|not UTF-8)"):
        list(iter_json_array(path, chunk_size=chunk_size))
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"[] " + tail)
    with pytest.raises(DatasetError, match=r"(after the array's closing '\]'|not UTF-8)"):
        list(iter_json_array(empty, chunk_size=chunk_size))
    path.write_bytes(json.dumps([image_record(1)]).encode() + b" \n\t\r\n")
    assert list(iter_json_array(path, chunk_size=chunk_size)) == [image_record(1)]


def test_text_that_is_not_unicode_stops_a_conversion_cleanly(tmp_path):
    source = tmp_path / "i.json"
    source.write_text(
        '[{"image_id": 1, "instance_level_caption": {"1": "a \\ud800"}, '
        '"image_level_caption": "x", "image_path": "a.jpg"}]'
    )
    with pytest.raises(DatasetError, match=r"record 0 holds text that is not valid Unicode"):
        convert_to_llava(source, tmp_path / "o.jsonl", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.json"]


def _break(record: dict, path: str, value: object) -> dict:
    """A copy of ``record`` with the field at dotted ``path`` set to ``value`` (or deleted)."""
    broken = copy.deepcopy(record)
    *parents, last = path.split(".")
    target = broken
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key = int(last) if isinstance(target, list) else last
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "field", "expected"),
    [
        ("video_level_caption", KeyError, "'video_level_caption'", "should be str, got missing"),
        ("video_path", 5, "'video_path'", "should be str, got a int"),
        ("frame_level_caption", {}, "'frame_level_caption'", "should be list, got a dict"),
        ("frame_level_caption.1", "text", "'frame_level_caption[1]'", "an object, got a str"),
        (
            "frame_level_caption.0.instance_level.10",
            3,
            "\"frame_level_caption[0].instance_level['10']\"",
            "should be str, got a int",
        ),
        (
            "frame_level_caption.2.timestamp",
            "3",
            "'frame_level_caption[2].timestamp'",
            "should be int, got a str",
        ),
        (
            "frame_level_caption.2.timestamp",
            True,
            "'frame_level_caption[2].timestamp'",
            "should be int, got a bool",
        ),
        ("frame_level_caption.2.timestamp", 2, "'frame_level_caption[2].timestamp'", "unique"),
        ("frame_level_caption.2.timestamp", 0, "'frame_level_caption[2].timestamp'", "1-based"),
        (
            "frame_level_caption.1.temporal_change",
            ["x"],
            "'frame_level_caption[1].temporal_change'",
            "should be str, got a list",
        ),
        (
            "question_answer_pairs.1.answer",
            KeyError,
            "'question_answer_pairs[1].answer'",
            "got missing",
        ),
    ],
)
def test_video_validation_names_record_id_and_field(tmp_path, path, value, field, expected):
    records = [video_record(10), video_record(11), _break(video_record(12), path, value)]
    file = write_json(tmp_path / "v.json", records)
    stream = read_video_records(file)
    assert [next(stream).video_id, next(stream).video_id] == [10, 11]  # earlier records are fine
    with pytest.raises(DatasetError) as info:
        next(stream)
    message = str(info.value)
    assert f"{file}: record 2 (video_id 12): field {field}" in message, message
    assert expected in message and "Inst-It Dataset schema" in message


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("image_id", "2", "'image_id'"),
        ("instance_level_caption", ["a"], "'instance_level_caption'"),
        ("instance_level_caption.1", None, "\"instance_level_caption['1']\""),
        ("image_level_caption", KeyError, "'image_level_caption'"),
        ("image_path", None, "'image_path'"),
    ],
)
def test_image_validation_names_record_id_and_field(tmp_path, path, value, field):
    file = write_json(tmp_path / "i.json", [image_record(1), _break(image_record(2), path, value)])
    with pytest.raises(DatasetError, match=r"record 1 \(image_id '?2'?\): field ") as info:
        list(read_image_records(file))
    assert f"field {field}" in str(info.value)


def test_a_record_that_is_not_an_object(tmp_path):
    file = write_json(tmp_path / "i.json", [image_record(1), ["not", "a", "record"]])
    with pytest.raises(DatasetError, match=r"record 1 is a list, not an object"):
        list(read_image_records(file))


def test_records_written_by_describe_results_are_valid(tmp_path):
    """``VideoDescription.to_dataset_record`` (what ``describe`` produces) reads back here."""
    description = VideoDescription(
        frames=[
            FrameDescription(1, "001.jpg", {1: "a cat"}, "[1] sleeps.", ""),
            FrameDescription(2, "002.jpg", {1: "a cat", 2: "a dog"}, "[2] barks.", "[2] arrives."),
        ],
        video_caption="[2] wakes [1] at <2>.",
        question_answer_pairs=[{"question": "Who arrives?", "answer": "[2] at <2>."}],
    )
    record = description.to_dataset_record(video_id=5, video_path="v/5", frame_names=["a", "b"])
    video = next(read_video_records(write_json(tmp_path / "v.json", [record])))
    assert [f.instance_ids for f in video.frame_level_caption] == [["1"], ["1", "2"]]
    assert video_to_llava(video) is not None


def test_description_records_read_back_field_for_field(tmp_path):
    """What ``to_dataset_record`` writes is what the dataset readers read (one schema)."""
    video = VideoDescription(
        frames=[
            FrameDescription(2, "b.jpg", {1: "a cat"}, "[1] wakes.", "[1] opens its eyes."),
            FrameDescription(1, "a.jpg", {1: "a cat", 12: "a dog"}, "[1] sleeps.", ""),
        ],
        video_caption="[1] wakes at <2>.",
        question_answer_pairs=[{"question": "Who wakes?", "answer": "[1]."}],
    )
    record = video.to_dataset_record(video_id=9, video_path="v/9")
    read = next(read_video_records(write_json(tmp_path / "v.json", [record])))
    assert read == VideoRecord.from_dict(record)
    assert [f.timestamp for f in read.frame_level_caption] == [1, 2]  # the reader sorts
    assert read.frame_level_caption[0].instance_ids == ["1", "12"]
    assert (
        VideoDescription.from_dataset_record(read.to_dict()).to_dataset_record(
            video_id=9, video_path="v/9"
        )
        == read.to_dict()
    )
    image = ImageDescription({3: "a kite", 1: "a child"}, "[1] holds [3].")
    image_record_ = image.to_dataset_record(image_id=4, image_path="i/4.jpg")
    read_image = next(read_image_records(write_json(tmp_path / "i.json", [image_record_])))
    assert read_image.to_dict() == image_record_
    assert ImageDescription.from_dataset_record(read_image.to_dict()) == image


@pytest.mark.parametrize("absent", [False, True], ids=["null", "absent"])
def test_temporal_change_null_is_accepted_by_both_readers(tmp_path, absent):
    """Regression: ``VideoDescription.from_dataset_record`` refused ``temporal_change: null``
    (and an absent one), which the dataset reader accepts; both now use the one schema."""
    record = video_record()
    frame = next(f for f in record["frame_level_caption"] if f["timestamp"] == 3)
    if absent:
        del frame["temporal_change"]
    read = next(read_video_records(write_json(tmp_path / "v.json", [record])))
    assert read.frame_level_caption[2].temporal_change is None
    description = VideoDescription.from_dataset_record(record)
    assert [f.temporal_change for f in description.frames] == [
        "",
        "[10] enters from the left; [1] leaves.",
        "",
    ]
    frame["temporal_change"] = 3  # and both refuse what the schema refuses, with one message
    with pytest.raises(DatasetError) as from_file:
        list(read_video_records(write_json(tmp_path / "bad.json", [record])))
    with pytest.raises(DatasetError) as from_description:
        VideoDescription.from_dataset_record(record)
    field = "field 'frame_level_caption[2].temporal_change' should be str, got a int"
    assert field in str(from_file.value) and field in str(from_description.value)


# -- conversion ----------------------------------------------------------------------------------


def test_video_conversation_follows_the_paper():
    """Per frame an instance turn and a holistic turn, the changes between consecutive frames,
    the video caption, then the QA pairs; ``[ID]`` and ``<t>`` throughout, media token once."""
    item = video_to_llava(VideoRecord.from_dict(video_record(12)))
    assert item is not None
    assert (item["id"], item["video"]) == ("inst_it_video_12", "videos/12")
    conversations = item["conversations"]
    assert [m["from"] for m in conversations] == ["human", "gpt"] * (len(conversations) // 2)
    pairs = zip(conversations[::2], conversations[1::2], strict=True)
    turns = [(human["value"], gpt["value"]) for human, gpt in pairs]
    assert turns == [
        (
            "<image>\nDescribe each marked instance at <1>. Refer to every instance by its ID as "
            "[ID].",
            "[1]: a woman with a kite\n[2]: a man in red stands",
        ),
        (
            "Describe the whole frame at <1> in detail. Refer to the marked instances as [ID].",
            "A park: [1] flies a kite next to [2].",
        ),
        (
            "Describe each marked instance at <2>. Refer to every instance by its ID as [ID].",
            "[2]: a man in red sits\n[10]: a dog runs",
        ),
        (
            "Describe the whole frame at <2> in detail. Refer to the marked instances as [ID].",
            "[2] sits on a bench while [10] runs past.",
        ),
        (
            "What changed from <1> to <2>? Refer to instances as [ID] and to frames as <t>.",
            "[10] enters from the left; [1] leaves.",
        ),
        # <3> has no instances (no instance turn) and no recorded change (no temporal turn)
        (
            "Describe the whole frame at <3> in detail. Refer to the marked instances as [ID].",
            "An empty bench.",
        ),
        (
            "Describe the whole video in detail. Refer to instances as [ID] and to frames or "
            "time spans as <t> or <start>-<end>.",
            "[1] flies a kite <1>, then [10] runs past [2] <2>-<3>.",
        ),
        ("What does [2] do at <2>?", "[2] sits on the bench."),
        ("When does [10] appear?", "At <2>."),
    ]
    assert sum(m["value"].count("<image>") for m in conversations) == 1


def test_turn_types_can_be_chosen():
    video = VideoRecord.from_dict(video_record())
    qa = video_to_llava(video, include=["qa"])
    assert qa is not None
    assert [m["value"] for m in qa["conversations"]] == [
        "<image>\nWhat does [2] do at <2>?",
        "[2] sits on the bench.",
        "When does [10] appear?",
        "At <2>.",
    ]
    temporal = video_to_llava(video, include=("temporal",))
    assert temporal is not None and len(temporal["conversations"]) == 2
    empty = VideoRecord.from_dict({**video_record(), "question_answer_pairs": []})
    assert video_to_llava(empty, include=["qa"]) is None
    with pytest.raises(InstitValueError, match="choose one or more of instance, holistic"):
        video_to_llava(video, include=["captions"])
    with pytest.raises(InstitValueError, match="choose one or more"):
        video_to_llava(video, include=[])


def test_image_conversation_is_one_instance_turn_and_one_holistic_turn():
    item = image_to_llava(ImageRecord.from_dict(image_record(7)))
    assert item == {
        "id": "inst_it_image_7",
        "image": "images/7.jpg",
        "conversations": [
            {
                "from": "human",
                "value": "<image>\nDescribe each marked instance in the image. Refer to every "
                "instance by its ID as [ID].",
            },
            {"from": "gpt", "value": "[1]: a child\n[3]: a red “kite” über the trees"},
            {
                "from": "human",
                "value": "Describe the whole image in detail. Refer to the marked instances by "
                "their IDs as [ID].",
            },
            {"from": "gpt", "value": "[1] holds the string of [3]."},
        ],
    }
    blank = ImageRecord.from_dict({**image_record(), "image_level_caption": " "})
    only = image_to_llava(blank)
    assert only is not None and len(only["conversations"]) == 2
    assert image_to_llava(blank, include=["holistic"]) is None


def test_convert_writes_jsonl_and_refuses_to_overwrite(tmp_path):
    source = write_json(tmp_path / "v.json", [video_record(i) for i in range(5)])
    output = tmp_path / "out" / "sft.jsonl"
    result = convert_to_llava(source, output, progress=False)
    lines = output.read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines]
    assert [i["id"] for i in items] == [f"inst_it_video_{i}" for i in range(5)]
    assert items[3] == video_to_llava(VideoRecord.from_dict(video_record(3)))
    assert (result.kind, result.records, result.conversations, result.skipped) == ("video", 5, 5, 0)
    assert result.turns == 5 * 9
    assert json.loads(result.to_json())["output"] == str(output)

    output.write_text("keep me\n")
    with pytest.raises(
        InstitValueError, match=r"exists: choose another output or pass overwrite=True$"
    ):
        convert_to_llava(source, output, progress=False)
    assert output.read_text() == "keep me\n"
    again = convert_to_llava(source, output, overwrite=True, limit=2, progress=False)
    assert again.records == 2 and len(output.read_text().splitlines()) == 2


def test_convert_counts_skipped_records_and_checks_its_arguments(tmp_path):
    source = write_json(
        tmp_path / "i.json",
        [image_record(1), {**image_record(2), "instance_level_caption": {}}, image_record(3)],
    )
    result = convert_to_llava(
        source, tmp_path / "o.jsonl", include=["instance"], kind="image", progress=False
    )
    assert (result.records, result.conversations, result.skipped, result.turns) == (3, 2, 1, 2)
    with pytest.raises(InstitValueError, match="limit"):
        convert_to_llava(source, tmp_path / "x.jsonl", limit=-1, progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        convert_to_llava(tmp_path / "nope.json", tmp_path / "x.jsonl", progress=False)
    with pytest.raises(InstitValueError, match="'video' or 'image'"):
        convert_to_llava(source, tmp_path / "new" / "x.jsonl", kind="audio", progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "new").exists()


def test_a_bad_record_leaves_no_output_behind(tmp_path):
    records = [video_record(1), _break(video_record(2), "video_path", None)]
    source = write_json(tmp_path / "v.json", records)
    output = tmp_path / "sft.jsonl"
    with pytest.raises(DatasetError, match=r"record 1 \(video_id 2\): field 'video_path'"):
        convert_to_llava(source, output, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]  # no output, no temp file


# -- command line --------------------------------------------------------------------------------


def test_cli_to_llava(tmp_path, capsys):
    source = write_json(tmp_path / "i.json", [image_record(i) for i in range(3)])
    output = tmp_path / "sft.jsonl"
    args = ["dataset", "to-llava", str(source), "-o", str(output), "--no-progress"]
    assert cli_main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "source": str(source),
        "output": str(output),
        "kind": "image",
        "records": 3,
        "conversations": 3,
        "turns": 6,
        "skipped": 0,
    }
    assert len(output.read_text().splitlines()) == 3

    # an existing output is a usage error (exit 2) that names the flag
    assert cli_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main([*args, "--overwrite", "--include", "holistic", "--limit", "1"]) == 0
    assert "wrote 1 conversations (1 turns) from 1 image records" in capsys.readouterr().out
    assert [len(json.loads(x)["conversations"]) for x in output.read_text().splitlines()] == [2]

    # a record that breaks the schema: exit 2 with the record and field named
    bad = write_json(tmp_path / "bad.json", [_break(image_record(9), "image_path", 1)])
    assert cli_main(["dataset", "to-llava", str(bad), "-o", str(tmp_path / "b.jsonl")]) == 2
    assert "record 0 (image_id 9): field 'image_path'" in capsys.readouterr().err


def test_installed_console_script_converts(tmp_path):
    script = Path(sys.executable).with_name("instit")
    source = write_json(tmp_path / "v.json", [video_record(4)])
    output = tmp_path / "v.jsonl"
    done = subprocess.run(
        [str(script), "dataset", "to-llava", str(source), "-o", str(output), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["conversations"] == 1
    assert json.loads(output.read_text())["id"] == "inst_it_video_4"
    again = subprocess.run(
        [str(script), "dataset", "to-llava", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "exists" in again.stderr


def test_unicode_line_separators_stay_inside_one_jsonl_line(tmp_path):
    captions = {"1": "a\x85b", "2": "c\u2028d\u2029e"}
    source = write_json(
        tmp_path / "i.json", [{**image_record(1), "instance_level_caption": captions}]
    )
    output = tmp_path / "o.jsonl"
    convert_to_llava(source, output, progress=False)
    text = output.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 1
    [item] = [json.loads(line) for line in text.splitlines()]
    assert item == image_to_llava(
        ImageRecord.from_dict({**image_record(1), "instance_level_caption": captions})
    )


# -- hardening: outputs ------------------------------------------------------------------------


def test_to_llava_never_overwrites_its_own_source(tmp_path, monkeypatch, capsys):
    source = write_json(tmp_path / "v.json", [video_record(i) for i in range(2)])
    before = source.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    monkeypatch.chdir(tmp_path)
    for output in (source, Path("./v.json"), link):
        with pytest.raises(InstitValueError, match="would replace the input"):
            convert_to_llava(source, output, overwrite=True, progress=False)
    args = ["dataset", "to-llava", str(source), "-o", "link.jsonl", "--overwrite"]
    assert cli_main([*args, "--no-progress"]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert source.read_bytes() == before
    hard = tmp_path / "hard.jsonl"  # a hard link is the same file too
    hard.hardlink_to(source)
    with pytest.raises(InstitValueError, match="would replace the input"):
        convert_to_llava(source, hard, overwrite=True, progress=False)
    assert source.read_bytes() == before


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/sft.jsonl", "folder {tmp}/missing does not exist"),
        ("sft.json", "unknown extension '.json': use one of .jsonl"),
        ("folder.jsonl", "is a folder: pass a file path"),
        ("afile/sft.jsonl", "afile is a file, not a folder"),
        ("old.jsonl", "exists: choose another path or pass --overwrite"),
    ],
)
def test_to_llava_output_problems_are_one_line_usage_errors(tmp_path, capsys, output, message):
    source = write_json(tmp_path / "v.json", [video_record(1)])
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "old.jsonl").write_text("keep me\n")
    code = cli_main(["dataset", "to-llava", str(source), "-o", str(tmp_path / output)])
    err = capsys.readouterr().err
    assert code == 2 and message.format(tmp=tmp_path) in err
    assert err.count("\n") == 1 and "overwrite=True" not in err
    assert (tmp_path / "old.jsonl").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "afile", "folder.jsonl", "old.jsonl", "v.json"
    ]  # fmt: skip


def test_a_second_conversion_into_the_same_output_fails_fast(tmp_path):
    source = write_json(tmp_path / "v.json", [video_record(i) for i in range(3)])
    output = tmp_path / "sft.jsonl"
    with lock_held_elsewhere(output) as holder:
        with pytest.raises(InstitValueError, match=rf"another instit process \(pid {holder.pid}\)"):
            convert_to_llava(source, output, progress=False)
        assert not output.exists()
        holder.kill()  # a crashed run: its lock file stays behind but holds nothing
        holder.wait()
        assert (tmp_path / ".sft.jsonl.instit-lock").exists()
        assert convert_to_llava(source, output, progress=False).conversations == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.jsonl", "v.json"]
