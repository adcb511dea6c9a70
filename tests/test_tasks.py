"""``ask`` / ``describe_instances``: orchestration, parsing and result objects.

``ScriptedModel`` stands in for the model's *text output only*: it implements the
``generate`` / ``stream`` / ``encode_media`` protocol and answers with prepared strings, so the
parsing and batching logic is tested exactly.  Media, instances and marks are the real ones;
tests at the end run the real tiny model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from instit.errors import InstitError, InstitTypeError, InstitValueError, MediaError
from instit.results import (
    Answer,
    AnswerStream,
    FrameDescription,
    ImageDescription,
    VideoDescription,
)
from instit.tasks import DescribePrompts, GenerativeModel, ask, ask_many, describe_instances


class Encoded:
    """What ScriptedModel.encode_media returns (wraps the media it was given)."""

    def __init__(self, media: Any) -> None:
        self.media = media


class ScriptedModel:
    """Implements the model protocol; ``reply(media, prompt)`` supplies every answer's text."""

    def __init__(self, reply: Callable[[Any, str], str]) -> None:
        self.reply = reply
        self.calls: list[tuple[list[Any], list[str], dict[str, Any]]] = []
        self.encoded: list[Any] = []

    def encode_media(self, media: Any) -> Encoded:
        self.encoded.append(media)
        return Encoded(media)

    def generate(self, media, prompts, *, max_new_tokens, temperature, progress) -> list[str]:
        options = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "progress": progress,
        }
        self.calls.append((list(media), list(prompts), options))
        return [
            self.reply(m.media if isinstance(m, Encoded) else m, p)
            for m, p in zip(media, prompts, strict=True)
        ]

    def stream(self, media, prompt, *, max_new_tokens, temperature) -> Iterator[str]:
        text = self.reply(media, prompt)
        for start in range(0, len(text), 4):
            yield text[start : start + 4]


