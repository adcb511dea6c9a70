"""Convert the Inst-It Dataset to LLaVA-style SFT conversations (JSON Lines).

Following the paper's instruction-tuning data (arXiv 2412.03565, section 3.4), every video
becomes one multi-turn conversation:

1. for each frame ``<t>`` (in timestamp order): one turn describing every marked instance of
   that frame and one turn describing the whole frame;
2. for each frame after the first: one turn on what changed since the previous frame;
3. one turn with the video-level caption;
4. the open-ended question-answer pairs, one turn each.

An image is a single-frame video: one instance turn and one holistic turn.  Instances are
referred to as ``[ID]`` and frames as ``<t>`` (1-based timestamps), as in the annotations.
The human prompts are the constants below; ``<image>`` opens the first human turn (LLaVA's
placeholder for the image or the video's frames).  Output lines look like::

    {"id": "inst_it_video_17", "video": "videos/17", "conversations": [
        {"from": "human", "value": "<image>\\nDescribe each marked instance at <1> ..."},
        {"from": "gpt", "value": "[1]: a man in a red jacket ...\\n[2]: ..."}, ...]}
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instit._files import check_not_an_input, output_lock
from instit.dataset.schema import (
    ImageRecord,
    JsonArrayReader,
    Kind,
    VideoRecord,
    detect_kind,
    read_records,
)
from instit.errors import DatasetError, InstitValueError

MEDIA_TOKEN = "<image>"

#: Human prompts, by turn type.  ``{t}`` / ``{prev}`` are 1-based frame timestamps.
PROMPT_IMAGE_INSTANCES = (
    "Describe each marked instance in the image. Refer to every instance by its ID as [ID]."
)
PROMPT_IMAGE_HOLISTIC = (
    "Describe the whole image in detail. Refer to the marked instances by their IDs as [ID]."
)
PROMPT_FRAME_INSTANCES = (
    "Describe each marked instance at <{t}>. Refer to every instance by its ID as [ID]."
)
PROMPT_FRAME_HOLISTIC = (
    "Describe the whole frame at <{t}> in detail. Refer to the marked instances as [ID]."
)
PROMPT_TEMPORAL_CHANGE = (
    "What changed from <{prev}> to <{t}>? Refer to instances as [ID] and to frames as <t>."
)
PROMPT_VIDEO = (
    "Describe the whole video in detail. Refer to instances as [ID] and to frames or time "
    "spans as <t> or <start>-<end>."
)

#: Turn types that :func:`video_to_llava` / :func:`image_to_llava` can include.
TURN_TYPES = ("instance", "holistic", "temporal", "video", "qa")

# JSON leaves these unescaped with ensure_ascii=False, but str.splitlines() (and other readers
# that follow Unicode) break lines at them: escaped, one conversation stays one line for all.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _instances_text(captions: dict[str, str], ids: list[str]) -> str:
    return "\n".join(f"[{iid}]: {captions[iid]}" for iid in ids)


def _conversation(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    messages = []
    for i, (question, answer) in enumerate(turns):
        human = f"{MEDIA_TOKEN}\n{question}" if i == 0 else question
        messages.append({"from": "human", "value": human})
        messages.append({"from": "gpt", "value": answer})
    return messages


def _check_include(include: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(include)
    unknown = chosen - set(TURN_TYPES)
    if unknown or not chosen:
        raise InstitValueError(
            f"include={sorted(chosen)} is invalid: choose one or more of {', '.join(TURN_TYPES)}"
        )
    return chosen


def video_to_llava(
    record: VideoRecord, *, include: Iterable[str] = TURN_TYPES
) -> dict[str, Any] | None:
    """One LLaVA conversation for a video (``None`` when the chosen turns are all empty)."""
    chosen = _check_include(include)
    turns: list[tuple[str, str]] = []
    frames = record.frame_level_caption
    for n, frame in enumerate(frames):
        t = frame.timestamp
        if "instance" in chosen and frame.instance_level:
            turns.append(
                (
                    PROMPT_FRAME_INSTANCES.format(t=t),
                    _instances_text(frame.instance_level, frame.instance_ids),
                )
            )
        if "holistic" in chosen and frame.image_level.strip():
            turns.append((PROMPT_FRAME_HOLISTIC.format(t=t), frame.image_level))
        if "temporal" in chosen and n > 0 and (frame.temporal_change or "").strip():
            prev = frames[n - 1].timestamp
            turns.append(
                (PROMPT_TEMPORAL_CHANGE.format(prev=prev, t=t), frame.temporal_change or "")
            )
    if "video" in chosen and record.video_level_caption.strip():
        turns.append((PROMPT_VIDEO, record.video_level_caption))
    if "qa" in chosen:
        turns.extend((pair.question, pair.answer) for pair in record.question_answer_pairs)
    if not turns:
        return None
    return {
        "id": f"inst_it_video_{record.video_id}",
        "video": record.video_path,
        "conversations": _conversation(turns),
    }


def image_to_llava(
    record: ImageRecord, *, include: Iterable[str] = TURN_TYPES
) -> dict[str, Any] | None:
    """One LLaVA conversation for an image (``None`` when the chosen turns are all empty)."""
    chosen = _check_include(include)
    turns: list[tuple[str, str]] = []
    if "instance" in chosen and record.instance_level_caption:
        turns.append(
            (
                PROMPT_IMAGE_INSTANCES,
                _instances_text(record.instance_level_caption, record.instance_ids),
            )
        )
    if "holistic" in chosen and record.image_level_caption.strip():
        turns.append((PROMPT_IMAGE_HOLISTIC, record.image_level_caption))
    if not turns:
        return None
    return {
        "id": f"inst_it_image_{record.image_id}",
        "image": record.image_path,
        "conversations": _conversation(turns),
    }


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_to_llava` wrote."""

    source: str
    output: str
    kind: str
    records: int
    conversations: int
    turns: int
    skipped: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def convert_to_llava(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    include: Iterable[str] = TURN_TYPES,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionResult:
    """Stream an Inst-It Dataset file into a LLaVA-format JSONL file, one conversation a line.

    Args:
        source: ``inst_it_dataset_video_21k.json`` or ``inst_it_dataset_image_51k.json``.
        output: the ``.jsonl`` file to write (written to a temporary name, renamed at the end;
            never the source, and locked against a second conversion into it meanwhile).
        kind: ``"video"`` / ``"image"``; detected from the first record when ``None``.
        include: turn types to keep (see :data:`TURN_TYPES`).
        limit: convert only the first ``limit`` records.
        overwrite: replace an existing ``output``.
        progress: tqdm bar over the bytes of ``source``.
    """
    from tqdm.auto import tqdm

    source = Path(source)
    output = Path(output)
    chosen = _check_include(include)
    if limit is not None and limit < 0:
        raise InstitValueError(f"limit must be >= 0, got {limit}")
    if not source.is_file():
        raise DatasetError(f"dataset file {source} does not exist: check the path")
    check_not_an_input(output, [source], "output")
    if output.is_dir():
        raise InstitValueError(f"output {output} is a folder: pass the .jsonl file to write")
    if output.exists() and not overwrite:
        raise InstitValueError(f"{output} exists: choose another output or pass overwrite=True")
    kind = kind or detect_kind(source)
    reader = JsonArrayReader(source)
    records_in = read_records(source, kind, reader=reader)  # checks kind before writing
    output.parent.mkdir(parents=True, exist_ok=True)
    records = conversations = turns = skipped = 0
    with output_lock(output, "the conversion output"):
        handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        tmp = Path(name)  # a new file: never the source, nor another run's
        try:
            with (
                open(handle, "w", encoding="utf-8") as out,
                tqdm(
                    total=source.stat().st_size,
                    unit="B",
                    unit_scale=True,
                    desc=f"to-llava {source.name}",
                    disable=not progress,
                ) as bar,
            ):
                for record in itertools.islice(records_in, limit):
                    records += 1
                    if isinstance(record, VideoRecord):
                        item = video_to_llava(record, include=chosen)
                    else:
                        item = image_to_llava(record, include=chosen)
                    if item is None:
                        skipped += 1
                    else:
                        conversations += 1
                        turns += len(item["conversations"]) // 2
                        try:
                            out.write(
                                json.dumps(item, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"
                            )
                        except UnicodeEncodeError as exc:
                            raise DatasetError(
                                f"{source}: record {records - 1} holds text that is not valid "
                                f"Unicode ({exc.object[exc.start : exc.end]!r}, a lone "
                                "surrogate escape such as \\ud800 in the JSON): fix or drop "
                                "that record"
                            ) from exc
                    bar.update(reader.bytes_read - bar.n)
            os.replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
    return ConversionResult(str(source), str(output), kind, records, conversations, turns, skipped)
