"""Run a model on Inst-It Bench: batched, resumable, sharded over processes.

Predictions are appended to ``<output>.part-<rank>.jsonl`` after every batch (flushed and
synced), so a killed run loses at most the batch in flight and resumes where it stopped.  When
every process is done, process 0 merges the parts into ``<output>`` (the reference's JSON list
of ``question_id, question, model_prediction, ground_truth, split``, sorted by question_id) and
removes them.  Under ``accelerate launch`` (or ``torchrun``) each process takes whole media
items (all the questions about one image or video, balanced by question count), so that their
questions share one prefill.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from instit import _json
from instit._files import check_output, output_lock
from instit.bench.data import DAMAGED_LINE, BenchQuestion, BenchSplit, read_text
from instit.bench.protocol import DEFAULT_MAX_NEW_TOKENS
from instit.errors import DatasetError, InstitTypeError, InstitValueError

PREDICTION_FIELDS = ("question_id", "question", "model_prediction", "ground_truth", "split")
GenerateFn = Callable[[list[Any], list[str]], list[str]]


@dataclass(frozen=True)
class RunResult:
    """What one :func:`run_bench` call did (in this process)."""

    output: str
    config: str
    num_questions: int
    num_generated: int
    num_resumed: int
    process_index: int
    num_processes: int
    merged: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


# -- model adapters ------------------------------------------------------------------------------


def as_generate_fn(
    model: Any, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0
) -> GenerateFn:
    """Turn a model into ``fn(media_list, prompt_list) -> answers``.

    An object with a batched ``generate(media, prompts, *, max_new_tokens, temperature,
    progress)`` method (an :class:`instit.InstIt`) is called once per batch; any other callable
    ``(media, prompt) -> str`` is called once per question.
    """
    generate = getattr(model, "generate", None)
    if callable(generate) and not isinstance(model, type):

        def batched(media: list[Any], prompts: list[str]) -> list[str]:
            return list(
                generate(
                    media,
                    prompts,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    progress=False,
                )
            )

        return batched
    if callable(model):
        return lambda media, prompts: [model(m, p) for m, p in zip(media, prompts, strict=True)]
    raise InstitTypeError(
        f"a bench model must be callable as model(media, prompt) -> str or have a batched "
        f".generate(media, prompts, ...) method; got {type(model).__name__}"
    )


# -- process topology ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Topology:
    index: int
    count: int
    barrier: Callable[[], None]


def _topology(shard: tuple[int, int] | None) -> _Topology:
    if shard is not None:
        index, count = shard
        if count < 1 or not 0 <= index < count:
            raise InstitValueError(
                f"shard={shard} is invalid: use (index, count) with 0 <= index < count"
            )
        return _Topology(index, count, lambda: None)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return _Topology(state.process_index, state.num_processes, state.wait_for_everyone)
    return _Topology(0, 1, lambda: None)


# -- prediction files ----------------------------------------------------------------------------


def _part_path(output: Path, index: int) -> Path:
    return output.with_name(f"{output.name}.part-{index}.jsonl")


def _part_files(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{output.name}.part-*.jsonl"))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    # split on "\n" only: answers may hold other line breaks (U+2028 ...), which JSON keeps raw
    *lines, _cut = read_text(path, "predictions part file").split(
        "\n"
    )  # _cut: a line cut by a kill, asked again
    for number, line in enumerate(lines, start=1):
        record = _json.loads(line, f"{path}: line {number}", error=DatasetError, fix=DAMAGED_LINE)
        if not isinstance(record, dict) or "question_id" not in record:
            raise DatasetError(
                f"{path}: line {number} is not a prediction record with a question_id: the "
                "file is damaged; fix or remove that line"
            )
        yield record


def _repair_tail(path: Path) -> None:
    """Drop a partial last line (left by a kill mid-write) so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


#: ``question_id`` integers must fit in 64 bits (the bench's IDs are strings like "001-01").
_MAX_INT_ID = 2**63