def _image(width: int = 64, height: int = 48, value: int = 90) -> Image.Image:
    return Image.new("RGB", (width, height), (value, value // 2, 200))


def _frames(count: int = 4) -> list[Image.Image]:
    return [_image(value=20 * t) for t in range(count)]


def _boxes(ids: list[int], size: tuple[int, int] = (64, 48)) -> Any:
    from instit.instances import Instances

    boxes = [[4 + 6 * n, 4, 20 + 6 * n, 30] for n in range(len(ids))]
    return Instances.from_boxes(np.array(boxes, dtype=float), ids, image_size=size)


# -- ask ------------------------------------------------------------------------------------------


def test_scripted_model_satisfies_the_protocol() -> None:
    assert isinstance(ScriptedModel(lambda m, p: ""), GenerativeModel)


def test_ask_image_parses_references() -> None:
    model = ScriptedModel(lambda m, p: "[1] holds [2, 3]; [1] smiles at [9].")
    image = _image()
    answer = ask(model, image, "What is [1] doing?", instances=_boxes([1, 2, 3]), marks="as_is")
    assert isinstance(answer, Answer)
    assert answer.question == "What is [1] doing?"
    assert answer.instance_ids == [1, 2, 3, 9]
    assert answer.unknown_ids == [9]
    assert answer.frames == [] and answer.unknown_frames == []
    assert [r.ids for r in answer.references] == [(1,), (2, 3), (1,), (9,)]
    # as_is: the model saw the caller's pixels, and the caller's image is untouched
    sent = model.calls[0][0][0]
    assert np.array_equal(np.asarray(sent), np.asarray(image))
    assert answer.media is sent
    assert model.calls[0][1] == ["What is [1] doing?"]
    assert model.calls[0][2] == {"max_new_tokens": 256, "temperature": 0.0, "progress": True}


def test_ask_without_instances_checks_no_ids() -> None:
    model = ScriptedModel(lambda m, p: "[4] and [5]")
    answer = ask(model, np.zeros((8, 8, 3), np.uint8), "Who?")
    assert answer.instance_ids == [4, 5] and answer.unknown_ids == []


def test_ask_frame_reference_on_an_image_is_unknown() -> None:
    model = ScriptedModel(lambda m, p: "At <2> nothing.")
    answer = ask(model, _image(), "When?")
    assert answer.frames == [2] and answer.unknown_frames == [2] and answer.seconds is None


def test_ask_many_questions_encodes_the_media_once() -> None:
    model = ScriptedModel(lambda m, p: f"answer to {p}")
    answers = ask(model, _image(), ["q1 [1]?", "q2?", "q3?"], max_new_tokens=7, progress=True)
    assert [a.text for a in answers] == ["answer to q1 [1]?", "answer to q2?", "answer to q3?"]
    assert len(model.calls) == 1 and len(model.encoded) == 1
    media, prompts, options = model.calls[0]
    assert all(isinstance(m, Encoded) and m is media[0] for m in media)
    assert prompts == ["q1 [1]?", "q2?", "q3?"]
    assert options == {"max_new_tokens": 7, "temperature": 0.0, "progress": True}


def test_ask_many_batches_media_and_pairs_questions() -> None:
    first, second = _image(value=10), _image(value=200)

    def reply(media: Any, prompt: str) -> str:
        return f"{prompt} on {'video' if isinstance(media, list) else media.getpixel((0, 0))[0]}"

    model = ScriptedModel(reply)
    answers = ask_many(model, [first, second, _frames(3)], ["a", "b", "c"])
    assert [a.text for a in answers] == ["a on 10", "b on 200", "c on video"]
    assert len(model.calls) == 1 and model.encoded == []
    same = ask_many(
        model, [first, first], "same [2]?", instances=[_boxes([2]), None], marks="as_is"
    )
    assert [a.unknown_ids for a in same] == [[], []]
    assert model.calls[-1][1] == ["same [2]?", "same [2]?"]


def test_ask_many_reuses_a_repeated_media_object() -> None:
    model = ScriptedModel(lambda m, p: "ok")
    image = _image()
    ask_many(model, [image, image, _image()], ["a", "b", "c"])
    media = model.calls[0][0]
    assert isinstance(media[0], Encoded) and media[0] is media[1]
    assert isinstance(media[2], Image.Image) and len(model.encoded) == 1


def test_the_unmarked_media_loaded_at_the_edge_is_let_go_before_generation() -> None:
    """Regression: ask / ask_many / describe_instances kept every loaded (unmarked) image alive
    next to its marked copy until the answers came, twice the media memory of a batch (416 MB
    instead of 228 MB for 24 1080p images with boxes).  At ``generate`` only the marked images
    the model sees are alive."""
    import gc

    size = (97, 61)  # no other image in the test session has it
    alive: list[int] = []

    def count(media: Any, prompt: str) -> str:
        gc.collect()
        alive.append(sum(isinstance(o, Image.Image) and o.size == size for o in gc.get_objects()))
        return "[1]"

    arrays = [np.full((size[1], size[0], 3), 40 * n, np.uint8) for n in range(3)]  # not PIL
    boxes = _boxes([1], size)
    ask(ScriptedModel(count), arrays[0], "What is [1]?", instances=boxes)
    describe_instances(ScriptedModel(count), arrays[0], boxes, retries=0)
    media = [arrays[0], arrays[1], arrays[0], arrays[2]]
    ask_many(ScriptedModel(count), media, "q", instances=[boxes] * 4)
    assert alive == [1, 1, 1, 3, 3, 3, 3]


def test_ask_video_frames_and_seconds() -> None:
    from instit.instances import Tracks

    model = ScriptedModel(lambda m, p: "[2] enters at <2> and leaves during <3>-<4>; <9>?")
    frames = _frames(4)
    tracks = Tracks.from_list([_boxes([1]), _boxes([1, 2]), _boxes([2]), None])
    answer = ask(model, frames, "When?", instances=tracks, marks="as_is")
    sent = model.calls[0][0][0]
    assert isinstance(sent, list) and len(sent) == 4
    assert answer.frames == [2, 3, 4, 9]
    assert answer.unknown_frames == [9]
    assert answer.unknown_ids == []
    assert answer.seconds is None  # frame lists have no timestamps


def test_answer_seconds_from_timestamps() -> None:
    answer = Answer.parse("At <2>, then <3>-<4>.", "q", num_frames=4, timestamps=[0, 0.5, 1, 1.5])
    assert answer.frames == [2, 3, 4]
    assert answer.seconds == [0.5, 1.0, 1.5]
    assert [r.seconds for r in answer.references] == [(0.5, 0.5), (1.0, 1.5)]
    outside = Answer.parse("At <7>.", "q", num_frames=4, timestamps=[0, 0.5, 1, 1.5])
    assert outside.seconds == [None] and outside.unknown_frames == [7]


def test_one_hallucinated_frame_keeps_the_seconds_of_the_others() -> None:
    """A ``<t>`` past the last frame is reported; every valid frame keeps its time."""
    text = "[1] waves at <2>, sits at <9> and leaves at <4>."
    answer = Answer.parse(text, "q", num_frames=4, timestamps=[0, 0.5, 1, 1.5])
    assert answer.frames == [2, 9, 4]
    assert answer.seconds == [0.5, None, 1.5]
    assert answer.unknown_frames == [9]
    frame_refs = [r for r in answer.references if r.kind == "frame"]
    assert [r.seconds for r in frame_refs] == [(0.5, 0.5), None, (1.5, 1.5)]
    assert json.loads(answer.to_json())["seconds"] == [0.5, None, 1.5]
    # timestamps alone are enough to tell which frames exist
    unchecked = Answer.parse(text, "q", timestamps=[0, 0.5, 1, 1.5])
    assert unchecked.unknown_frames == [9] and unchecked.seconds == [0.5, None, 1.5]


def test_ask_stream_yields_chunks_then_the_answer() -> None:
    model = ScriptedModel(lambda m, p: "[1] waves at [2].")
    stream = ask(model, _image(), "Who waves?", instances=_boxes([1]), marks="as_is", stream=True)
    assert isinstance(stream, AnswerStream)
    chunks = list(stream)
    assert len(chunks) > 1 and "".join(chunks) == "[1] waves at [2]."
    answer = stream.answer()
    assert answer.text == "[1] waves at [2]." and answer.unknown_ids == [2]
    assert stream.answer() is answer


def test_stream_answer_reads_the_rest() -> None:
    model = ScriptedModel(lambda m, p: "a long answer about [3]")
    stream = ask(model, _image(), "q", stream=True)
    first = next(iter(stream))
    assert stream.text == first
    assert stream.answer().instance_ids == [3]
    assert stream.text == "a long answer about [3]"


def test_answer_serialises_to_json() -> None:
    model = ScriptedModel(lambda m, p: "[1] at <1>")
    answer = ask(model, _image(), "q?", instances=_boxes([1, 2]), marks="as_is")
    data = json.loads(answer.to_json())
    assert data == answer.to_dict()
    assert data["text"] == "[1] at <1>" and data["instance_ids"] == [1]
    assert data["frames"] == [1] and data["unknown_frames"] == []
    assert "media" not in data
    assert data["references"][0] == {"kind": "instance", "span": [0, 3], "text": "[1]", "ids": [1]}


def test_answer_notebook_views() -> None:
    model = ScriptedModel(lambda m, p: "[1] & [7] <b>")
    answer = ask(model, _image(), "What is [1]?", instances=_boxes([1]), marks="as_is")
    page = answer._repr_html_()
    assert "data:image/jpeg;base64," in page
    assert "What is" in page and "&amp;" in page and "&lt;b&gt;" in page  # escaped
    assert page.count("<span") == 3  # [1] in the question, [1] and [7] in the answer
    assert "not among" in page  # [7] is flagged
    assert not hasattr(answer, "_repr_png_")  # a notebook would store it next to the HTML
    video_answer = ask(ScriptedModel(lambda m, p: "<2>"), _frames(3), "q")
    assert video_answer._repr_html_().count("<img") == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"question": ""}, InstitValueError, "empty"),
        ({"question": []}, InstitValueError, "at least one"),
        ({"question": 3}, InstitTypeError, "question must be"),
        ({"question": ["ok", None]}, InstitTypeError, "every question"),
        ({"marks": "paint"}, InstitValueError, "marks='draw'"),
        ({"max_new_tokens": 0}, InstitValueError, "max_new_tokens=0; pass a positive"),
        ({"max_new_tokens": 2.5}, InstitTypeError, "max_new_tokens=2.5 is not an int"),
        ({"temperature": -1.0}, InstitValueError, r"temperature=-1.0; pass 0 \(greedy\)"),
        ({"temperature": float("nan")}, InstitValueError, "temperature=nan"),
        ({"temperature": "hot"}, InstitTypeError, "temperature='hot' is not a number"),
        ({"question": ["a", "b"], "stream": True}, InstitValueError, "one question"),
    ],
)
def test_ask_rejects_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    model = ScriptedModel(lambda m, p: "")
    arguments = {"question": "q", **kwargs}
    question = arguments.pop("question")
    with pytest.raises(error, match=match):
        ask(model, _image(), question, **arguments)
    assert model.calls == []


