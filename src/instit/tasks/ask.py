"""Ask an Inst-It model questions about marked images and videos, get parsed answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from instit.errors import InstitError, InstitTypeError, InstitValueError
from instit.media import load_media
from instit.model.generation import check_generation
from instit.results import Answer, AnswerStream
from instit.tasks._media import (
    IndexedBy,
    MarksMode,
    Prepared,
    check_model,
    check_options,
    prepare,
)

if TYPE_CHECKING:  # pragma: no cover
    from instit.media import Channels, LoadedMedia

__all__ = ["ask", "ask_many"]


@overload
def ask(
    model: Any,
    media: Any,
    question: str,
    *,
    instances: Any = ...,
    marks: MarksMode = ...,
    max_new_tokens: int = ...,
    temperature: float = ...,
    stream: bool = ...,
    style: Any = ...,
    indexed_by: IndexedBy = ...,
    snap: bool = ...,
    channels: Channels = ...,
    progress: bool = ...,
    generation_config: Any = ...,
    generate_kwargs: Mapping[str, Any] | None = ...,
) -> Answer | AnswerStream: ...
@overload
def ask(
    model: Any,
    media: Any,
    question: Sequence[str],
    *,
    instances: Any = ...,
    marks: MarksMode = ...,
    max_new_tokens: int = ...,
    temperature: float = ...,
    stream: bool = ...,
    style: Any = ...,
    indexed_by: IndexedBy = ...,
    snap: bool = ...,
    channels: Channels = ...,
    progress: bool = ...,
    generation_config: Any = ...,
    generate_kwargs: Mapping[str, Any] | None = ...,
) -> list[Answer]: ...


def ask(
    model: Any,
    media: Any,
    question: str | Sequence[str],
    *,
    instances: Any = None,
    marks: MarksMode = "draw",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    stream: bool = False,
    style: Any = None,
    indexed_by: IndexedBy = "source",
    snap: bool = False,
    channels: Channels = "rgb",
    progress: bool = True,
    generation_config: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> Answer | AnswerStream | list[Answer]:
    """Ask ``model`` about one image or video; parse the ``[ID]`` / ``<t>`` references it uses.

    Args:
        model: An :class:`instit.InstIt` (anything with ``generate`` / ``stream`` /
            ``encode_media``, see :class:`~instit.tasks.GenerativeModel`).
        media: One image (PIL image, ``HxW[xC]`` array, image file) or one video (``Video``,
            ``TxHxWxC`` array, a **list of frames**, a video file or a folder of frames), loaded
            once here by :func:`instit.load_media` (a list of image files is read as a folder of
            them).  Arrays are RGB unless ``channels="bgr"``.  To ask about several media at
            once use :func:`ask_many`.
        question: A question, or a list of questions (one batched generation; the media is
            encoded once for all of them and, with :class:`instit.InstIt`, the template head and
            the media are prefilled once: each question then costs only its own tokens).  Refer
            to instances as ``[ID]`` and frames as ``<t>``.
        instances: The instances on the media (``Instances`` / anything ``Instances.coerce``
            takes for an image, ``Tracks`` for a video).  With ``marks="draw"`` their marks are
            drawn before the model sees the media; either way answers are checked against
            their IDs (``Answer.unknown_ids``).
        marks: ``"draw"`` (default) draws the instances' marks; ``"as_is"`` sends the media
            unchanged because it already shows the marks.
        max_new_tokens: Most tokens generated per answer.
        temperature: 0 for greedy decoding (default), above 0 to sample.
        stream: Return an :class:`~instit.results.AnswerStream` that yields text chunks as
            they are generated, then gives the parsed answer (single question only).
        style: A mark style for ``draw_marks`` (``None``: the Inst-It look).
        indexed_by: For a ``Video``: its tracks are keyed by source frame number
            (``"source"``, default, as ``Video.with_marks``) or by position (``"sample"``).
        snap: For a ``Video`` with tracks keyed by source frame: move the instances of tracked
            frames that were not sampled to the nearest sampled frame (``Tracks.sampled``);
            without it they are dropped with an :class:`instit.UnsampledFramesWarning`.
        channels: ``"bgr"`` when ``media`` is BGR arrays (OpenCV, supervision).
        progress: Show a progress bar counting the tokens as they are generated (default, as
            in :func:`ask_many` and :func:`describe_instances`; not with ``stream=True``).
        generation_config: A ``transformers.GenerationConfig`` for further decoding settings.
        generate_kwargs: ``GenerationConfig`` fields, e.g. ``{"num_beams": 3}`` or
            ``{"repetition_penalty": 1.1}`` (see :mod:`instit.model.generation`); greedy
            decoding, the reference's setting, without them.

    Returns:
        An :class:`~instit.results.Answer` for one question, a list of them for a list of
        questions, or an :class:`~instit.results.AnswerStream` with ``stream=True``.

    Example:
        >>> answer = instit.tasks.ask(model, image, "What is [1] holding?", instances=masks)
        >>> answer.text, answer.instance_ids, answer.unknown_ids
    """
    check_model(model)
    questions = _questions(question)
    extra = generation_options(max_new_tokens, temperature, generation_config, generate_kwargs)
    check_options(marks, indexed_by, channels)
    prepared = prepare(  # the edge: nothing below loads media (the unmarked copy is let go)
        load_media(media, channels=channels),
        instances,
        marks=marks,
        style=style,
        indexed_by=indexed_by,
        snap=snap,
    )
    if stream:
        if not isinstance(question, str):
            raise InstitValueError(
                "stream=True answers one question at a time; pass a single question str, or "
                "stream=False for a list of questions"
            )
        if not callable(getattr(model, "stream", None)):
            raise InstitTypeError(
                f"{type(model).__name__} cannot stream (no stream() method); pass stream=False"
            )
        chunks = model.stream(
            prepared.model_input,
            question,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            **extra,
        )
        return AnswerStream(iter(chunks), lambda text: make_answer(text, question, prepared))
    texts = generate_for(
        model,
        [prepared] * len(questions),
        questions,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        progress=progress,
        **extra,
    )
    answers = [make_answer(t, q, prepared) for t, q in zip(texts, questions, strict=True)]
    return answers[0] if isinstance(question, str) else answers


def ask_many(
    model: Any,
    media: Sequence[Any],
    questions: str | Sequence[str],
    *,
    instances: Sequence[Any] | None = None,
    marks: MarksMode = "draw",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    style: Any = None,
    indexed_by: IndexedBy = "source",
    snap: bool = False,
    channels: Channels = "rgb",
    progress: bool = True,
    generation_config: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> list[Answer]:
    """Ask about several media in one batched generation.

    Args:
        model: An :class:`instit.InstIt`.
        media: A list of media items, each one image or one video as :func:`ask` takes them
            (a video given as frames is a list inside this list).
        questions: One question for every item, or one question per item.
        instances: ``None``, or one entry per media item (each ``None`` or that item's
            instances / tracks).
        marks, max_new_tokens, temperature, style, indexed_by, snap, channels, progress,
            generation_config, generate_kwargs: As for :func:`ask`.

    Returns:
        One :class:`~instit.results.Answer` per media item, in order.  A media object that
        appears several times (with the same instances) is prepared and encoded once, and its
        template head and visual tokens are prefilled once for all its questions.
    """
    check_model(model)
    if isinstance(media, (str, bytes)) or not isinstance(media, Sequence) or not media:
        raise InstitTypeError(
            "ask_many() needs a non-empty list of media items; for one image or video use ask()"
        )
    count = len(media)
    question_list = _questions(questions)
    if len(question_list) == 1:
        question_list *= count
    elif len(question_list) != count:
        raise InstitValueError(
            f"got {len(question_list)} questions for {count} media items; pass one question "
            f"for all or {count}"
        )
    if instances is None:
        instance_list: list[Any] = [None] * count
    elif isinstance(instances, Sequence) and len(instances) == count:
        instance_list = list(instances)
    else:
        raise InstitValueError(
            f"instances must be None or a list with one entry per media item ({count}); "
            "use None entries for media without instances"
        )
    extra = generation_options(max_new_tokens, temperature, generation_config, generate_kwargs)
    check_options(marks, indexed_by, channels)
    # the edge: each media object is loaded once, and let go after its last use (its marked
    # copies are what the model sees)
    loaded: dict[int, LoadedMedia] = {}
    left = Counter(id(item) for item in media)
    cache: dict[tuple[int, int], Prepared] = {}
    prepared = []
    for item, item_instances in zip(media, instance_list, strict=True):
        key = (id(item), id(item_instances))
        if key not in cache:
            if id(item) not in loaded:
                loaded[id(item)] = load_media(item, channels=channels)
            cache[key] = prepare(
                loaded[id(item)],
                item_instances,
                marks=marks,
                style=style,
                indexed_by=indexed_by,
                snap=snap,
            )
        prepared.append(cache[key])
        left[id(item)] -= 1
        if not left[id(item)]:
            loaded.pop(id(item), None)
    texts = generate_for(
        model,
        prepared,
        question_list,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        progress=progress,
        **extra,
    )
    return [make_answer(t, q, p) for t, q, p in zip(texts, question_list, prepared, strict=True)]


def make_answer(text: str, question: str, prepared: Prepared) -> Answer:
    """Parse ``text`` into an :class:`Answer` checked against ``prepared``'s IDs and frames."""
    return Answer.parse(
        text,
        question,
        known_ids=prepared.known_ids,
        num_frames=prepared.num_frames,
        timestamps=prepared.timestamps,
        media=prepared.shown,
    )