def check_predictions(records: object, where: str) -> list[dict[str, Any]]:
    """``records`` if they are prediction objects in the reference format, else a
    :class:`DatasetError` naming ``where``, the record and the field.

    Rules: ``question``, ``model_prediction`` and ``ground_truth`` are strings, ``split`` (when
    present) too; ``question_id`` is a string or a 64-bit integer, the same kind in every
    record, and no (``split``, ``question_id``) pair appears twice.
    """
    if not isinstance(records, list):
        raise DatasetError(
            f"{where} must hold a JSON list of prediction objects "
            "(question_id, question, model_prediction, ground_truth, split)"
        )
    seen: dict[tuple[Any, Any], int] = {}
    kind: type | None = None
    for i, record in enumerate(records):
        qid = record.get("question_id") if isinstance(record, dict) else None
        shown = (
            repr(qid[:60])
            if isinstance(qid, str)
            else repr(qid)
            if isinstance(qid, int) and -_MAX_INT_ID <= qid < _MAX_INT_ID
            else f"of type {type(qid).__name__}"
        )
        at = f"{where}: record {i} (question_id {shown})"
        for name in PREDICTION_FIELDS[:4]:
            if not isinstance(record, dict) or name not in record:
                raise DatasetError(
                    f"{at} lacks the field {name!r}: write predictions in the reference format"
                )
        for name in PREDICTION_FIELDS[1:]:
            value = record.get(name, "")
            if not isinstance(value, str):
                raise DatasetError(f"{at} has a {type(value).__name__} {name}: it must be a string")
        if isinstance(qid, bool) or not isinstance(qid, int | str):
            raise DatasetError(f"{at}: question_id must be a string or an integer")
        if isinstance(qid, int) and not -_MAX_INT_ID <= qid < _MAX_INT_ID:
            raise DatasetError(f"{at}: question_id integers must fit in 64 bits")
        if kind is not None and type(qid) is not kind:
            names = {str: "a string", int: "an integer"}
            raise DatasetError(
                f"{at}: question_id is {names[type(qid)]} but earlier ones are not: use one "
                "kind in a file (the bench uses strings)"
            )
        kind = type(qid)
        first = seen.setdefault((record.get("split"), qid), i)
        if first != i:
            raise DatasetError(
                f"{at} repeats record {first}: each question must be answered once; "
                "remove the duplicate"
            )
    return records


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a predictions JSON list (the reference format) and check it with
    :func:`check_predictions`; every problem is a :class:`DatasetError` naming the file."""
    path = Path(path)
    where = f"predictions file {path}"
    data = _json.loads(read_text(path, "predictions file"), where, error=DatasetError)
    return check_predictions(data, f"predictions file {path}")


def _done(output: Path) -> dict[Any, dict[str, Any]]:
    done: dict[Any, dict[str, Any]] = {}
    if output.exists():
        for record in read_predictions(output):
            done[record["question_id"]] = record
    for part in _part_files(output):
        for record in _read_jsonl(part):
            done.setdefault(record["question_id"], record)
    return done


def merge_predictions(output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Merge ``<output>.part-*.jsonl`` (and an existing ``<output>``) into ``<output>``.

    Duplicates (same question_id) are kept once; the list is sorted by question_id and written
    atomically; the part files are removed afterwards.  Returns the merged records.
    """
    output = Path(output)
    records = sorted(_done(output).values(), key=lambda r: r["question_id"])
    # a fresh temporary file: two shards finishing together never write into the same one
    handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with open(handle, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=4, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, output)
    finally:
        Path(name).unlink(missing_ok=True)
    for part in _part_files(output):
        part.unlink(missing_ok=True)
    return records


# -- who produced the answers ---------------------------------------------------------------------


def describe_model(model: Any) -> str:
    """A label for what answers: an :class:`instit.InstIt`'s checkpoint folder (quantization,
    LoRA adapter), or a callable's ``module:qualified name``."""
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "path"):
        quantization = getattr(model, "quantization", None)
        label = f"checkpoint {Path(spec.path).resolve()}"
        label += f" ({quantization})" if quantization else ""
        adapter = getattr(model, "adapter", None)
        return label + (f" + adapter {Path(adapter['path']).resolve()}" if adapter else "")
    module = getattr(model, "__module__", type(model).__module__)
    name = getattr(model, "__qualname__", type(model).__qualname__)
    return f"{module}:{name}"


def _producer_path(output: Path) -> Path:
    return output.with_name(f"{output.name}.producer.json")


def check_producer(
    output: str | os.PathLike[str],
    producer: dict[str, Any],
    *,
    force_resume: bool,
    flag: str = "force_resume=True",
) -> None:
    """Refuse to add ``producer``'s answers to ``output`` when another producer's are there.

    ``producer`` is what answers (the model and the settings that change answers); it is kept
    in ``<output>.producer.json``.  Answers already in ``output`` or its part files count only
    when they come from an equal producer; with ``force_resume`` they are kept anyway and the
    record lists every producer that contributed (``earlier``).  ``flag`` is how the caller
    spells ``force_resume`` in the message.
    """
    output = Path(output)
    record = _producer_path(output)
    data: dict[str, Any] = {}
    if record.exists():
        text = read_text(record, "producer record")
        data = _json.loads(text, str(record), error=DatasetError, fix=": fix or remove it")
        if not isinstance(data, dict):
            raise DatasetError(f"{record} must hold a JSON object: fix or remove it")
    previous = data.get("producer")
    if previous == producer:
        return
    has_answers = bool(_done(output))
    if has_answers and not force_resume:
        who = json.dumps(previous) if previous else "a model that was not recorded"
        raise InstitValueError(
            f"{output} (or its part files) already holds answers from {who}, not from "
            f"{json.dumps(producer)}: resuming would mix two models' answers. Write to another "
            f"output, or pass {flag} to keep those answers and add this model's"
        )
    earlier = list(data.get("earlier", []))
    if has_answers:
        earlier.append(previous)
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"producer": producer, "earlier": earlier}, indent=1) + "\n")
    os.replace(tmp, record)