def test_ask_rejects_bad_model_and_media(tmp_path) -> None:
    with pytest.raises(InstitTypeError, match="from_pretrained"):
        ask(object(), _image(), "q")
    model = ScriptedModel(lambda m, p: "")
    with pytest.raises(InstitTypeError, match="media is None"):
        ask(model, None, "q")
    with pytest.raises(MediaError):
        ask(model, tmp_path / "missing.png", "q")
    with pytest.raises(MediaError, match="no frames"):
        ask(model, [], "q")
    with pytest.raises(InstitValueError, match="one question for all"):
        ask_many(model, [_image(), _image()], ["a", "b", "c"])
    with pytest.raises(InstitValueError, match="one entry per media"):
        ask_many(model, [_image(), _image()], "a", instances=[None])
    with pytest.raises(InstitTypeError, match="non-empty list"):
        ask_many(model, _image(), "a")


def test_ask_reports_a_model_returning_the_wrong_count() -> None:
    class Broken(ScriptedModel):
        def generate(self, media, prompts, **options) -> list[str]:
            return []

    with pytest.raises(InstitError, match="one str per prompt"):
        ask(Broken(lambda m, p: ""), _image(), "q")


def test_ask_does_not_modify_the_callers_inputs() -> None:
    frames = _frames(2)
    before = [np.asarray(f).copy() for f in frames]
    ask(ScriptedModel(lambda m, p: "x"), frames, "q")
    assert len(frames) == 2
    assert all(np.array_equal(np.asarray(f), b) for f, b in zip(frames, before, strict=True))


