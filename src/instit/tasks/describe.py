"""Describe every marked instance of an image or video, as the Inst-It Dataset annotates them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from instit.errors import InstitTypeError, InstitValueError
from instit.media import load_media
from instit.prompting.describe import DescribePrompts, parse_instance_captions
from instit.results import FrameDescription, ImageDescription, VideoDescription
from instit.tasks._media import (
    IndexedBy,
    MarksMode,
    Prepared,
    check_model,
    check_options,
    prepare,
)
from instit.tasks.ask import generate_for, generation_options

if TYPE_CHECKING:  # pragma: no cover
    from instit.media import Channels

__all__ = ["describe_instances"]


def describe_instances(
    model: Any,
    media: Any,
    instances: Any = None,
    *,
    marks: MarksMode = "draw",
    prompts: DescribePrompts | None = None,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
    retries: int = 1,
    questions: Sequence[str] | None = None,
    style: Any = None,
    indexed_by: IndexedBy = "source",
    snap: bool = False,
    channels: Channels = "rgb",
    progress: bool = True,
    generation_config: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> ImageDescription | VideoDescription:
    """Caption each instance and the whole image (or each frame and the whole video).

    For an **image** the model is asked, in one batch, for the captions of all instances
    (``prompts.instances``, replies in ``[ID]: caption`` lines) and for an image caption
    (``prompts.image``).  For a **video** every frame gets the same two questions (frame by
    frame, each frame as an image, only about the instances visible in it); the whole video is
    then asked what changed between each pair of consecutive frames (``<t-1>`` to ``<t>``), for
    a video caption, and the ``questions`` given.

    Replies are parsed with :func:`~instit.prompting.describe.parse_instance_captions`.  IDs that
    are not among the instances are dropped and reported (``extra_ids``); instances left out
    are asked about one by one (``prompts.single_instance``), up to ``retries`` times, and
    those still without a caption are reported (``missing_ids``).

    Args:
        model: An :class:`instit.InstIt`.
        media: One image or one video, as :func:`~instit.tasks.ask` takes them.
        instances: ``Instances`` (image) or ``Tracks`` (video).  Without them (and with
            ``marks="as_is"``) every ID the model describes is kept and none is retried.
        marks: ``"draw"`` draws the instances' marks first; ``"as_is"`` when the media
            already shows them.
        prompts: The questions to ask (default :class:`DescribePrompts()`).
        max_new_tokens: Most tokens per reply.
        temperature: 0 for greedy decoding.
        retries: How many times instances left out are asked about again (0: never).
        questions: Video only: questions to answer about the whole video; they become the
            record's ``question_answer_pairs``.
        style: A mark style for ``draw_marks``.
        indexed_by: For a ``Video``: its tracks are keyed by source frame number
            (``"source"``, default) or by position (``"sample"``).
        snap, channels: As for :func:`~instit.tasks.ask` (tracked frames that were not sampled,
            BGR arrays).
        progress: Show progress bars while generating.
        generation_config, generate_kwargs: Further decoding settings, as for
            :func:`~instit.tasks.ask`.

    Returns:
        :class:`~instit.results.ImageDescription` for an image,
        :class:`~instit.results.VideoDescription` for a video; ``.to_dataset_record(...)``
        gives the Inst-It Dataset record.
    """
    check_model(model)
    prompts = DescribePrompts() if prompts is None else prompts
    if not isinstance(prompts, DescribePrompts):
        raise InstitTypeError(
            f"prompts must be a DescribePrompts, got {type(prompts).__name__}; build one with "
            "instit.tasks.DescribePrompts(image=..., ...)"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InstitValueError(f"retries must be an int >= 0, got {retries!r}")
    extra = generation_options(max_new_tokens, temperature, generation_config, generate_kwargs)
    question_list = _question_list(questions)
    check_options(marks, indexed_by, channels)
    prepared = prepare(  # the edge: nothing below loads media (the unmarked copy is let go)
        load_media(media, channels=channels),
        instances,
        marks=marks,
        style=style,
        indexed_by=indexed_by,
        snap=snap,
    )
    options = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "progress": progress,
        **extra,
    }
    if prepared.kind == "image":
        if question_list:
            raise InstitValueError(
                "questions are answered for videos only (image records have no QA pairs); "
                "use instit.tasks.ask(model, image, questions) for an image"
            )
        image = _pictures(model, [prepared], prompts, retries, options)[0]
        image.media = prepared.shown
        return image
    return _describe_video(model, prepared, prompts, retries, question_list, options)


def _describe_video(
    model: Any,
    prepared: Prepared,
    prompts: DescribePrompts,
    retries: int,
    questions: list[str],
    options: dict[str, Any],
) -> VideoDescription:
    frames: list[Any] = prepared.model_input
    count = prepared.num_frames
    pictures = [
        Prepared(frame, frame, "image", 1, None, None if ids is None else list(ids))
        for frame, ids in zip(
            frames, prepared.frame_ids or [prepared.known_ids] * count, strict=True
        )
    ]
    described = _pictures(model, pictures, prompts, retries, options)
    video_prompts = [prompts.temporal_change_prompt(t - 1, t, count) for t in range(2, count + 1)]
    video_prompts += [prompts.video_prompt(count), *questions]
    replies = generate_for(model, [prepared] * len(video_prompts), video_prompts, **options)
    changes = ["", *(r.strip() for r in replies[: count - 1])]
    names = prepared.frame_names or [f"frame_{t:03d}" for t in range(1, count + 1)]
    seconds = prepared.timestamps or [None] * count
    return VideoDescription(
        frames=[
            FrameDescription(
                timestamp=t,
                frame_name=names[t - 1],
                instance_captions=picture.instance_captions,
                image_caption=picture.image_caption,
                temporal_change=changes[t - 1],
                seconds=seconds[t - 1],
                missing_ids=picture.missing_ids,
                extra_ids=picture.extra_ids,
            )
            for t, picture in enumerate(described, start=1)
        ],
        video_caption=replies[count - 1].strip(),
        question_answer_pairs=[
            {"question": q, "answer": a.strip()}
            for q, a in zip(questions, replies[count:], strict=True)
        ],
        media=prepared.shown,
    )


def _pictures(
    model: Any,
    pictures: Sequence[Prepared],
    prompts: DescribePrompts,
    retries: int,
    options: dict[str, Any],
) -> list[ImageDescription]:
    """Instance and image captions for several images, in one batch (plus the retries)."""
    jobs: list[tuple[int, str, str]] = []  # (picture index, "instances" | "image", prompt)
    for n, picture in enumerate(pictures):
        if picture.known_ids is None or picture.known_ids:
            jobs.append((n, "instances", prompts.instances_prompt(picture.known_ids)))
        jobs.append((n, "image", prompts.image))
    replies = generate_for(
        model, [pictures[n] for n, _, _ in jobs], [p for *_, p in jobs], **options
    )
    captions: list[dict[int, str]] = [{} for _ in pictures]
    image_captions = [""] * len(pictures)
    extra: list[list[int]] = [[] for _ in pictures]
    for (n, what, _), reply in zip(jobs, replies, strict=True):
        if what == "image":
            image_captions[n] = reply.strip()
            continue
        parsed = parse_instance_captions(reply)
        known = pictures[n].known_ids
        for instance_id, caption in parsed.items():
            if known is None or instance_id in known:
                captions[n][instance_id] = caption
            else:
                extra[n].append(instance_id)
    for _ in range(retries):
        asks = [
            (n, i)
            for n, picture in enumerate(pictures)
            for i in picture.known_ids or []
            if i not in captions[n]
        ]
        if not asks:
            break
        replies = generate_for(
            model,
            [pictures[n] for n, _ in asks],
            [prompts.single_instance_prompt(i) for _, i in asks],
            **options,
        )
        for (n, instance_id), reply in zip(asks, replies, strict=True):
            caption = _single_caption(reply, instance_id)
            if caption:
                captions[n][instance_id] = caption
    return [
        ImageDescription(
            instance_captions=dict(sorted(captions[n].items())),
            image_caption=image_captions[n],
            missing_ids=[i for i in picture.known_ids or [] if i not in captions[n]],
            extra_ids=extra[n],
        )
        for n, picture in enumerate(pictures)
    ]


def _single_caption(reply: str, instance_id: int) -> str:
    """The caption in a reply about one instance: the whole reply, minus an ``[ID]:`` head."""
    head = re.compile(
        rf"^\W*\[\s*{instance_id}\s*\](?:\*\*|__)?\s*[:：\-–—]\s*(?:\*\*|__)?\s*", re.UNICODE
    )
    text = head.sub("", reply.strip(), count=1)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _question_list(questions: Sequence[str] | None) -> list[str]:
    if questions is None:
        return []
    if isinstance(questions, str) or not isinstance(questions, Sequence):
        raise InstitTypeError(
            "questions must be a list of str (e.g. ['What does [1] do at <2>?']), got "
            f"{type(questions).__name__}"
        )
    for question in questions:
        if not isinstance(question, str) or not question.strip():
            raise InstitValueError(f"every question must be a non-empty str, got {question!r}")
    return list(questions)
