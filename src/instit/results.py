"""Result objects of :func:`instit.tasks.ask` and :func:`instit.tasks.describe_instances`.

Every result is a dataclass that serialises to JSON (``to_dict()`` / ``to_json()``; ``json.dumps``
of the object itself fails, as for any dataclass) and shows itself in notebooks (``_repr_html_``:
JPEG thumbnails within a fixed byte budget, so a saved notebook stays small).  The media the model
saw (with the marks drawn on it) travels along as ``.media`` but is never part of the JSON.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from instit.dataset.schema import FrameCaption, ImageRecord, QAPair, VideoRecord
from instit.errors import DatasetError, InstitValueError
from instit.prompting.references import Reference, find_references, frame_numbers, instance_ids

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "Answer",
    "AnswerStream",
    "FrameDescription",
    "ImageDescription",
    "VideoDescription",
]

#: Most base64 JPEG bytes one result's notebook view embeds, whatever the number of frames.
NOTEBOOK_IMAGE_BYTES = 120_000
_THUMB_SIDE = 384
_MIN_THUMB_SIDE = 48
_THUMB_AREA = 2 * _THUMB_SIDE * _THUMB_SIDE  # pixels shared by all thumbnails of a result
_THUMB_QUALITY = 80
_KNOWN_STYLE = "background:#ffe08a;border-radius:3px;padding:0 2px"
_UNKNOWN_STYLE = "background:#ffb3b3;border-radius:3px;padding:0 2px;text-decoration:underline wavy"
_FRAME_STYLE = "background:#bde0ff;border-radius:3px;padding:0 2px"


# -- media helpers (PIL only; no heavy imports) ---------------------------------------------------


def media_frames(media: Any) -> list[Image.Image]:
    """The PIL images of a result's media: ``[image]`` for an image, the frames of a video."""
    from PIL import Image

    from instit.video import Video

    if media is None:
        return []
    if isinstance(media, Image.Image):
        return [media]
    if isinstance(media, Video):
        return list(media.frames)
    if isinstance(media, (list, tuple)):
        return [f for f in media if isinstance(f, Image.Image)]
    return []