# -- describe_instances: images -------------------------------------------------------------------


def _describer(instances_reply: str, single: dict[int, str] | None = None) -> ScriptedModel:
    prompts = DescribePrompts()

    def reply(media: Any, prompt: str) -> str:
        if prompt == prompts.image:
            return "  A street with [1] and [2].\n"
        for instance_id, text in (single or {}).items():
            if prompt == prompts.single_instance_prompt(instance_id):
                return text
        if prompt.startswith("Describe each"):
            return instances_reply
        raise AssertionError(f"unexpected prompt {prompt!r}")

    return ScriptedModel(reply)


def test_describe_image_one_batch() -> None:
    model = _describer("Sure!\n1. **[1]**: a man in red,\n2. **[2]**: a dog\nsitting.")
    result = describe_instances(model, _image(), _boxes([1, 2]), marks="as_is", progress=False)
    assert isinstance(result, ImageDescription)
    assert result.instance_captions == {1: "a man in red", 2: "a dog sitting."}
    assert result.image_caption == "A street with [1] and [2]."
    assert result.missing_ids == [] and result.extra_ids == []
    assert len(model.calls) == 1 and len(model.encoded) == 1
    _, prompts, options = model.calls[0]
    assert prompts == [DescribePrompts().instances_prompt([1, 2]), DescribePrompts().image]
    assert options == {"max_new_tokens": 512, "temperature": 0.0, "progress": False}


def test_describe_image_drops_extra_ids_and_retries_missing_ones() -> None:
    model = _describer("[1]: a man.\n[5]: a ghost.", single={2: "[2]: a small dog.", 3: ""})
    result = describe_instances(model, _image(), _boxes([1, 2, 3]), marks="as_is")
    assert result.instance_captions == {1: "a man.", 2: "a small dog."}
    assert result.extra_ids == [5]
    assert result.missing_ids == [3]
    assert len(model.calls) == 2
    retry_media, retry_prompts, _ = model.calls[1]
    assert retry_prompts == [
        DescribePrompts().single_instance_prompt(2),
        DescribePrompts().single_instance_prompt(3),
    ]
    assert isinstance(retry_media[0], Encoded) and retry_media[0] is retry_media[1]


def test_describe_image_retries_limit() -> None:
    model = _describer("nothing useful", single={1: "", 2: ""})
    result = describe_instances(model, _image(), _boxes([1, 2]), marks="as_is", retries=3)
    assert result.missing_ids == [1, 2] and len(model.calls) == 4
    model = _describer("nothing useful")
    result = describe_instances(model, _image(), _boxes([1, 2]), marks="as_is", retries=0)
    assert result.missing_ids == [1, 2] and len(model.calls) == 1


def test_describe_image_without_known_ids_keeps_every_id() -> None:
    model = _describer("[4]: a lamp.\n[9]: a chair.")
    result = describe_instances(model, _image(), marks="as_is")
    assert result.instance_captions == {4: "a lamp.", 9: "a chair."}
    assert result.extra_ids == [] and result.missing_ids == []
    assert model.calls[0][1][0] == DescribePrompts().all_instances


def test_describe_custom_prompts() -> None:
    prompts = DescribePrompts(instances="List {ids}.", image="Caption.")
    model = ScriptedModel(lambda m, p: "[1]: one" if p.startswith("List") else "cap")
    result = describe_instances(model, _image(), _boxes([1]), marks="as_is", prompts=prompts)
    assert model.calls[0][1] == ["List [1].", "Caption."]
    assert result.instance_captions == {1: "one"} and result.image_caption == "cap"


def test_image_description_dataset_record_round_trip() -> None:
    model = _describer("[1]: a man.\n[2]: a dog.")
    result = describe_instances(model, _image(), _boxes([1, 2]), marks="as_is")
    record = result.to_dataset_record(image_id=7, image_path="coco/0001.jpg")
    assert record == {
        "image_id": 7,
        "instance_level_caption": {"1": "a man.", "2": "a dog."},
        "image_level_caption": "A street with [1] and [2].",
        "image_path": "coco/0001.jpg",
    }
    assert json.loads(json.dumps(record)) == record
    back = ImageDescription.from_dataset_record(record)
    assert back.instance_captions == result.instance_captions
    assert back.image_caption == result.image_caption
    assert json.loads(result.to_json())["instance_captions"] == {"1": "a man.", "2": "a dog."}
    assert "[1]" in result._repr_html_() and "data:image/jpeg;base64," in result._repr_html_()


def test_describe_rejects_bad_arguments() -> None:
    model = _describer("")
    with pytest.raises(InstitTypeError, match="DescribePrompts"):
        describe_instances(model, _image(), prompts={"image": "x"})  # type: ignore[arg-type]
    with pytest.raises(InstitValueError, match="retries"):
        describe_instances(model, _image(), retries=-1)
    with pytest.raises(InstitValueError, match="videos only"):
        describe_instances(model, _image(), questions=["q?"])
    with pytest.raises(InstitTypeError, match="list of str"):
        describe_instances(model, _frames(2), questions="q?")  # type: ignore[arg-type]
    assert model.calls == []


