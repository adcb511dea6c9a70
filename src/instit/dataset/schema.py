"""Typed, streaming readers for the Inst-It Dataset annotation files.

``inst_it_dataset_video_21k.json`` (306 MB) and ``inst_it_dataset_image_51k.json`` (110 MB) are
single JSON arrays.  :func:`iter_json_array` reads such an array one object at a time with
``json.JSONDecoder.raw_decode`` over a buffered text stream, so memory stays at one record plus
one 64 KiB read chunk (the standard library is enough; no ``ijson`` dependency).  Each object
becomes a frozen dataclass; a record that does not follow the schema raises
:class:`DatasetError` naming the file, the record index, its id and the field.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from instit.errors import DatasetError, InstitValueError

_WS = " \t\r\n"


class _Text:
    """A decoded window on a file: ``text[pos:]`` is what is not consumed yet.

    The consumed head is dropped only when more is read, so each byte is copied a bounded number
    of times (slicing after every record would copy the rest of the chunk each time).
    """

    def __init__(self, handle: BinaryIO, path: Path, reader: JsonArrayReader) -> None:
        self.handle = handle
        self.path = path
        self.reader = reader
        self.decode = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.eof = False
        self.started = False  # a byte-order mark before the first character is skipped
        self.record = 0  # the record being read, for error messages
        self.bad_byte: tuple[bytes, int] | None = None  # (byte, file offset) not UTF-8

    def more(self, size: int) -> bool:
        """Append up to ``size`` more bytes of the file; ``False`` at the end of the file.

        Text up to a byte that is not UTF-8 is kept; the error is raised when the reader needs
        what follows it, so it names the record that holds the byte.
        """
        if self.bad_byte is not None:
            byte, at = self.bad_byte
            raise DatasetError(
                f"{self.path}: record {self.record} is not UTF-8 text (byte {byte!r} at byte {at} "
                "of the file): the dataset files are UTF-8 JSON; re-encode the file as UTF-8 "
                "(e.g. iconv -t UTF-8) or download it again"
            )
        if self.eof:
            return False
        pending = self.decode.getstate()[0]
        data = self.handle.read(size)
        start = self.reader.bytes_read - len(pending)
        self.reader.bytes_read += len(data)
        self.eof = not data
        try:
            decoded = self.decode.decode(data, final=self.eof)
        except UnicodeDecodeError as exc:
            whole = pending + data
            decoded = whole[: exc.start].decode("utf-8")
            self.bad_byte = (whole[exc.start : exc.start + 1], start + exc.start)
        if not self.started and decoded:
            self.started = True
            decoded = decoded.removeprefix("\ufeff")
        if self.eof:  # nothing appended: indices into text stay valid
            return False
        self.text = self.text[self.pos :] + decoded
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character (consumed up to it), or ``""`` at the end."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text) or not self.more(self.reader.chunk_size):
                return self.text[self.pos : self.pos + 1]

    def offset(self, index: int) -> int:
        """Approximate file offset (characters) of ``text[index]``, for error messages."""
        return self.reader.bytes_read - len(self.text) + index


class JsonArrayReader:
    """Iterate the objects of a top-level JSON array without loading the whole file.

    ``bytes_read`` tells how far into the file the reader is (for progress bars).  Memory holds
    one read chunk plus the record being decoded.
    """

    def __init__(self, path: str | os.PathLike[str], *, chunk_size: int = 1 << 16) -> None:
        if chunk_size < 1:
            raise InstitValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.bytes_read = 0
        self._decoder = json.JSONDecoder()

    def _decode(self, buf: _Text, index: int) -> Any:
        """Decode the value at ``buf.pos``, reading more (doubling) until it is complete."""
        size = self.chunk_size
        buf.record = index
        while True:
            try:
                value, end = self._decoder.raw_decode(buf.text, buf.pos)
            except json.JSONDecodeError as exc:
                if not buf.more(max(size, len(buf.text) - buf.pos)):
                    raise DatasetError(
                        f"{self.path}: record {index} is not valid JSON ({exc.msg} near "
                        f"character {buf.offset(exc.pos)} of the file): the file is truncated "
                        "or damaged; download it again"
                    ) from exc
                size *= 2
                continue
            except RecursionError as exc:  # complete or not, it nests too deep to decode
                raise DatasetError(
                    f"{self.path}: record {index} (from character {buf.offset(buf.pos)} of the "
                    "file) nests arrays/objects deeper than Python's JSON decoder can follow; "
                    "no Inst-It Dataset record nests more than 4 levels: the file is damaged"
                ) from exc
            except ValueError as exc:  # int() refuses numbers over sys.get_int_max_str_digits()
                raise DatasetError(
                    f"{self.path}: record {index} (from character {buf.offset(buf.pos)} of the "
                    f"file) holds an integer with more than {sys.get_int_max_str_digits()} "
                    "digits; no Inst-It Dataset field holds such a number: the file is damaged"
                ) from exc
            if end < len(buf.text) or not buf.more(size):  # a number may go on in the next read
                buf.pos = end
                return value

    def _check_end(self, buf: _Text) -> None:
        """Only whitespace may follow the array's closing ``]``."""
        at = buf.offset(buf.pos)
        extra = buf.peek()
        if extra:
            raise DatasetError(
                f"{self.path}: found {buf.text[buf.pos : buf.pos + 20]!r} after the array's "
                f"closing ']' (character {at} of the file): the file holds more than one JSON "
                "value (two files joined, or a damaged end); download it again"
            )

    def __iter__(self) -> Iterator[Any]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise DatasetError(f"cannot open {self.path} ({exc}): check the path") from exc
        with handle:
            buf = _Text(handle, self.path, self)
            if buf.peek() != "[":
                raise DatasetError(
                    f"{self.path} does not start with a JSON array '[': expected a list of records"
                )
            buf.pos += 1
            if buf.peek() == "]":
                buf.pos += 1
                self._check_end(buf)
                return
            index = 0
            while True:
                yield self._decode(buf, index)
                char = buf.peek()
                if char == "]":
                    buf.pos += 1
                    self._check_end(buf)
                    return
                if char != ",":
                    found = repr(char) if char else "the end of the file"
                    raise DatasetError(
                        f"{self.path}: expected ',' or ']' after record {index}, found {found}: "
                        "the file is truncated or damaged; download it again"
                    )
                buf.pos += 1
                buf.peek()
                index += 1