def _jpeg_base64(image: Image.Image, side: int) -> str:
    thumb = image.convert("RGB")
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=_THUMB_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _thumbnail_tags(images: Sequence[Image.Image], captions: Sequence[str]) -> list[str]:
    """One ``<figure>`` per image, all JPEG data together within :data:`NOTEBOOK_IMAGE_BYTES`.

    Thumbnails shrink with the number of images (one image: up to 384 px a side) and again
    until they fit the budget; past the smallest size, the images that do not fit are shown
    as their caption only.  So a result's notebook view stays small whatever the media.
    """
    if not images:
        return []
    side = min(_THUMB_SIDE, max(_MIN_THUMB_SIDE, math.isqrt(_THUMB_AREA // len(images))))
    while True:
        data = [_jpeg_base64(image, side) for image in images]
        if sum(map(len, data)) <= NOTEBOOK_IMAGE_BYTES or side == _MIN_THUMB_SIDE:
            break
        side = max(_MIN_THUMB_SIDE, side * 3 // 4)
    tags, spent = [], 0
    for encoded, caption in zip(data, captions, strict=True):
        label = (
            f"<div style='font-size:small;text-align:center'>{html.escape(caption)}</div>"
            if caption
            else ""
        )
        spent += len(encoded)
        if spent > NOTEBOOK_IMAGE_BYTES:
            tags.append(f"<span style='font-size:small'>{html.escape(caption)}</span>")
            continue
        tags.append(
            "<figure style='display:inline-block;margin:2px'>"
            f"<img src='data:image/jpeg;base64,{encoded}'/>{label}</figure>"
        )
    return tags


def _media_html(media: Any) -> str:
    frames = media_frames(media)
    from instit.media import is_video

    if len(frames) == 1 and not is_video(media):
        return "".join(_thumbnail_tags(frames, [""]))
    return "".join(_thumbnail_tags(frames, [f"<{t}>" for t in range(1, len(frames) + 1)]))


def highlight_html(
    text: str,
    references: Sequence[Reference] | None = None,
    *,
    unknown_ids: Sequence[int] = (),
    unknown_frames: Sequence[int] = (),
) -> str:
    """``text`` as HTML with every reference highlighted (unknown IDs/frames in red)."""
    refs = find_references(text) if references is None else list(references)
    bad_ids, bad_frames = set(unknown_ids), set(unknown_frames)
    out: list[str] = []
    position = 0
    for ref in sorted(refs, key=lambda r: r.start):
        if ref.start < position:
            continue
        out.append(html.escape(text[position : ref.start]))
        if ref.kind == "instance":
            unknown = bool(bad_ids.intersection(ref.ids))
            style = _UNKNOWN_STYLE if unknown else _KNOWN_STYLE
        else:
            unknown = bool(bad_frames.intersection(ref.frame_numbers))
            style = _UNKNOWN_STYLE if unknown else _FRAME_STYLE
        title = " title='not among the instances/frames given'" if unknown else ""
        out.append(f"<span style='{style}'{title}>{html.escape(ref.text)}</span>")
        position = ref.end
    out.append(html.escape(text[position:]))
    return "".join(out).replace("\n", "<br/>")


def _dumps(data: Any, indent: int | None) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False)


# -- ask ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """The model's answer to one question, with its references parsed.

    Attributes:
        text: The generated answer.
        question: The question as asked (before templating).
        references: Every ``[ID]`` / ``<t>`` mention in ``text``, in order (see
            :class:`~instit.prompting.references.Reference`).
        instance_ids: Instance IDs mentioned, unique, in order of first mention.
        frames: 1-based frames mentioned (intervals expanded), unique, in order of first mention.
        seconds: Time in seconds of each entry of ``frames`` when the media has timestamps
            (``None`` for a frame the media does not have: it is in ``unknown_frames``), else
            ``None``.
        unknown_ids: Mentioned IDs that are not among the instances given (empty when no
            instances were given: nothing to check against).
        unknown_frames: Mentioned frames outside ``1..number of frames`` (for an image, every
            frame mentioned); the other frames keep their ``seconds``.
        media: What the model saw (the marked image, or the marked frames / ``Video``); not
            serialised.
    """

    text: str
    question: str
    references: list[Reference] = field(default_factory=list)
    instance_ids: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    seconds: list[float | None] | None = None
    unknown_ids: list[int] = field(default_factory=list)
    unknown_frames: list[int] = field(default_factory=list)
    media: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(
        cls,
        text: str,
        question: str,
        *,
        known_ids: Sequence[int] | None = None,
        num_frames: int | None = None,
        timestamps: Sequence[float] | None = None,
        media: Any = None,
    ) -> Answer:
        """Build an :class:`Answer` from generated text.

        Args:
            text: The generated text.
            question: The question that was asked.
            known_ids: The instance IDs on the media; mentions of other IDs go to
                ``unknown_ids``.  ``None`` checks nothing.
            num_frames: Frames in the media (``1`` for an image, ``None``: unknown, no check).
            timestamps: Seconds of frame ``t`` at ``timestamps[t - 1]``; fills ``seconds``.
            media: The media the model saw, kept on the result for display.
        """
        refs = find_references(text)
        if timestamps is not None:
            refs = [_with_seconds(r, timestamps) for r in refs]
        ids = instance_ids(refs)
        frames = frame_numbers(refs)
        known = None if known_ids is None else set(known_ids)
        seconds = None
        if timestamps is not None:
            if num_frames is None:
                num_frames = len(timestamps)
            seconds = [float(timestamps[t - 1]) if t <= len(timestamps) else None for t in frames]
        return cls(
            text=text,
            question=question,
            references=refs,
            instance_ids=ids,
            frames=frames,
            seconds=seconds,
            unknown_ids=[] if known is None else [i for i in ids if i not in known],
            unknown_frames=[] if num_frames is None else [t for t in frames if t > num_frames],
            media=media,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but ``media``."""
        return {
            "question": self.question,
            "text": self.text,
            "instance_ids": list(self.instance_ids),
            "frames": list(self.frames),
            "seconds": None if self.seconds is None else list(self.seconds),
            "unknown_ids": list(self.unknown_ids),
            "unknown_frames": list(self.unknown_frames),
            "references": [r.to_dict() for r in self.references],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as a JSON string."""
        return _dumps(self.to_dict(), indent)

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        body = highlight_html(
            self.text,
            self.references,
            unknown_ids=self.unknown_ids,
            unknown_frames=self.unknown_frames,
        )
        question = highlight_html(self.question)
        return (
            f"<div>{_media_html(self.media)}"
            f"<p><b>Q:</b> {question}</p><p><b>A:</b> {body}</p></div>"
        )


def _with_seconds(ref: Reference, timestamps: Sequence[float]) -> Reference:
    if ref.frames is None or ref.frames[1] > len(timestamps):
        return ref
    first, last = ref.frames
    return Reference(
        ref.kind,
        ref.start,
        ref.end,
        ref.text,
        ref.ids,
        ref.frames,
        (float(timestamps[first - 1]), float(timestamps[last - 1])),
    )


class AnswerStream:
    """The text of an answer as it is generated, then the parsed :class:`Answer`.

    Iterate to receive text chunks as the model produces them; afterwards (or at any time,
    which first reads the rest of the stream) :meth:`answer` returns the parsed answer::

        stream = instit.tasks.ask(model, image, "What is [1] doing?", stream=True)
        for chunk in stream:
            print(chunk, end="", flush=True)
        answer = stream.answer()
    """

    def __init__(self, chunks: Iterator[str], finish: Callable[[str], Answer]) -> None:
        self._chunks = chunks
        self._finish = finish
        self._parts: list[str] = []
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            self._parts.append(chunk)
            yield chunk

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def answer(self) -> Answer:
        """The parsed :class:`Answer` (reads whatever the stream has not yet delivered)."""
        if self._answer is None:
            for chunk in self._chunks:
                self._parts.append(chunk)
            self._answer = self._finish(self.text)
        return self._answer


# -- describe -------------------------------------------------------------------------------------


def _captions_json(captions: Mapping[int, str]) -> dict[str, str]:
    return {str(i): captions[i] for i in sorted(captions)}


def _instance_ids(captions: Mapping[str, str], where: str) -> dict[int, str]:
    """Captions of a record the schema validated, keyed by instance ID (an ``int``)."""
    out: dict[int, str] = {}
    for key, caption in captions.items():
        if not key.isdigit() or int(key) <= 0:
            raise DatasetError(
                f"{where} has entry {key!r}: {caption!r}; keys must be positive integer strings "
                "(the instance IDs [1], [2], ...)"
            )
        out[int(key)] = caption
    return out


def _captions_text(captions: Mapping[int, str], indent: str = "") -> list[str]:
    return [f"{indent}[{i}] {captions[i]}" for i in sorted(captions)]


def _id_notes(missing: Sequence[int], extra: Sequence[int], indent: str = "") -> list[str]:
    notes = []
    if missing:
        notes.append(f"{indent}not described: {' '.join(f'[{i}]' for i in missing)}")
    if extra:
        notes.append(f"{indent}dropped (not given): {' '.join(f'[{i}]' for i in extra)}")
    return notes


def _captions_html(captions: Mapping[int, str]) -> str:
    rows = "".join(
        f"<tr><td style='vertical-align:top'><b>[{i}]</b></td><td>{highlight_html(c)}</td></tr>"
        for i, c in sorted(captions.items())
    )
    return f"<table>{rows}</table>"


@dataclass
class ImageDescription:
    """Instance-level and image-level captions of one image (an Inst-It Dataset image record).

    Attributes:
        instance_captions: ``{instance ID: caption}``, in ID order.
        image_caption: A caption of the whole image (it may refer to instances as ``[ID]``).
        missing_ids: Instances the model did not describe, even after the retries.
        extra_ids: IDs the model described that are not among the instances; their captions
            were dropped.
        media: The marked image the model saw; not serialised.
    """

    instance_captions: dict[int, str]
    image_caption: str
    missing_ids: list[int] = field(default_factory=list)
    extra_ids: list[int] = field(default_factory=list)
    media: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (caption keys are strings, as in JSON objects)."""
        return {
            "instance_captions": _captions_json(self.instance_captions),
            "image_caption": self.image_caption,
            "missing_ids": list(self.missing_ids),
            "extra_ids": list(self.extra_ids),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as a JSON string."""
        return _dumps(self.to_dict(), indent)

    def to_dataset_record(self, *, image_id: int, image_path: str) -> dict[str, Any]:
        """This description as an Inst-It Dataset image record.

        ``{"image_id", "instance_level_caption": {"<id>": caption}, "image_level_caption",
        "image_path"}``, exactly the fields of ``inst_it_dataset_image_51k.json``.
        """
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise InstitValueError(f"image_id must be an int, got {image_id!r}; pass e.g. 0")
        return ImageRecord(
            image_id=image_id,
            instance_level_caption=_captions_json(self.instance_captions),
            image_level_caption=self.image_caption,
            image_path=str(image_path),
        ).to_dict()

    @classmethod
    def from_dataset_record(cls, record: Mapping[str, Any]) -> ImageDescription:
        """Read an Inst-It Dataset image record (the inverse of :meth:`to_dataset_record`).

        The record is validated by :class:`instit.dataset.ImageRecord` (the one schema), which
        raises :class:`~instit.errors.DatasetError` naming the field.
        """
        image = ImageRecord.from_dict(record)
        where = f"image record {image.image_id} instance_level_caption"
        return cls(
            instance_captions=_instance_ids(image.instance_level_caption, where),
            image_caption=image.image_level_caption,
        )

    def __str__(self) -> str:
        """Readable text: the image caption, then one ``[ID] caption`` line per instance."""
        lines = [
            f"image: {self.image_caption}",
            *_captions_text(self.instance_captions),
            *_id_notes(self.missing_ids, self.extra_ids),
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            f"<div>{_media_html(self.media)}<p>{highlight_html(self.image_caption)}</p>"
            f"{_captions_html(self.instance_captions)}</div>"
        )


@dataclass
class FrameDescription:
    """The captions of one video frame (one ``frame_level_caption`` entry of the dataset).

    Attributes:
        timestamp: The frame's 1-based position, the ``t`` of ``<t>``.
        frame_name: The frame's file name in the dataset record.
        instance_captions: ``{instance ID: caption}`` for the instances visible in the frame.
        image_caption: A caption of the whole frame.
        temporal_change: What changed since the previous frame (empty for the first frame).
        seconds: The frame's time in the video when known; not part of the dataset record.
        missing_ids: Instances of this frame the model did not describe.
        extra_ids: IDs described that are not in this frame (dropped).
    """

    timestamp: int
    frame_name: str
    instance_captions: dict[int, str]
    image_caption: str
    temporal_change: str
    seconds: float | None = None
    missing_ids: list[int] = field(default_factory=list)
    extra_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the dataset fields plus ``seconds`` and the ID checks)."""
        return {
            **self.to_dataset_record(),
            "seconds": self.seconds,
            "missing_ids": list(self.missing_ids),
            "extra_ids": list(self.extra_ids),
        }

    def __str__(self) -> str:
        """Readable text: ``<t> frame name (seconds)``, then the captions, indented."""
        when = "" if self.seconds is None else f" ({self.seconds:.2f} s)"
        lines = [f"<{self.timestamp}> {self.frame_name}{when}", f"  frame: {self.image_caption}"]
        if self.temporal_change:
            lines.append(f"  change: {self.temporal_change}")
        lines += _captions_text(self.instance_captions, "  ")
        lines += _id_notes(self.missing_ids, self.extra_ids, "  ")
        return "\n".join(lines)

    def to_dataset_record(self, frame_name: str | None = None) -> dict[str, Any]:
        """This frame as a ``frame_level_caption`` entry of the Inst-It Dataset."""
        return asdict(self._frame_caption(frame_name))

    def _frame_caption(self, frame_name: str | None) -> FrameCaption:
        return FrameCaption(
            timestamp=self.timestamp,
            frame_name=self.frame_name if frame_name is None else frame_name,
            instance_level=_captions_json(self.instance_captions),
            image_level=self.image_caption,
            temporal_change=self.temporal_change,
        )


@dataclass
class VideoDescription:
    """Frame-level and video-level captions of one video (an Inst-It Dataset video record).

    Attributes:
        frames: One :class:`FrameDescription` per frame, in order (``timestamp`` 1, 2, ...).
        video_caption: A caption of the whole video (it may use ``[ID]`` and ``<t>``).
        question_answer_pairs: ``[{"question", "answer"}]`` for the questions asked.
        media: The marked frames (or ``Video``) the model saw; not serialised.
    """

    frames: list[FrameDescription]
    video_caption: str
    question_answer_pairs: list[dict[str, str]] = field(default_factory=list)
    media: Any = field(default=None, repr=False, compare=False)

    @property
    def missing_ids(self) -> dict[int, list[int]]:
        """``{timestamp: IDs not described}`` for the frames that have any."""
        return {f.timestamp: list(f.missing_ids) for f in self.frames if f.missing_ids}

    @property
    def extra_ids(self) -> dict[int, list[int]]:
        """``{timestamp: IDs described but not in the frame}`` for the frames that have any."""
        return {f.timestamp: list(f.extra_ids) for f in self.frames if f.extra_ids}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "frames": [f.to_dict() for f in self.frames],
            "video_caption": self.video_caption,
            "question_answer_pairs": [dict(qa) for qa in self.question_answer_pairs],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as a JSON string."""
        return _dumps(self.to_dict(), indent)

    def to_dataset_record(
        self,
        *,
        video_id: int,
        video_path: str,
        frame_names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """This description as an Inst-It Dataset video record.

        ``{"video_id", "frame_level_caption": [{"timestamp", "frame_name", "instance_level",
        "image_level", "temporal_change"}], "question_answer_pairs", "video_level_caption",
        "video_path"}``, exactly the fields of ``inst_it_dataset_video_21k.json``.

        Args:
            video_id: The record's ``video_id``.
            video_path: The record's ``video_path`` (folder of frames or video file).
            frame_names: File names for the frames (default: the names stored on each frame).
        """
        if isinstance(video_id, bool) or not isinstance(video_id, int):
            raise InstitValueError(f"video_id must be an int, got {video_id!r}; pass e.g. 0")
        if frame_names is not None and len(frame_names) != len(self.frames):
            raise InstitValueError(
                f"frame_names has {len(frame_names)} names for {len(self.frames)} frames; "
                "pass one name per frame"
            )
        names: Sequence[str | None] = (
            [None] * len(self.frames) if frame_names is None else frame_names
        )
        return VideoRecord(
            video_id=video_id,
            frame_level_caption=tuple(
                f._frame_caption(name) for f, name in zip(self.frames, names, strict=True)
            ),
            question_answer_pairs=tuple(
                QAPair(qa["question"], qa["answer"]) for qa in self.question_answer_pairs
            ),
            video_level_caption=self.video_caption,
            video_path=str(video_path),
        ).to_dict()

    @classmethod
    def from_dataset_record(cls, record: Mapping[str, Any]) -> VideoDescription:
        """Read an Inst-It Dataset video record (the inverse of :meth:`to_dataset_record`).

        The record is validated by :class:`instit.dataset.VideoRecord` (the one schema), which
        raises :class:`~instit.errors.DatasetError` naming the field. Frames come in timestamp
        order; a ``temporal_change`` that is ``null`` or absent becomes ``""``.
        """
        video = VideoRecord.from_dict(record)
        where = f"video record {video.video_id} frame_level_caption"
        return cls(
            frames=[
                FrameDescription(
                    timestamp=frame.timestamp,
                    frame_name=frame.frame_name,
                    instance_captions=_instance_ids(
                        frame.instance_level, f"{where}[{n}] instance_level"
                    ),
                    image_caption=frame.image_level,
                    temporal_change=frame.temporal_change or "",
                )
                for n, frame in enumerate(video.frame_level_caption)
            ],
            video_caption=video.video_level_caption,
            question_answer_pairs=[
                {"question": qa.question, "answer": qa.answer} for qa in video.question_answer_pairs
            ],
        )

    def __str__(self) -> str:
        """Readable text: the video caption, each frame's captions, then the questions asked."""
        lines = [f"video: {self.video_caption}", *(str(f) for f in self.frames)]
        for qa in self.question_answer_pairs:
            lines += [f"Q: {qa['question']}", f"A: {qa['answer']}"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        images = media_frames(self.media)
        shown = [f for f in self.frames if 1 <= f.timestamp <= len(images)]
        tags = dict(
            zip(
                (f.timestamp for f in shown),
                _thumbnail_tags(
                    [images[f.timestamp - 1] for f in shown], [f"<{f.timestamp}>" for f in shown]
                ),
                strict=True,
            )
        )
        rows = []
        for frame in self.frames:
            thumb = tags.get(frame.timestamp, f"&lt;{frame.timestamp}&gt;")
            change = (
                f"<p><i>Change:</i> {highlight_html(frame.temporal_change)}</p>"
                if frame.temporal_change
                else ""
            )
            rows.append(
                f"<tr><td style='vertical-align:top'>{thumb}</td><td>"
                f"<p>{highlight_html(frame.image_caption)}</p>{change}"
                f"{_captions_html(frame.instance_captions)}</td></tr>"
            )
        qa = "".join(
            f"<p><b>Q:</b> {highlight_html(p['question'])}<br/><b>A:</b> "
            f"{highlight_html(p['answer'])}</p>"
            for p in self.question_answer_pairs
        )
        return (
            f"<div><p><b>Video:</b> {highlight_html(self.video_caption)}</p>"
            f"<table>{''.join(rows)}</table>{qa}</div>"
        )