_IMAGE_RECORD = {
    "image_id": 7,
    "instance_level_caption": {"1": "a man."},
    "image_level_caption": "A street.",
    "image_path": "coco/0001.jpg",
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"image_level_caption": None}, "'image_level_caption' should be str, got missing"),
        ({"image_path": None}, "'image_path' should be str"),
        ({"image_id": "7"}, "'image_id' should be int, got a str"),
        ({"instance_level_caption": []}, "'instance_level_caption' should be dict, got a list"),
        ({"instance_level_caption": {"x": "a"}}, "'x'.*positive integer strings"),
        ({"instance_level_caption": {"0": "a"}}, "'0'.*positive integer strings"),
        ({"instance_level_caption": {"1": 2}}, r"instance_level_caption\['1'\]. should be str"),
    ],
)
def test_image_record_schema_errors(change: dict[str, Any], match: str) -> None:
    """from_dataset_record validates with the dataset's ImageRecord (one schema)."""
    from instit.dataset import ImageRecord
    from instit.errors import DatasetError

    record = {key: value for key, value in {**_IMAGE_RECORD, **change}.items() if value is not None}
    with pytest.raises(DatasetError, match=match):
        ImageDescription.from_dataset_record(record)
    if "positive integer" not in match:  # instance IDs are the description's own requirement
        with pytest.raises(DatasetError, match=match):
            ImageRecord.from_dict(record)
    assert ImageDescription.from_dataset_record(_IMAGE_RECORD).instance_captions == {1: "a man."}


# -- describe_instances: videos -------------------------------------------------------------------


def _video_model() -> ScriptedModel:
    prompts = DescribePrompts()

    def reply(media: Any, prompt: str) -> str:
        if isinstance(media, list):  # the whole video
            for t in range(2, 5):
                if prompt == prompts.temporal_change_prompt(t - 1, t, 3):
                    return f"change into <{t}>"
            if prompt == prompts.video_prompt(3):
                return "[1] walks during <1>-<3>."
            return f"answer: {prompt}"
        shade = media.getpixel((0, 0))[0]  # which frame this is
        if prompt == prompts.image:
            return f"frame {shade}"
        if prompt.startswith("Describe each"):
            return "[1]: a man.\n[2]: a dog.\n[3]: a cat."
        return "[2]: the dog again."

    return ScriptedModel(reply)


def test_describe_video_follows_the_dataset_structure() -> None:
    from instit.instances import Tracks

    tracks = Tracks.from_list([_boxes([1]), _boxes([1, 2]), _boxes([2])])
    model = _video_model()
    result = describe_instances(
        model, _frames(3), tracks, marks="as_is", questions=["Where is [1] at <2>?"]
    )
    assert isinstance(result, VideoDescription)
    assert [f.timestamp for f in result.frames] == [1, 2, 3]
    assert [f.image_caption for f in result.frames] == ["frame 0", "frame 20", "frame 40"]
    assert [f.instance_captions for f in result.frames] == [
        {1: "a man."},
        {1: "a man.", 2: "a dog."},
        {2: "a dog."},
    ]
    assert [f.extra_ids for f in result.frames] == [[2, 3], [3], [1, 3]]
    assert result.extra_ids == {1: [2, 3], 2: [3], 3: [1, 3]}
    assert result.missing_ids == {}
    assert [f.temporal_change for f in result.frames] == ["", "change into <2>", "change into <3>"]
    assert result.video_caption == "[1] walks during <1>-<3>."
    assert result.question_answer_pairs == [
        {"question": "Where is [1] at <2>?", "answer": "answer: Where is [1] at <2>?"}
    ]
    # frames batched as images (each encoded once for its two prompts), then the video once
    assert len(model.calls) == 2
    assert len(model.calls[0][1]) == 6 and len(model.calls[1][1]) == 4
    assert len(model.encoded) == 4