def generate_for(
    model: Any,
    prepared: Sequence[Prepared],
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    progress: bool,
    **extra: Any,
) -> list[str]:
    """One batched ``generate`` for ``(prepared[i], prompts[i])``; media used by several prompts
    are encoded once (``model.encode_media``) and passed as one object, so that the model can
    share their prefix.  ``extra`` (``generation_config`` / ``generate_kwargs``, only those
    given) goes to ``generate`` as it is."""
    if not prompts:
        return []
    uses = Counter(id(p) for p in prepared)
    can_encode = callable(getattr(model, "encode_media", None))
    encoded: dict[int, Any] = {}
    inputs = []
    for item in prepared:
        if can_encode and uses[id(item)] > 1:
            if id(item) not in encoded:
                encoded[id(item)] = model.encode_media(item.model_input)
            inputs.append(encoded[id(item)])
        else:
            inputs.append(item.model_input)
    texts = model.generate(
        inputs,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        progress=progress,
        **extra,
    )
    if not isinstance(texts, list) or len(texts) != len(prompts):
        raise InstitError(
            f"{type(model).__name__}.generate returned {type(texts).__name__} of "
            f"{len(texts) if hasattr(texts, '__len__') else '?'} items for {len(prompts)} "
            "prompts; it must return one str per prompt"
        )
    return [str(t) for t in texts]


def _questions(question: str | Sequence[str]) -> list[str]:
    values = [question] if isinstance(question, str) else question
    if not isinstance(values, Sequence) or isinstance(values, bytes):
        raise InstitTypeError(
            f"question must be a str or a list of str, got {type(question).__name__}"
        )
    values = list(values)
    if not values:
        raise InstitValueError("got an empty list of questions; pass at least one question")
    for value in values:
        if not isinstance(value, str):
            raise InstitTypeError(
                f"every question must be a str, got {type(value).__name__} ({value!r})"
            )
        if not value.strip():
            raise InstitValueError("a question is empty; pass the text to ask")
    return values


def generation_options(
    max_new_tokens: int,
    temperature: float,
    generation_config: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check the generation arguments (:func:`instit.model.generation.check_generation`);
    returns the optional ones that were given, as keyword arguments for ``generate``/``stream``
    (a model without those parameters is then never passed them)."""

    settings = check_generation(
        max_new_tokens, temperature, None, generation_config, generate_kwargs
    )
    extra: dict[str, Any] = {}
    if generation_config is not None:
        extra["generation_config"] = generation_config
    if settings:
        extra["generate_kwargs"] = settings
    return extra