def _batches(items: Sequence[BenchQuestion], size: int) -> Iterator[list[BenchQuestion]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _media_key(question: BenchQuestion) -> tuple[str, str]:
    """Which image or video a question is about: its frame folder, or its image's content."""
    if question.video_dir is not None:
        return "video", str(question.video_dir)
    if question.image_bytes is not None:
        return "image", hashlib.sha256(question.image_bytes).hexdigest()
    if question.image_path is not None and question.image_path.is_file():
        return "image", hashlib.sha256(question.image_path.read_bytes()).hexdigest()
    return "question", str(question.question_id)  # load_media reports what is missing


def by_media(questions: Sequence[BenchQuestion]) -> list[list[BenchQuestion]]:
    """The questions grouped by their image or video, groups in order of their first question.

    A resumed run groups the questions still to answer the same way, so the questions left of a
    half-answered media item still share its prefix.
    """
    groups: dict[tuple[str, str], list[BenchQuestion]] = {}
    for question in questions:
        groups.setdefault(_media_key(question), []).append(question)
    return list(groups.values())


def _shard(groups: Sequence[list[BenchQuestion]], topo: _Topology) -> list[list[BenchQuestion]]:
    """This process's media items (``groups`` from :func:`by_media`): whole items, so that the
    questions about one image or video share one prefill in one process.

    Each item, in order, goes to the process with the fewest questions so far (ties: the lowest
    index); every process computes the same assignment from the same sorted questions.
    """
    if topo.count == 1:
        return list(groups)
    loads = [0] * topo.count
    mine: list[list[BenchQuestion]] = []
    for group in groups:
        owner = min(range(topo.count), key=lambda process: (loads[process], process))
        loads[owner] += len(group)
        if owner == topo.index:
            mine.append(group)
    return mine


def _caches_prefixes(model: Any) -> bool:
    """Whether ``model`` can keep a media's prefix cache (:meth:`instit.InstIt.encode_media`)."""
    encode = getattr(model, "encode_media", None)
    return callable(encode) and "cache_prefix" in inspect.signature(encode).parameters


def _plan(
    model: Any, groups: Sequence[list[BenchQuestion]], batch_size: int
) -> Iterator[tuple[list[BenchQuestion], list[Any]]]:
    """Batches of questions with their media (``groups``: the questions of each media item).

    Each media item is loaded once and released after its last question.  A model that can
    cache prefixes gets batches that never mix media items and each item encoded with its
    prefix cache (one prefill per image or video, one prefix cache alive at a time); any other
    model gets full batches over the grouped order.
    """
    caching = _caches_prefixes(model)
    if caching:
        batches = [batch for group in groups for batch in _batches(group, batch_size)]
    else:
        batches = list(_batches([q for group in groups for q in group], batch_size))
    owner = {id(q): n for n, group in enumerate(groups) for q in group}
    left = [len(group) for group in groups]
    loaded: dict[int, Any] = {}
    for batch in batches:
        media = []
        for question in batch:
            n = owner[id(question)]
            if n not in loaded:
                loaded[n] = question.load_media()
                if caching and left[n] > 1:
                    loaded[n] = model.encode_media(loaded[n], cache_prefix=True)
            media.append(loaded[n])
        yield batch, media
        for question in batch:
            n = owner[id(question)]
            left[n] -= 1
            if not left[n]:
                del loaded[n]  # the media (and its prefix cache) is freed


def _answer_batch(
    generate: GenerateFn,
    batch: list[BenchQuestion],
    media: list[Any],
    media_token: bool,
    out: IO[str],
) -> None:
    """Answer one batch of questions and append their records to ``out``."""
    prompts = [q.prompt(media_token=media_token) for q in batch]
    answers = generate(media, prompts)
    if len(answers) != len(batch):
        raise InstitTypeError(
            f"the model returned {len(answers)} answers for {len(batch)} prompts: "
            "return one string per prompt"
        )
    for q, answer in zip(batch, answers, strict=True):
        if not isinstance(answer, str):
            raise InstitTypeError(
                f"the model returned {type(answer).__name__} for question "
                f"{q.question_id!r}: return the answer text as a str"
            )
        record = {
            "question_id": q.question_id,
            "question": q.question,
            "model_prediction": answer.strip(),
            "ground_truth": q.answer,
            "split": q.split,
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    os.fsync(out.fileno())


def run_bench(
    model: Any,
    bench: BenchSplit | Sequence[BenchQuestion],
    output: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 0.0,
    media_token: bool = False,
    shard: tuple[int, int] | None = None,
    merge: bool = True,
    progress: bool = True,
    producer: str | None = None,
    force_resume: bool = False,
) -> RunResult:
    """Answer every question of ``bench`` with ``model`` and write the predictions file.

    Args:
        model: an :class:`instit.InstIt` (batched ``generate``) or any callable
            ``(media, prompt) -> str``; media is a PIL image, or the list of the video's frames.
        bench: a :class:`BenchSplit` from :func:`instit.bench.load_bench` (or its questions).
        output: predictions JSON file; questions already answered there or in its part files
            are skipped (resume).
        batch_size: questions per ``generate`` call.
        media_token: put ``<image>\\n`` before the prompt text (for raw LLaVA-style callables).
        shard: ``(index, count)`` to run one shard by hand (no merge unless ``merge``); by
            default the topology comes from ``accelerate launch`` / ``torchrun``.
        merge: merge the part files into ``output`` once all processes are done.
        progress: show a tqdm bar with ETA.
        producer: what answers, recorded in ``<output>.producer.json`` with the settings
            that change answers; default :func:`describe_model` (the checkpoint folder, or
            the callable's ``module:name``).  Resuming answers of another producer is refused.
        force_resume: keep another producer's answers and add this one's (see
            :func:`check_producer`).

    One process at a time may write each part file: a second run into the same ``output``
    (with the same process index) fails at once.
    """
    if batch_size < 1:
        raise InstitValueError(f"batch_size must be >= 1, got {batch_size}")
    output = Path(output)
    # a file where a folder of the path should be is refused before the folders are made
    check_output(output.parent, kind="folder", overwrite=True, flag="", what="predictions folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    check_output(output, kind="file", overwrite=True, flag="", what="predictions file")
    generate = as_generate_fn(model, max_new_tokens=max_new_tokens, temperature=temperature)
    topo = _topology(shard)
    record = producer_record(
        producer or describe_model(model), max_new_tokens, temperature, media_token
    )
    with output_lock(_part_path(output, topo.index), "bench predictions"):
        check_producer(output, record, force_resume=force_resume)
        return _run(
            model, generate, bench, output, topo, batch_size, media_token, shard, merge, progress
        )


def producer_record(
    model: str, max_new_tokens: int, temperature: float, media_token: bool
) -> dict[str, Any]:
    """What :func:`check_producer` compares: the model's label and the settings that change
    its answers."""
    return {
        "model": model,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "media_token": media_token,
    }


def _run(
    model: Any,
    generate: GenerateFn,
    bench: BenchSplit | Sequence[BenchQuestion],
    output: Path,
    topo: _Topology,
    batch_size: int,
    media_token: bool,
    shard: tuple[int, int] | None,
    merge: bool,
    progress: bool,
) -> RunResult:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    questions = sorted(bench, key=lambda q: q.question_id)
    done = _done(output)
    assigned = _shard(by_media(questions), topo)  # each image file is read and hashed once
    unanswered = ([q for q in group if q.question_id not in done] for group in assigned)
    left = [group for group in unanswered if group]
    mine = [q for group in left for q in group]
    resumed = sum(len(group) for group in assigned) - len(mine)
    part = _part_path(output, topo.index)
    _repair_tail(part)
    config = getattr(bench, "config", questions[0].split if questions else "")
    bar = tqdm(
        total=len(mine),
        desc=f"{config} [{topo.index + 1}/{topo.count}]" if topo.count > 1 else config,
        disable=not progress,
        position=topo.index,
        unit="q",
    )
    with bar, open(part, "a", encoding="utf-8") as out:
        for batch, media in _plan(model, left, batch_size):
            _answer_batch(generate, batch, media, media_token, out)
            bar.update(len(batch))
            del media  # a finished media item's prefix cache goes before the next is made
    topo.barrier()  # every process has written its part
    merged = False
    if merge and topo.index == 0 and shard is None:
        merge_predictions(output)
        merged = True
    elif merge and shard is not None and {q.question_id for q in questions} <= set(_done(output)):
        merge_predictions(output)  # the last manual shard to finish merges
        merged = True
    topo.barrier()  # nobody returns before the merged file exists
    return RunResult(
        output=str(output),
        config=str(config),
        num_questions=len(questions),
        num_generated=len(mine),
        num_resumed=resumed,
        process_index=topo.index,
        num_processes=topo.count,
        merged=merged,
        seconds=round(time.perf_counter() - started, 3),
    )