def test_describe_video_record_matches_the_dataset_schema(reference_dir) -> None:
    from instit.instances import Tracks

    tracks = Tracks.from_list([_boxes([1]), _boxes([1, 2]), _boxes([2])])
    result = describe_instances(_video_model(), _frames(3), tracks, marks="as_is", progress=False)
    record = result.to_dataset_record(video_id=3, video_path="videos/3")
    # the field names and types of the schema in the reference README
    schema = (reference_dir / "README.md").read_text()
    for key in ("video_id", "frame_level_caption", "question_answer_pairs"):
        assert f'"{key}"' in schema
    assert list(record) == [
        "video_id",
        "frame_level_caption",
        "question_answer_pairs",
        "video_level_caption",
        "video_path",
    ]
    frame = record["frame_level_caption"][1]
    assert frame == {
        "timestamp": 2,
        "frame_name": "frame_002",
        "instance_level": {"1": "a man.", "2": "a dog."},
        "image_level": "frame 20",
        "temporal_change": "change into <2>",
    }
    for key in frame:
        assert f'"{key}"' in schema
    assert record["question_answer_pairs"] == []
    assert json.loads(json.dumps(record)) == record
    back = VideoDescription.from_dataset_record(record)
    assert back.to_dataset_record(video_id=3, video_path="videos/3") == record
    named = result.to_dataset_record(video_id=3, video_path="v", frame_names=["a", "b", "c"])
    assert [f["frame_name"] for f in named["frame_level_caption"]] == ["a", "b", "c"]
    with pytest.raises(InstitValueError, match="one name per frame"):
        result.to_dataset_record(video_id=3, video_path="v", frame_names=["a"])
    assert "<table>" in result._repr_html_()
    assert json.loads(result.to_json())["frames"][0]["timestamp"] == 1


def test_describe_video_retries_per_frame() -> None:
    from instit.instances import Tracks

    prompts = DescribePrompts()

    def reply(media: Any, prompt: str) -> str:
        if isinstance(media, list):
            return "video text"
        if prompt.startswith("Describe each"):
            return "[1]: a man."
        if prompt == prompts.single_instance_prompt(2):
            return "A dog, running."
        return "frame"

    model = ScriptedModel(reply)
    tracks = Tracks.from_list([_boxes([1, 2]), _boxes([1, 2])])
    result = describe_instances(model, _frames(2), tracks, marks="as_is")
    assert [f.instance_captions for f in result.frames] == [
        {1: "a man.", 2: "A dog, running."},
        {1: "a man.", 2: "A dog, running."},
    ]
    assert len(model.calls) == 3  # frames, retries (both frames in one batch), video
    assert len(model.calls[1][1]) == 2


def test_frame_description_dict_keeps_checks() -> None:
    frame = FrameDescription(1, "f.jpg", {1: "a"}, "img", "", seconds=0.5, missing_ids=[2])
    data = frame.to_dict()
    assert data["seconds"] == 0.5 and data["missing_ids"] == [2]
    assert frame.to_dataset_record()["instance_level"] == {"1": "a"}


# -- real marks, videos and the bundled example ---------------------------------------------------


def test_ask_draws_the_marks_the_model_sees() -> None:
    from instit.marks import draw_marks

    image, instances = _image(), _boxes([1, 2])
    before = np.asarray(image).copy()
    model = ScriptedModel(lambda m, p: "[2]")
    answer = ask(model, image, "Which?", instances=instances)
    sent = model.calls[0][0][0]
    assert np.array_equal(np.asarray(sent), np.asarray(draw_marks(image, instances)))
    assert not np.array_equal(np.asarray(sent), before)  # marks were drawn
    assert np.array_equal(np.asarray(image), before)  # on a copy
    assert answer.media is sent and answer.unknown_ids == []


