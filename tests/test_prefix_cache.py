"""The KV prefix cache: one prefill of template head + media for many questions, exactly.

Step logits are read with a forward hook on ``lm_head`` while the public ``generate`` runs, so
the comparisons cover the whole path users call (batching, padding, generation settings).
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from instit.bench.data import BenchQuestion
from instit.bench.run import by_media, run_bench
from instit.errors import InstitTypeError, InstitValueError
from instit.model import InstIt
from instit.model.prefix_cache import PrefixCache, split_ids
from instit.prompting.templates import IMAGE_TOKEN_INDEX
from instit.tasks import ask, ask_many, describe_instances
from instit.testing import make_tiny_checkpoint
from model_checkpoints import ARCHS, image
from reference_specs import CASES, CHECKPOINTS
from test_model_conformance import (
    _case as conformance_case,
    _media as conformance_media,
    _model as conformance_model,
    _question as conformance_question,
)

QUESTIONS = ["What is [1]?", "Describe [2] and its surroundings in detail, please.", "Hi", "Why?"]
STEPS = 6
TOL = 1e-5  # float32 logits, prefix cache vs the whole prompt
BATCH_TOL = 2e-5  # padded batches: today's left-padded batch is itself ~1.3e-5 off one-by-one


@pytest.fixture(scope="module", params=ARCHS)
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> InstIt:
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("prefix") / "m", request.param)
    return InstIt.from_pretrained(folder, device="cpu", dtype="float32", progress=False)


def _media(kind: str) -> Any:
    if kind == "image":
        return image(300, 220, seed=5)
    return [image(200, 150, seed=s) for s in range(3)]


@contextmanager
def step_logits(model: InstIt) -> Iterator[list[torch.Tensor]]:
    """Collects ``[rows, vocab]`` logits of every generation step (last position)."""
    steps: list[torch.Tensor] = []
    handle = model.module.lm_head.register_forward_hook(
        lambda module, args, out: steps.append(out[:, -1].detach().clone())
    )
    try:
        yield steps
    finally:
        handle.remove()


def _generate(model: InstIt, media: list[Any], prompts: list[str], **kw: Any) -> tuple:
    kw.setdefault("max_new_tokens", STEPS)
    with step_logits(model) as steps:
        texts = model.generate(media, prompts, **kw)
    return texts, torch.stack(steps, dim=1)  # [rows, steps, vocab]


def _alone(model: InstIt, media: Any, questions: list[str]) -> tuple[list[str], list]:
    texts, logits = [], []
    for question in questions:
        [text], steps = _generate(model, [media], [question])
        texts.append(text)
        logits.append(steps[0])
    return texts, logits


@pytest.mark.parametrize("kind", ["image", "video"])
def test_prefix_cache_answers_exactly_as_one_by_one(model: InstIt, kind: str) -> None:
    media = _media(kind)
    texts, logits = _alone(model, media, QUESTIONS)
    assert len(set(texts)) > 1  # the answers depend on the question

    encoded = model.encode_media(media, cache_prefix=True)
    assert isinstance(encoded.prefix, PrefixCache)
    for question, text, expected in zip(QUESTIONS, texts, logits, strict=True):
        [cached], steps = _generate(model, [encoded], [question])
        assert cached == text
        n = expected.shape[0]
        assert (steps[0, :n] - expected).abs().max().item() <= TOL

    # a batch of suffixes of different lengths on one prefix (padding between prefix and suffix)
    batched, steps = _generate(model, [media] * len(QUESTIONS), QUESTIONS, batch_size=4)
    assert batched == texts
    for row, expected in enumerate(logits):
        n = expected.shape[0]
        assert (steps[row, :n] - expected).abs().max().item() <= BATCH_TOL
    _, today = _generate(model, [media] * len(QUESTIONS), QUESTIONS, prefix_cache=False)
    assert (steps - today).abs().max().item() <= BATCH_TOL


def test_prefix_is_template_head_plus_media_and_suffix_the_rest(model: InstIt) -> None:
    head, suffix = split_ids(model, QUESTIONS[1])
    whole = model._token_ids(QUESTIONS[1], True)
    assert whole == [*head, IMAGE_TOKEN_INDEX, *suffix]
    assert split_ids(model, "Hi")[0] == head  # the head never depends on the question
    encoded = model.encode_media(image(seed=2), cache_prefix=True)
    assert encoded.prefix is not None
    assert encoded.prefix.length == len(head) + encoded.num_tokens
    assert encoded.to_dict()["prefix"]["length"] == encoded.prefix.length


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_conformance_cases_on_the_prefix_cache(
    conformance_dir: Path, checkpoint: str, case: str
) -> None:
    """The reference's prompt ids split into head + media + suffix, and its greedy tokens and
    step logits come out of the prefix path (alone and in a padded batch)."""
    model = conformance_model(conformance_dir, checkpoint)
    folder, golden = conformance_case(conformance_dir, checkpoint, case)
    media = conformance_media(folder)
    question = conformance_question(str(golden["prompt"]), model.template)
    head, suffix = split_ids(model, question)
    assert [*head, IMAGE_TOKEN_INDEX, *suffix] == golden["input_ids"].tolist()
    if model.template == "vicuna_v1":  # the reference's extra '▁' right after the image
        assert model.tokenizer.convert_ids_to_tokens(suffix[0]) == "▁"
    reference = model.tokenizer.decode(golden["generated_ids"], skip_special_tokens=True).strip()
    golden_steps = torch.from_numpy(golden["generate_step_logits"])

    [whole], alone = _generate(model, [media], [question], max_new_tokens=8)
    encoded = model.encode_media(media, cache_prefix=True)
    [cached], single = _generate(model, [encoded], [question], max_new_tokens=8)
    texts, batch = _generate(model, [media] * 2, [question, "Hi"], max_new_tokens=8)
    _, today = _generate(model, [media] * 2, [question, "Hi"], max_new_tokens=8, prefix_cache=False)
    assert whole == cached == texts[0] == reference
    n = alone.shape[1]
    assert (single[0, :n] - alone[0]).abs().max().item() <= TOL
    # a padded batch: no further from one-by-one than today's left-padded batch of whole prompts
    padding = (today[0, :n] - alone[0]).abs().max().item()
    assert (batch[0, :n] - alone[0]).abs().max().item() <= max(BATCH_TOL, 1.5 * padding)
    assert (single[0, :n] - golden_steps[:n]).abs().max().item() <= 1e-3  # reference tolerance


def _live_prefixes() -> int:
    with warnings.catch_warnings():  # isinstance on some torch objects warns of deprecations
        warnings.simplefilter("ignore")
        return sum(isinstance(o, PrefixCache) for o in gc.get_objects())


class Prefills:
    """Counts language-model passes over at least ``min_tokens`` positions (prefills of media)."""

    def __init__(self, model: InstIt, min_tokens: int) -> None:
        self.lengths: list[int] = []
        self.alive: list[int] = []
        lm = model.module.model.language_model
        self.handle = lm.register_forward_pre_hook(self._hook, with_kwargs=True)
        self.min_tokens = min_tokens

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        embeds = kwargs.get("inputs_embeds")
        if embeds is not None and embeds.shape[1] >= self.min_tokens:
            self.lengths.append(int(embeds.shape[1]))
        self.alive.append(_live_prefixes())

    def __enter__(self) -> Prefills:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def test_each_media_is_prefilled_once_and_one_cache_lives_at_a_time(model: InstIt) -> None:
    first, second = image(seed=7), image(260, 300, seed=8)
    with Prefills(model, 500) as prefills:
        answers = ask(model, first, QUESTIONS, max_new_tokens=2)
    assert len(answers) == 4 and len(prefills.lengths) == 1
    with Prefills(model, 500) as prefills:
        ask_many(model, [first, second, first, second], QUESTIONS, max_new_tokens=2)
    assert len(prefills.lengths) == 2
    assert max(prefills.alive) == 1  # the first media's cache is gone before the second's
    gc.collect()
    assert _live_prefixes() == 0


def test_a_users_loop_reuses_the_encoded_prefix(model: InstIt) -> None:
    picture = image(seed=9)
    expected = model.generate([picture] * 3, QUESTIONS[:3], max_new_tokens=5)
    encoded = model.encode_media(picture, cache_prefix=True)
    assert encoded.prefix is not None
    before = [k.clone() for k, _ in encoded.prefix.layers]
    with Prefills(model, 500) as prefills:
        loop = [model.generate([encoded], [q], max_new_tokens=5)[0] for q in QUESTIONS[:3]]
        streamed = "".join(model.stream(encoded, QUESTIONS[1], max_new_tokens=5))
    assert loop == expected and streamed == expected[1]
    assert not prefills.lengths  # nothing but the questions was prefilled
    assert all(torch.equal(k, b) for (k, _), b in zip(encoded.prefix.layers, before, strict=True))
    assert model.encode_media(encoded, cache_prefix=True) is encoded


def test_sampling_draws_each_question_independently(model: InstIt) -> None:
    picture = image(seed=10)
    torch.manual_seed(0)
    sampled = model.generate([picture] * 4, ["Hi"] * 4, max_new_tokens=8, temperature=1.5)
    assert len(set(sampled)) > 1


def test_generation_settings_pass_through_with_and_without_the_cache(model: InstIt) -> None:
    picture = image(seed=11)
    for settings in ({"num_beams": 3}, {"repetition_penalty": 1.5}, {"no_repeat_ngram_size": 2}):
        cached = model.generate(
            [picture] * 3, QUESTIONS[:3], max_new_tokens=6, generate_kwargs=settings
        )
        whole = [
            model.generate([picture], [q], max_new_tokens=6, generate_kwargs=settings)[0]
            for q in QUESTIONS[:3]
        ]
        assert cached == whole, settings
    greedy = model.generate([picture], ["Hi"], max_new_tokens=6)
    penalised = model.generate(
        [picture], ["Hi"], max_new_tokens=6, generate_kwargs={"repetition_penalty": 50.0}
    )
    assert greedy != penalised  # the setting reaches transformers
    configured = model.generate(
        [picture], ["Hi"], generation_config=GenerationConfig(max_new_tokens=2)
    )
    assert configured == model.generate([picture], ["Hi"], max_new_tokens=2)  # config wins
    answer = ask(model, picture, "Hi", max_new_tokens=6, generate_kwargs={"num_beams": 2})
    assert (
        answer.text
        == model.generate([picture], ["Hi"], max_new_tokens=6, generate_kwargs={"num_beams": 2})[0]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"generate_kwargs": {"beams": 2}}, InstitValueError, "no transformers.GenerationConfig"),
        ({"generate_kwargs": {"temperature": 0.5}}, InstitValueError, "pass temperature="),
        ({"generate_kwargs": {"use_cache": False}}, InstitValueError, "KV cache"),
        ({"generate_kwargs": {"num_return_sequences": 2}}, InstitValueError, "one answer"),
        ({"generate_kwargs": [("num_beams", 2)]}, InstitTypeError, "dict"),
        ({"generation_config": {"num_beams": 2}}, InstitTypeError, "GenerationConfig"),
        ({"generate_kwargs": {"num_beams": 0}}, InstitValueError, "num_beams"),
        ({"generate_kwargs": {"early_stopping": "x"}}, InstitValueError, "inconsistent"),
        ({"top_p": 1.5}, InstitValueError, "top_p"),
        ({"max_new_tokens": 0}, InstitValueError, "max_new_tokens"),
        (
            {"generation_config": GenerationConfig(return_dict_in_generate=True)},
            InstitValueError,
            "return_dict_in_generate",
        ),
    ],
)
def test_generation_arguments_are_checked_in_one_place(
    model: InstIt, kwargs: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        model.generate([None], ["Hi"], **kwargs)
    if "top_p" not in kwargs:  # ask has no top_p
        with pytest.raises(error, match=match):
            ask(model, image(seed=1), "Hi", **kwargs)


def test_stream_refuses_beam_search(model: InstIt) -> None:
    with pytest.raises(InstitValueError, match="num_beams"):
        list(model.stream(image(seed=1), "Hi", generate_kwargs={"num_beams": 2}))


class TodaysPath:
    """The model without the prefix cache (``generate(..., prefix_cache=False)``)."""

    def __init__(self, model: InstIt) -> None:
        self.model = model

    def generate(self, media: list, prompts: list, **kw: Any) -> list[str]:
        return self.model.generate(media, prompts, prefix_cache=False, **kw)

    def stream(self, media: Any, prompt: str, **kw: Any) -> Iterator[str]:
        return self.model.stream(media, prompt, **kw)

    def encode_media(self, media: Any) -> Any:
        return self.model.encode_media(media)


def test_describe_video_per_frame_and_whole_video_on_prefixes(model: InstIt) -> None:
    frames = [image(200, 150, seed=s) for s in range(3)]
    run: Callable[[Any], Any] = lambda who: describe_instances(  # noqa: E731
        who, frames, marks="as_is", max_new_tokens=4, progress=False, retries=0
    )
    with Prefills(model, 300) as prefills:
        cached = run(model)
    # three frames (two prompts each) and the whole video (three prompts): one prefill each
    assert len(prefills.lengths) == 4
    assert cached.to_dict() == run(TodaysPath(model)).to_dict()


def _bench(folder: Path) -> list[BenchQuestion]:
    questions = []
    for n in range(2):
        path = folder / f"img{n}.png"
        image(320, 240, seed=20 + n).save(path)
        for k in range(3):
            qid = f"{n:03d}-{k:02d}"
            questions.append(BenchQuestion(qid, QUESTIONS[k], "", "image", "oe", image_path=path))
    return questions


def test_bench_run_groups_questions_by_media_and_resumes_grouped(
    model: InstIt, tmp_path: Path
) -> None:
    questions = _bench(tmp_path)
    interleaved = [questions[i] for i in (0, 3, 1, 4, 2, 5)]
    assert by_media(interleaved) == [questions[:3], questions[3:]]
    copy = tmp_path / "copy.png"
    copy.write_bytes((tmp_path / "img0.png").read_bytes())  # same image, other file
    twin = BenchQuestion("009-01", "Hi", "", "image", "oe", image_path=copy)
    assert by_media([*questions, twin])[0] == [*questions[:3], twin]

    with Prefills(model, 500) as prefills:
        run_bench(model, interleaved, tmp_path / "p.json", max_new_tokens=4, progress=False)
    assert len(prefills.lengths) == 2  # batch_size 1, still one prefill per image
    expected = run_bench(
        TodaysPath(model), questions, tmp_path / "t.json", max_new_tokens=4, progress=False
    )
    assert expected.num_generated == 6
    assert (tmp_path / "p.json").read_text() == (tmp_path / "t.json").read_text()

    # resume after the first two answers: the rest of image 0 still shares one prefill
    part = tmp_path / "r.json.part-0.jsonl"
    records = json.loads((tmp_path / "p.json").read_text())
    part.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    # the same model wrote them (its producer record, as an interrupted run leaves it)
    producer = (tmp_path / "p.json.producer.json").read_text()
    (tmp_path / "r.json.producer.json").write_text(producer)
    with Prefills(model, 500) as prefills:
        result = run_bench(model, questions, tmp_path / "r.json", max_new_tokens=4, progress=False)
    assert (result.num_generated, result.num_resumed) == (4, 2)
    # image 0's last question is one whole prompt, image 1's three questions share one prefill
    assert len(prefills.lengths) == 2
    assert json.loads((tmp_path / "r.json").read_text()) == records


def test_video_prefix_from_frames_array(model: InstIt) -> None:
    frames = np.stack([np.asarray(image(200, 150, seed=s)) for s in range(2)])
    encoded = model.encode_media(frames, cache_prefix=True)
    assert encoded.modality == "video" and encoded.prefix is not None
    one = model.generate([frames], ["Hi"], max_new_tokens=4)
    assert model.generate([encoded], ["Hi"], max_new_tokens=4) == one