def iter_json_array(path: str | os.PathLike[str], *, chunk_size: int = 1 << 16) -> Iterator[Any]:
    """The items of the JSON array in ``path``, one at a time (streaming)."""
    return iter(JsonArrayReader(path, chunk_size=chunk_size))


# -- typed records -------------------------------------------------------------------------------


class _Check:
    """Field access that names the record and field path in every error."""

    def __init__(self, path: str | os.PathLike[str], index: int, id_name: str, record: Any) -> None:
        self.path = path
        self.index = index
        self.id_name = id_name
        self.record = record
        if not isinstance(record, dict):
            raise DatasetError(f"{self.where} is a {type(record).__name__}, not an object")

    @property
    def where(self) -> str:
        """``file: record N (id_name ID)``, built only when an error is raised."""
        where = f"{os.fspath(self.path)}: record {self.index}"
        if isinstance(self.record, dict) and self.id_name in self.record:
            where += f" ({self.id_name} {self.record[self.id_name]!r})"
        return where

    def fail(self, field: str, expected: str, value: Any) -> DatasetError:
        got = "missing" if value is _MISSING else f"a {type(value).__name__}"
        return DatasetError(
            f"{self.where}: field {field!r} should be {expected}, got {got}: "
            "the file does not follow the Inst-It Dataset schema"
        )

    def get(
        self, obj: dict[str, Any], key: str, kind: type, parent: str = "", optional: bool = False
    ) -> Any:
        """``obj[key]`` checked to be a ``kind``; ``parent`` is the field path of ``obj``."""
        value = obj.get(key, _MISSING)
        if optional and (value is _MISSING or value is None):
            return None
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is not int and isinstance(value, kind):
            return value
        raise self.fail(f"{parent}.{key}" if parent else key, kind.__name__, value)

    def objects(self, obj: dict[str, Any], key: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(field path, item)`` for each item of the list ``obj[key]``, each an object."""
        for i, item in enumerate(self.get(obj, key, list)):
            field = f"{key}[{i}]"
            if not isinstance(item, dict):
                raise self.fail(field, "an object", item)
            yield field, item

    def captions(self, obj: dict[str, Any], key: str, parent: str = "") -> dict[str, str]:
        """``obj[key]``, an ``{id: caption}`` object of strings."""
        value = self.get(obj, key, dict, parent)
        for iid, caption in value.items():
            if not isinstance(caption, str):
                field = f"{parent}.{key}" if parent else key
                raise self.fail(f"{field}[{iid!r}]", "str", caption)
        return dict(value)


_MISSING = object()


def _sorted_ids(captions: dict[str, str]) -> list[str]:
    return sorted(captions, key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))


@dataclass(frozen=True)
class FrameCaption:
    """Frame-level annotation: every instance, the whole frame, and what changed since the last."""

    timestamp: int
    frame_name: str
    instance_level: dict[str, str]
    image_level: str
    temporal_change: str | None

    @property
    def instance_ids(self) -> list[str]:
        """Instance IDs in numeric order."""
        return _sorted_ids(self.instance_level)


@dataclass(frozen=True)
class QAPair:
    """An open-ended question and its answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class VideoRecord:
    """One video of ``inst_it_dataset_video_21k.json``."""

    video_id: int
    frame_level_caption: tuple[FrameCaption, ...]
    question_answer_pairs: tuple[QAPair, ...]
    video_level_caption: str
    video_path: str

    @classmethod
    def from_dict(
        cls, record: Any, *, index: int = 0, path: str | os.PathLike[str] = "<dict>"
    ) -> VideoRecord:
        """Validate one raw record (errors name ``path``, ``index``, video_id and field)."""
        check = _Check(path, index, "video_id", record)
        frames = [
            FrameCaption(
                timestamp=check.get(frame, "timestamp", int, field),
                frame_name=check.get(frame, "frame_name", str, field),
                instance_level=check.captions(frame, "instance_level", field),
                image_level=check.get(frame, "image_level", str, field),
                temporal_change=check.get(frame, "temporal_change", str, field, optional=True),
            )
            for field, frame in check.objects(record, "frame_level_caption")
        ]
        pairs = [
            QAPair(check.get(pair, "question", str, field), check.get(pair, "answer", str, field))
            for field, pair in check.objects(record, "question_answer_pairs")
        ]
        seen: set[int] = set()
        for i, frame in enumerate(frames):
            if frame.timestamp < 1 or frame.timestamp in seen:
                raise DatasetError(
                    f"{check.where}: field 'frame_level_caption[{i}].timestamp' is "
                    f"{frame.timestamp}, but timestamps are the frames' 1-based <t> and must be "
                    "unique: the file does not follow the Inst-It Dataset schema"
                )
            seen.add(frame.timestamp)
        return cls(
            video_id=check.get(record, "video_id", int),
            frame_level_caption=tuple(sorted(frames, key=lambda f: f.timestamp)),
            question_answer_pairs=tuple(pairs),
            video_level_caption=check.get(record, "video_level_caption", str),
            video_path=check.get(record, "video_path", str),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record in the file's schema (``from_dict(to_dict())`` gives it back)."""
        data = asdict(self)
        data["frame_level_caption"] = list(data["frame_level_caption"])
        data["question_answer_pairs"] = list(data["question_answer_pairs"])
        return data


@dataclass(frozen=True)
class ImageRecord:
    """One image of ``inst_it_dataset_image_51k.json``."""

    image_id: int
    instance_level_caption: dict[str, str]
    image_level_caption: str
    image_path: str

    @property
    def instance_ids(self) -> list[str]:
        """Instance IDs in numeric order."""
        return _sorted_ids(self.instance_level_caption)

    @classmethod
    def from_dict(
        cls, record: Any, *, index: int = 0, path: str | os.PathLike[str] = "<dict>"
    ) -> ImageRecord:
        """Validate one raw record (errors name ``path``, ``index``, image_id and field)."""
        check = _Check(path, index, "image_id", record)
        return cls(
            image_id=check.get(record, "image_id", int),
            instance_level_caption=check.captions(record, "instance_level_caption"),
            image_level_caption=check.get(record, "image_level_caption", str),
            image_path=check.get(record, "image_path", str),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record in the file's schema (``from_dict(to_dict())`` gives it back)."""
        return asdict(self)


Kind = Literal["image", "video"]


def detect_kind(path: str | os.PathLike[str]) -> Kind:
    """``"video"`` or ``"image"`` from the first record's fields."""
    with contextlib.closing(iter(JsonArrayReader(path))) as records:
        first = next(records, None)
    if isinstance(first, dict) and "video_id" in first:
        return "video"
    if isinstance(first, dict) and "image_id" in first:
        return "image"
    what = "is an empty list" if first is None else "has neither 'video_id' nor 'image_id'"
    raise DatasetError(
        f"cannot tell whether {path} holds videos or images (its first record {what}): "
        "pass kind='video' or kind='image'"
    )


_Record = TypeVar("_Record", VideoRecord, ImageRecord)


def _stream(
    path: str | os.PathLike[str],
    build: Callable[..., _Record],
    reader: JsonArrayReader | None,
) -> Iterator[_Record]:
    source = reader if reader is not None else JsonArrayReader(path)
    for index, record in enumerate(source):
        yield build(record, index=index, path=path)


def read_records(
    path: str | os.PathLike[str],
    kind: Kind | None = None,
    *,
    reader: JsonArrayReader | None = None,
) -> Iterator[VideoRecord] | Iterator[ImageRecord]:
    """Stream typed records from an Inst-It Dataset file (``kind`` detected when ``None``).

    ``reader`` lets a caller watch ``reader.bytes_read`` (progress); it must read ``path``.
    """
    if kind not in (None, "video", "image"):
        raise InstitValueError(f"unknown dataset kind {kind!r}: use 'video' or 'image'")
    if (kind or detect_kind(path)) == "video":
        return _stream(path, VideoRecord.from_dict, reader)
    return _stream(path, ImageRecord.from_dict, reader)


def read_video_records(path: str | os.PathLike[str]) -> Iterator[VideoRecord]:
    """Stream :class:`VideoRecord` s from ``inst_it_dataset_video_21k.json``."""
    return _stream(path, VideoRecord.from_dict, None)


def read_image_records(path: str | os.PathLike[str]) -> Iterator[ImageRecord]:
    """Stream :class:`ImageRecord` s from ``inst_it_dataset_image_51k.json``."""
    return _stream(path, ImageRecord.from_dict, None)