def _write_video(path, count: int = 12, fps: int = 6) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(count):
            array = np.full((48, 64, 3), 10 * n, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_ask_video_file_maps_frames_to_seconds(tmp_path) -> None:
    path = tmp_path / "clip.mp4"
    _write_video(path)
    model = ScriptedModel(lambda m, p: f"{len(m)} frames; see <2> and <8>-<9>")
    answer = ask(model, path, "When?")
    assert answer.text.startswith("8 frames")  # load_video's default sampling
    from instit.video import load_video

    video = load_video(path)
    assert answer.frames == [2, 8, 9] and answer.unknown_frames == [9]
    assert answer.seconds == [video.time_of(2), video.time_of(8), None]  # <9> has no time
    timed = ask(ScriptedModel(lambda m, p: "at <2>-<3>"), video, "When?")
    assert timed.seconds == [video.time_of(2), video.time_of(3)]
    assert timed.references[0].seconds == (video.time_of(2), video.time_of(3))
    assert timed.media is video


def test_ask_video_tracks_keyed_by_source_frame(tmp_path) -> None:
    from instit.instances import Tracks
    from instit.video import load_video

    path = tmp_path / "clip.mp4"
    _write_video(path)
    video = load_video(path, num_frames=3)  # source frames 0, 5, 11
    assert video.indices == [0, 5, 11]
    tracks = Tracks({5: _boxes([4]), 11: _boxes([4, 6]), 7: _boxes([9])})
    model = ScriptedModel(lambda m, p: "[4] [6] [9]")
    answer = ask(model, video, "Who?", instances=tracks)
    assert answer.unknown_ids == [9]  # [9] is only in source frame 7, not sampled
    marked = answer.media
    assert marked is not video and marked.indices == video.indices
    assert np.array_equal(np.asarray(marked.frames[0]), np.asarray(video.frames[0]))
    assert not np.array_equal(np.asarray(marked.frames[1]), np.asarray(video.frames[1]))
    by_position = Tracks({1: _boxes([4]), 2: _boxes([6])})
    answer = ask(model, video, "Who?", instances=by_position, indexed_by="sample", marks="as_is")
    assert answer.unknown_ids == [9]
    from instit.errors import InstancesError

    for marks in ("draw", "as_is"):
        with pytest.raises(InstancesError, match="indexed_by='source'"):
            ask(model, video, "Who?", instances=tracks, indexed_by="sample", marks=marks)
    with pytest.raises(InstancesError, match="frame position 3"):
        ask(model, video.frames, "Who?", instances=Tracks({3: _boxes([1])}))
    with pytest.raises(InstitValueError, match="indexed_by"):
        ask(model, video, "Who?", instances=tracks, indexed_by="frames")  # type: ignore[arg-type]


def test_describe_video_from_a_frame_folder(tmp_path) -> None:
    for n in range(3):
        _image(value=30 * n).save(tmp_path / f"frame_{n}.png")
    model = ScriptedModel(lambda m, p: "[1]: a block." if p.startswith("Describe each") else "x")
    result = describe_instances(model, tmp_path, marks="as_is", progress=False)
    assert [f.timestamp for f in result.frames] == [1, 2, 3]
    assert [f.instance_captions for f in result.frames] == [{1: "a block."}] * 3
    assert all(f.seconds is not None for f in result.frames)


def test_example_image_is_bundled_with_disjoint_masks() -> None:
    from instit.examples_data import example_image, example_labels

    image, instances = example_image()
    assert image.mode == "RGB" and image.size == (512, 512)
    assert instances.ids == (1, 2, 3, 4)
    assert example_labels() == {1: "astronaut", 2: "flag", 3: "helmet", 4: "space shuttle model"}
    masks = instances.masks()
    assert masks.shape == (4, 512, 512)
    assert (masks.sum(axis=(1, 2)) > 5000).all()
    assert masks.sum(axis=0).max() == 1  # no pixel belongs to two instances
    second, _ = example_image()
    assert second is not image and np.array_equal(np.asarray(second), np.asarray(image))


# -- output people can use ------------------------------------------------------------------------


def _noise(width: int, height: int, seed: int) -> Image.Image:
    """Random pixels: the worst case for JPEG, so the byte budget is really tested."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _embedded_images(page: str) -> list[Image.Image]:
    import base64
    import io
    import re

    found = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


@pytest.mark.parametrize("count", [1, 8, 64])
def test_notebook_views_stay_small_whatever_the_media(count: int) -> None:
    from instit.results import NOTEBOOK_IMAGE_BYTES

    frames = [_noise(1600, 1200, seed) for seed in range(count)]
    media: Any = frames[0] if count == 1 else frames
    answer = Answer.parse("[1] at <1>.", "What is [1]?", media=media)
    captions = [
        FrameDescription(t, f"f{t}.jpg", {1: "a cat."}, "a room.", "") for t in range(1, count + 1)
    ]
    video = VideoDescription(frames=captions, video_caption="[1] walks.", media=frames)
    image = ImageDescription({1: "a cat."}, "A room with [1].", media=frames[0])
    for result in (answer, video, image):
        page = result._repr_html_()
        assert len(page) < NOTEBOOK_IMAGE_BYTES + 4_000 * count  # images + markup
        shown = _embedded_images(page)
        assert shown and all(max(i.size) <= 384 for i in shown)
        if count <= 8 or result is image:
            assert len(shown) == (1 if result is image else count)
    # a full-size PNG of one such frame alone would be several MB
    one_frame = Answer.parse("ok", "q", media=frames[0])._repr_html_()
    assert len(one_frame) <= NOTEBOOK_IMAGE_BYTES + 1_000


def test_results_save_as_json_with_to_dict() -> None:
    answer = Answer.parse("[1] at <2>.", "q", known_ids=[1], timestamps=[0.0, 0.5], media=_image())
    with pytest.raises(TypeError):
        json.dumps(answer)  # a dataclass: to_dict() is the way, as documented
    saved = json.loads(json.dumps([answer.to_dict()]))
    assert saved[0]["text"] == "[1] at <2>." and saved[0]["seconds"] == [0.5]


def test_descriptions_print_as_readable_text() -> None:
    image = ImageDescription({2: "a dog.", 1: "a man."}, "A street.", missing_ids=[3])
    assert str(image) == "image: A street.\n[1] a man.\n[2] a dog.\nnot described: [3]"
    frames = [
        FrameDescription(1, "f1.jpg", {1: "a man."}, "a street.", "", seconds=0.0),
        FrameDescription(2, "f2.jpg", {1: "a man, sitting."}, "a bench.", "[1] sat down."),
    ]
    video = VideoDescription(frames, "[1] sits.", [{"question": "Who?", "answer": "[1]."}])
    assert str(video) == (
        "video: [1] sits.\n"
        "<1> f1.jpg (0.00 s)\n  frame: a street.\n  [1] a man.\n"
        "<2> f2.jpg\n  frame: a bench.\n  change: [1] sat down.\n  [1] a man, sitting.\n"
        "Q: Who?\nA: [1]."
    )
    assert "ImageDescription(" in repr(image)  # the repr stays the dataclass's


def test_progress_defaults_agree_across_tasks() -> None:
    import inspect

    defaults = {
        f.__name__: inspect.signature(f).parameters["progress"].default
        for f in (ask, ask_many, describe_instances)
    }
    assert defaults == {"ask": True, "ask_many": True, "describe_instances": True}


# -- BGR arrays and tracks on frames that were not sampled ---------------------------------------


def test_ask_reads_bgr_arrays_when_told() -> None:
    model = ScriptedModel(lambda m, p: "ok")
    rgb = np.zeros((8, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ask(model, bgr, "Colour?", channels="bgr")
    ask(model, np.stack([bgr, bgr]), "Colour?", channels="bgr")  # a TxHxWxC video
    image, video = model.calls[0][0][0], model.calls[1][0][0]
    assert np.array_equal(np.asarray(image), rgb)
    assert all(np.array_equal(np.asarray(frame), rgb) for frame in video)
    with pytest.raises(InstitValueError, match="channels='bgr' describes numpy arrays"):
        ask(model, _image(), "Colour?", channels="bgr")
    with pytest.raises(InstitValueError, match="channels='BGR' is not a channel order"):
        ask(model, bgr, "Colour?", channels="BGR")  # type: ignore[arg-type]


def test_tracks_past_the_last_image_file_are_an_error_not_unsampled(tmp_path) -> None:
    """Regression: since a list of image files became a ``Video``, tracks on a frame past its
    last file were dropped with a "not sampled" warning (or, with ``snap=True``, silently moved
    onto the last file) instead of the InstancesError a list gave; a folder of them did so too."""
    from instit.errors import InstancesError
    from instit.instances import Tracks

    for n in range(3):
        _image(value=40 * n).save(tmp_path / f"f_{n}.png")
    files = [str(tmp_path / f"f_{n}.png") for n in range(3)]
    tracks = Tracks({0: _boxes([1]), 5: _boxes([2])})
    model = ScriptedModel(lambda m, p: "[2]")
    for media in (files, tmp_path):
        for snap in (False, True):
            with pytest.raises(InstancesError, match=r"frame 5 but the video has 3 .*files"):
                ask(model, media, "Who?", instances=tracks, snap=snap)
            with pytest.raises(InstancesError, match="frame 5"):
                describe_instances(model, media, tracks, snap=snap)
    # tracks within the files still work, keyed by file number
    answer = ask(model, files, "Who?", instances=Tracks({0: _boxes([1]), 2: _boxes([2])}))
    assert answer.unknown_ids == []


def test_describe_and_ask_warn_or_snap_unsampled_tracked_frames() -> None:
    from instit import UnsampledFramesWarning
    from instit.instances import Tracks
    from instit.video import Video

    frames = _frames(3)
    video = Video(frames, indices=[0, 10, 20], timestamps=[0.0, 1.0, 2.0])
    tracks = Tracks({0: _boxes([1]), 11: _boxes([2])})
    model = ScriptedModel(lambda m, p: "[2]")
    with pytest.warns(UnsampledFramesWarning, match="source frames 11"):
        answer = ask(model, video, "Who?", instances=tracks)
    assert answer.unknown_ids == [2]  # frame 11 was not sampled: [2] is on no frame
    snapped = ask(model, video, "Who?", instances=tracks, snap=True)
    assert snapped.unknown_ids == []
    drawn = model.calls[-1][0][0]
    assert not np.array_equal(np.asarray(drawn[1]), np.asarray(frames[1]))  # 11 -> frame 10
    assert np.array_equal(np.asarray(drawn[2]), np.asarray(frames[2]))


def test_frame_files_keep_their_names_from_a_folder_or_a_list(tmp_path) -> None:
    """Regression: a folder of img_0.png... was described with names frame_001... (the task read
    a ``paths`` attribute that Video never had), while the same files as a list kept theirs."""
    from instit.video import load_video

    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(_frames(3)):
        frame.save(folder / f"img_{i}.png")
    files = [str(folder / f"img_{i}.png") for i in range(3)]
    assert load_video(folder, num_frames=None).names == ["img_0.png", "img_1.png", "img_2.png"]
    assert load_video(files, num_frames=2).names == ["img_0.png", "img_2.png"]
    assert load_video(_frames(2), num_frames=None).names is None  # in-memory frames
    model = ScriptedModel(lambda m, p: "[1] is there.")
    for media in (folder, files, load_video(folder, num_frames=None)):
        described = describe_instances(model, media, marks="as_is", progress=False)
        record = described.to_dataset_record(video_id=1, video_path="clip")
        names = [frame["frame_name"] for frame in record["frame_level_caption"]]
        assert names == ["img_0.png", "img_1.png", "img_2.png"], media
