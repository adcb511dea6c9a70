"""Training data -> conversations about one media item each.

Three kinds of ``data`` are read (see :func:`read_conversations`):

* an **Inst-It Dataset file** (``.json``: ``inst_it_dataset_image_51k.json`` or
  ``..._video_21k.json`` or a file in their schema), turned into turns exactly as
  ``instit dataset to-llava`` does; media paths are relative to ``media_root``;
* a **LLaVA-style JSONL** file (``.jsonl``), one ``{"image"|"video": path, "conversations":
  [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", ...}, ...]}`` per line, as
  ``instit dataset to-llava`` writes it;
* an **iterable of items** ``(media, instances_or_tracks, [(question, answer), ...])``: the
  marks are drawn with instit's own renderer and videos sampled with ``load_video``, exactly as
  ``ask`` does at inference.

Media referred to by the files are taken as they are (the Inst-It Dataset's media already show
their marks).  A video must fit in ``max_frames`` frames: a frame folder with more frames is
refused rather than thinned, since thinning would break the ``<t>`` references of its turns.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instit import _json
from instit.errors import DatasetError, InstitTypeError, InstitValueError

_MEDIA_TOKEN = "<image>"


@dataclass(frozen=True)
class Conversation:
    """One training conversation about one image or video.

    Attributes:
        media: the image or video as given (path, PIL image, frames, ``Video``).
        instances: instances or tracks to draw as marks (``None``: the media shows them).
        turns: ``(question, answer)`` pairs; the media belongs to the first question.
        source: where it came from, for error messages (``"data.jsonl line 3"``).
    """

    media: Any
    instances: Any
    turns: tuple[tuple[str, str], ...]
    source: str


def _turns_from_llava(messages: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(messages, list) or not messages or len(messages) % 2:
        raise DatasetError(
            f"{where}: 'conversations' must be a non-empty list of human/gpt message pairs"
        )
    turns = []
    for i in range(0, len(messages), 2):
        human, gpt = messages[i], messages[i + 1]
        ok = (
            isinstance(human, dict)
            and isinstance(gpt, dict)
            and human.get("from") == "human"
            and gpt.get("from") == "gpt"
            and isinstance(human.get("value"), str)
            and isinstance(gpt.get("value"), str)
        )
        if not ok:
            raise DatasetError(
                f"{where}: conversations[{i}:{i + 2}] must be a 'human' then a 'gpt' message, "
                "each with a string 'value'"
            )
        question = human["value"]
        if i == 0:
            question = question.removeprefix(_MEDIA_TOKEN).removeprefix("\n")
        if _MEDIA_TOKEN in question:
            raise DatasetError(
                f"{where}: conversations[{i}] has '<image>' after the start of the first turn; "
                "instit trains on one media item per conversation, placed before the first turn"
            )
        turns.append((question, gpt["value"]))
    return tuple(turns)


def _from_llava_record(record: Any, root: Path, where: str) -> Conversation:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
    keys = [k for k in ("image", "video") if k in record]
    if len(keys) != 1 or not isinstance(record[keys[0]], str):
        raise DatasetError(
            f"{where}: each conversation needs exactly one 'image' or 'video' path (a string)"
        )
    relative = Path(record[keys[0]])
    if relative.is_absolute() or ".." in relative.parts:
        raise DatasetError(
            f"{where}: media path {relative} must be relative to the media root and stay in it"
        )
    media = root / relative
    if not media.exists():
        raise DatasetError(f"{where}: media {media} does not exist; check media_root")
    turns = _turns_from_llava(record.get("conversations"), where)
    return Conversation(media, None, turns, where)


def _read_jsonl(path: Path, root: Path) -> Iterator[Conversation]:
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                record = _json.loads(line, where, error=DatasetError, fix=": fix or remove it")
                yield _from_llava_record(record, root, where)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc})") from None


def _read_dataset_file(path: Path, root: Path) -> Iterator[Conversation]:
    from instit.dataset.schema import VideoRecord, read_records
    from instit.dataset.to_llava import image_to_llava, video_to_llava

    for index, record in enumerate(read_records(path)):
        item = video_to_llava(record) if isinstance(record, VideoRecord) else image_to_llava(record)
        if item is not None:
            yield _from_llava_record(item, root, f"{path} record {index}")


def _from_item(item: Any, index: int) -> Conversation:
    where = f"data item {index}"
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise InstitTypeError(
            f"{where}: expected (media, instances_or_tracks, [(question, answer), ...]), got "
            f"{type(item).__name__}"
        )
    media, instances, pairs = item
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise InstitValueError(f"{where}: give at least one (question, answer) pair")
    turns = []
    for pair in pairs:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(text, str) and text.strip() for text in pair)
        ):
            raise InstitValueError(
                f"{where}: every turn must be a (question, answer) pair of non-empty strings, "
                f"got {pair!r}"
            )
        turns.append((pair[0], pair[1]))
    return Conversation(media, instances, tuple(turns), where)


def read_conversations(
    data: Any, *, media_root: str | os.PathLike[str] | None = None
) -> list[Conversation]:
    """Every conversation of ``data`` (see the module docs for what ``data`` may be).

    ``data`` may also be a list of files. ``media_root`` is the folder that media paths in the
    files are relative to (default: each file's own folder).

    Raises:
        DatasetError: a file that is missing, damaged or not in one of the formats.
        InstitTypeError / InstitValueError: an item of the wrong shape.
        InstitValueError: no conversation at all.
    """
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    conversations: list[Conversation] = []
    if (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(d, (str, os.PathLike)) for d in data)
    ):
        for file in map(Path, data):
            if not file.is_file():
                raise DatasetError(
                    f"training data {file} does not exist; pass an Inst-It Dataset .json, a "
                    "LLaVA .jsonl or a list of (media, instances, [(question, answer)]) items"
                )
            root = Path(media_root) if media_root is not None else file.parent
            reader = _read_jsonl if file.suffix.lower() == ".jsonl" else _read_dataset_file
            conversations.extend(reader(file, root))
    elif isinstance(data, Iterable) and not isinstance(data, (bytes, dict)):
        conversations.extend(_from_item(item, i) for i, item in enumerate(data))
    else:
        raise InstitTypeError(
            f"data must be a file path, a list of files or an iterable of items, got "
            f"{type(data).__name__}"
        )
    if not conversations:
        raise InstitValueError(
            "the training data holds no conversation; check the file or pass at least one item"
        )
    return conversations


def fingerprint(conversations: Sequence[Conversation]) -> str:
    """A SHA-256 over the conversations' turns, instances and media identity.

    Files are identified by path, size and modification time; in-memory images and frames by
    their pixels.  Equal fingerprints mean the same training data for resuming.
    """
    digest = hashlib.sha256()
    for conversation in conversations:
        digest.update(json.dumps(conversation.turns).encode())
        digest.update(_media_identity(conversation.media))
        if conversation.instances is not None:
            to_json = getattr(conversation.instances, "to_json", None)
            text = to_json() if callable(to_json) else repr(conversation.instances)
            digest.update(text.encode())
    return digest.hexdigest()


def _media_identity(media: Any) -> bytes:
    import numpy as np

    if isinstance(media, (str, os.PathLike)):
        path = Path(media)
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    from instit.video import Video

    if isinstance(media, Video):
        return b"".join(_media_identity(frame) for frame in media.frames)
    if isinstance(media, (list, tuple)):
        return b"".join(_media_identity(frame) for frame in media)
    tobytes = getattr(media, "tobytes", None)
    if callable(tobytes):
        return hashlib.sha256(np.asarray(media).tobytes()).digest()
    return repr(media).encode()
