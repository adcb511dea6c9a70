"""Inst-It Bench data: load the four configurations from disk or the hub, extract videos safely.

On-disk layout (the dataset repository ``Inst-IT/Inst-It-Bench`` as downloaded)::

    ROOT/
      image_multi_choice/test-*.parquet      question_id, question, choice_a..d, answer, image
      image_open_ended/test-*.parquet        question_id, question, answer, image
      video_multi_choice/test-*.parquet      question_id, question, choice_a..d, answer, video_path
      video_open_ended/test-*.parquet        question_id, question, answer, video_path
      videos_vpt.zip                         folders of pre-marked frames named by video_path

``ROOT`` is a local copy, or the snapshot folder of a hub cache (what ``huggingface_hub`` and
``datasets`` download), read offline with ``offline=True``; instit never writes into a cache
snapshot.  Parquet needs ``pyarrow`` (``pip install instit[bench]``).  A config folder may
instead hold ``*.jsonl`` / ``*.json`` rows with the same fields, where ``image`` is a file path
relative to the config folder: that is what :func:`instit.bench.synthetic.make_tiny_bench`
writes.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from instit import _json
from instit._files import inside, looks_like_local_path, missing_path, output_lock
from instit.bench.protocol import BENCH_REPO_ID, CONFIGS, Format, Split, compose_prompt
from instit.errors import DatasetError, DependencyError, MediaError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_ARCHIVE = "videos_vpt.zip"
_EXTRACTED_MARKER = ".instit-extracted-{name}"

#: Largest total an archive may inflate to (``INSTIT_ZIP_MAX_BYTES`` overrides, in bytes).
ZIP_MAX_BYTES = 64 * 1024**3
#: Largest inflation ratio of one member over 1 MiB (``INSTIT_ZIP_MAX_RATIO`` overrides).
#: Pre-marked JPEG/PNG frames barely compress; a zip bomb inflates 1000x and more.
ZIP_MAX_RATIO = 100.0
_RATIO_FLOOR = 1 << 20  # small members (text, tiny PNGs) may compress well; they are harmless


@dataclass(frozen=True)
class BenchQuestion:
    """One benchmark question with its (lazily loaded) pre-marked media."""

    question_id: str | int
    question: str
    answer: str
    split: Split
    fmt: Format
    choices: tuple[str, str, str, str] | None = None
    image_bytes: bytes | None = field(default=None, repr=False)
    image_path: Path | None = None
    video_dir: Path | None = None

    def prompt(self, *, media_token: bool = False) -> str:
        """The exact benchmark input text (see :func:`instit.bench.protocol.compose_prompt`)."""
        return compose_prompt(
            self.split, self.fmt, self.question, self.choices, media_token=media_token
        )

    def load_media(self) -> Image.Image | list[Image.Image]:
        """The pre-marked image, or every frame of the video folder in sorted name order."""
        if self.split == "image":
            source: Any = (
                io.BytesIO(self.image_bytes) if self.image_bytes is not None else self.image_path
            )
            return _open_rgb(source, f"image of question {self.question_id!r}")
        assert self.video_dir is not None
        frames = video_frame_files(self.video_dir)
        if not frames:
            raise MediaError(
                f"video folder {self.video_dir} of question {self.question_id!r} has no image "
                "files: re-extract videos_vpt.zip or point videos_dir at the extracted frames"
            )
        return [_open_rgb(path, f"frame {path}") for path in frames]

    def to_dict(self) -> dict[str, Any]:
        """The question's fields (media as paths; image bytes are left out)."""
        return {
            "question_id": self.question_id,
            "question": self.question,
            "answer": self.answer,
            "split": self.split,
            "format": self.fmt,
            "choices": list(self.choices) if self.choices else None,
            "image_path": str(self.image_path) if self.image_path else None,
            "video_dir": str(self.video_dir) if self.video_dir else None,
        }


@dataclass(frozen=True)
class BenchSplit(Sequence[BenchQuestion]):
    """The questions of one configuration (e.g. ``video_open_ended``) in file order."""

    config: str
    questions: tuple[BenchQuestion, ...]
    root: Path

    @property
    def split(self) -> Split:
        """``"image"`` or ``"video"``."""
        return CONFIGS[self.config][0]

    @property
    def fmt(self) -> Format:
        """``"mc"`` (multiple choice) or ``"oe"`` (open-ended)."""
        return CONFIGS[self.config][1]

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: Any) -> Any:
        return self.questions[index]

    def __iter__(self) -> Iterator[BenchQuestion]:
        return iter(self.questions)


def video_frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of a frame folder in the order the reference reads them.

    The authors' script sorts ``os.listdir`` by plain string order; so do we (zero-padded names
    make this the natural order too).  Hidden files and non-image files are ignored.
    """
    folder = Path(folder)
    names = sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
    )
    return [folder / name for name in names]


def _open_rgb(source: Any, what: str) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    from instit.media import too_large_error

    try:
        with Image.open(source) as image:
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise too_large_error(f"the {what}", exc) from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"cannot read the {what} ({exc}): the bench copy is damaged") from exc


# -- archive extraction --------------------------------------------------------------------------


def _check_member(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    bad = (
        path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
        or stat.S_ISLNK(mode)
    )
    if bad or not name.strip("/"):
        raise DatasetError(
            f"archive {archive} has an unsafe member {info.filename!r} (absolute path, '..', "
            "drive or symlink) that would escape the target folder: refusing to extract; "
            "download the archive again from a trusted source"
        )
    return path


def _env_limit(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise DatasetError(f"{name}={text!r} is not a positive number: fix or unset it")
    return value


def _check_sizes(
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    archive: Path,
    max_bytes: float,
    max_ratio: float,
) -> None:
    """Refuse a zip bomb from the declared sizes (``zipfile`` never inflates past them)."""
    total = sum(info.file_size for info, _ in members)
    if total > max_bytes:
        raise DatasetError(
            f"archive {archive} would inflate to {total / 1024**3:.1f} GiB, over the "
            f"{max_bytes / 1024**3:.1f} GiB limit: refusing to extract; if you trust it, raise "
            "the limit with max_bytes= or INSTIT_ZIP_MAX_BYTES (bytes)"
        )
    for info, _ in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > max_ratio:
            raise DatasetError(
                f"archive {archive} member {info.filename!r} inflates {ratio:.0f}x "
                f"({info.compress_size} -> {info.file_size} bytes), over the {max_ratio:g}x "
                "limit of a zip bomb check: refusing to extract; if you trust the archive, raise "
                "the limit with max_ratio= or INSTIT_ZIP_MAX_RATIO"
            )


def safe_extract(
    archive: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    max_bytes: float | None = None,
    max_ratio: float | None = None,
) -> list[Path]:
    """Extract a zip archive into ``target`` all-or-nothing, refusing path escapes and bombs.

    Every member is checked before anything is written (no absolute paths, no ``..``, no drive
    letters, no symlinks; at most ``max_bytes`` in all, default :data:`ZIP_MAX_BYTES` or
    ``$INSTIT_ZIP_MAX_BYTES``; no member over 1 MiB inflating more than ``max_ratio`` times,
    default :data:`ZIP_MAX_RATIO` or ``$INSTIT_ZIP_MAX_RATIO``).  Files go to a temporary
    folder inside ``target`` first and are moved into place only when all of them extracted;
    on any failure nothing is left behind.  Returns the top-level paths created.
    """
    if max_bytes is None:
        max_bytes = _env_limit("INSTIT_ZIP_MAX_BYTES", ZIP_MAX_BYTES)
    if max_ratio is None:
        max_ratio = _env_limit("INSTIT_ZIP_MAX_RATIO", ZIP_MAX_RATIO)
    archive = Path(archive)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(
            f"{archive} is not a readable zip archive ({exc}): download it again"
        ) from exc
    with zf:
        members = [(info, _check_member(info, archive)) for info in zf.infolist()]
        _check_sizes(members, archive, max_bytes, max_ratio)
        tops = sorted({path.parts[0] for _, path in members})
        clashes = [top for top in tops if (target / top).exists()]
        if clashes:
            raise DatasetError(
                f"cannot extract {archive} into {target}: {clashes[0]!r} already exists there; "
                "remove it or choose another videos_dir"
            )
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
        moved: list[Path] = []
        try:
            for info, path in members:
                dest = staging.joinpath(*path.parts)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            for top in tops:
                final = target / top
                os.replace(staging / top, final)
                moved.append(final)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            for path in moved:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            raise DatasetError(
                f"extracting {archive} failed ({exc}); nothing was left in {target}: "
                "check free disk space or download the archive again"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return moved


def _is_hub_snapshot(root: Path) -> bool:
    """``root`` is ``.../datasets--<owner>--<name>/snapshots/<commit>`` of a hub cache."""
    return root.parent.name == "snapshots" and root.parent.parent.name.startswith("datasets--")


def _default_videos_dir(root: Path) -> Path:
    """Next to the archive in a writable local copy; never inside a hub cache snapshot."""
    hub = _is_hub_snapshot(root)
    if os.access(root, os.W_OK) and not hub:
        return root
    cache = Path(os.environ.get("INSTIT_CACHE", Path.home() / ".cache" / "instit"))
    return cache / "inst-it-bench" / root.name if hub else cache / "inst-it-bench"


def _ensure_videos(root: Path, video_paths: list[str], videos_dir: Path | None) -> Path:
    """The folder under which every ``video_path`` exists, extracting the archive if needed."""
    candidates = [videos_dir] if videos_dir is not None else [root, _default_videos_dir(root)]
    for base in candidates:
        if base is not None and all((base / p).is_dir() for p in video_paths):
            return base
    base = videos_dir if videos_dir is not None else _default_videos_dir(root)
    archive = root / VIDEO_ARCHIVE
    if not archive.is_file():
        missing = next(p for p in video_paths if not (base / p).is_dir())
        raise DatasetError(
            f"video folder {missing!r} is not under {base} and {archive} does not exist: "
            f"put {VIDEO_ARCHIVE} into {root} or pass videos_dir= the extracted frames"
        )
    if base.exists() and not base.is_dir():
        raise DatasetError(f"videos_dir {base} is a file: pass a folder to extract the frames to")
    marker = base / _EXTRACTED_MARKER.format(name=archive.name)
    base.mkdir(parents=True, exist_ok=True)
    # several processes may load the bench at once: the first extracts, the others wait
    with output_lock(marker, "the extracted videos", wait=True):
        if not marker.exists():
            safe_extract(archive, base)
            marker.write_text(str(archive), encoding="utf-8")
    missing = [p for p in video_paths if not (base / p).is_dir()]
    if missing:
        raise DatasetError(
            f"{len(missing)} video folders (first: {missing[0]!r}) are not in {archive}: "
            "the archive does not match the question files; download both again"
        )
    return base


# -- rows ----------------------------------------------------------------------------------------


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DependencyError(
            f"reading {path} needs pyarrow: pip install pyarrow (or install instit[bench])"
        ) from exc
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DatasetError(
            f"{path} is not a readable parquet file ({exc}): download it again"
        ) from exc


DAMAGED_LINE = ": the file is damaged; fix or remove that line"
"""What to do about a JSON Lines line that is not JSON (the end of its error message)."""


def read_text(path: Path, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped), or a :class:`DatasetError` naming
    ``what`` and the path when it is missing, a folder, unreadable, or not UTF-8 (with the bad
    byte, its offset and its line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise DatasetError(f"{what} {path} is a folder: give the file inside it") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc
        raise DatasetError(f"{what} {path!s:.200} cannot be read: {reason}") from None
    return _json.utf8(data, f"{what} {path}", error=DatasetError)


def _read_json_rows(path: Path) -> list[dict[str, Any]]:
    text = read_text(path)
    if path.suffix == ".jsonl":
        return [
            _json.loads(line, f"{path}: line {number}", error=DatasetError, fix=DAMAGED_LINE)
            for number, line in enumerate(text.split("\n"), start=1)  # not U+2028 ...
            if line.strip()
        ]
    rows = _json.loads(text, str(path), error=DatasetError, fix=": download it again")
    if not isinstance(rows, list):
        raise DatasetError(f"{path} must hold a JSON array of question objects")
    return rows


def _rows(folder: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    files = sorted(folder.glob("*.parquet"))
    reader = _read_parquet
    if not files:
        files = sorted([*folder.glob("*.jsonl"), *folder.glob("*.json")])
        reader = _read_json_rows
    if not files:
        raise DatasetError(
            f"{folder} has no *.parquet, *.jsonl or *.json question files: "
            "point the bench source at the dataset repository's folder"
        )
    for file in files:
        for index, row in enumerate(reader(file)):
            yield file, index, row


def _field(row: dict[str, Any], name: str, file: Path, index: int) -> Any:
    if not isinstance(row, dict) or row.get(name) is None:
        qid = row.get("question_id") if isinstance(row, dict) else None
        raise DatasetError(
            f"{file}: row {index} (question_id {qid!r}) lacks the field {name!r}: "
            "the file does not follow the Inst-It Bench schema"
        )
    return row[name]


def _media_path(value: Any, name: str, file: Path, index: int, qid: Any) -> PurePosixPath:
    """A relative path from an annotation, refusing one that is absolute or climbs out."""
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(
            f"{file}: row {index} (question_id {qid!r}) has an unusable {name!r} field "
            f"{value!r}: expected a relative path"
        )
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DatasetError(
            f"{file}: row {index} (question_id {qid!r}) has {name} {value!r}, which is absolute "
            "or climbs out of the bench folder: refusing to read it; bench media paths are "
            "relative to the bench"
        )
    return path


def _within(path: Path, base: Path, what: str) -> Path:
    """``path``, refusing it when a symlink leads it out of ``base``."""
    if path.exists() and not inside(path, base):
        raise DatasetError(
            f"{what} {path} is a link leading out of {base}: refusing to read it; copy the "
            "media into the bench folder"
        )
    return path


def _question(row: dict[str, Any], file: Path, index: int, config: str) -> BenchQuestion:
    split, fmt = CONFIGS[config]
    qid = _field(row, "question_id", file, index)
    choices = None
    if fmt == "mc":
        choices = tuple(str(_field(row, f"choice_{c}", file, index)) for c in "abcd")
    image_bytes = image_path = None
    video_dir = None
    if split == "image":
        image = _field(row, "image", file, index)
        if isinstance(image, dict) and image.get("bytes"):
            image_bytes = image["bytes"]
        else:
            rel = image.get("path") if isinstance(image, dict) else image
            image_path = file.parent.joinpath(*_media_path(rel, "image", file, index, qid).parts)
    else:
        video = _field(row, "video_path", file, index)
        video_dir = Path(*_media_path(video, "video_path", file, index, qid).parts)
    return BenchQuestion(
        question_id=qid,
        question=str(_field(row, "question", file, index)),
        answer=str(_field(row, "answer", file, index)),
        split=split,
        fmt=fmt,
        choices=choices,  # type: ignore[arg-type]
        image_bytes=image_bytes,
        image_path=image_path,
        video_dir=video_dir,
    )


def resolve_bench_root(
    source: str | os.PathLike[str] | None,
    configs: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> Path:
    """A local folder laid out like the dataset repository.

    ``source`` is a local folder, or ``None`` / a hub dataset id to download (only the files the
    requested configs need) with ``huggingface_hub``; ``offline=True`` uses the hub cache only.
    """
    if source is not None and Path(source).is_dir():
        return Path(source)
    repo_id = str(source) if source is not None else BENCH_REPO_ID
    if source is not None and Path(repo_id).exists():
        raise DatasetError(
            f"bench source {repo_id!r} is a file: pass the folder holding the dataset "
            "repository's files (or a hub dataset id owner/name)"
        )
    if source is not None and looks_like_local_path(repo_id):
        raise DatasetError(
            missing_path(repo_id, "bench folder")
            + " (a hub dataset id looks like 'Inst-IT/Inst-It-Bench')"
        )
    from huggingface_hub import snapshot_download

    patterns = [f"{c}/*" for c in configs]
    if any(CONFIGS[c][0] == "video" for c in configs):
        patterns.append(VIDEO_ARCHIVE)
    try:
        path = snapshot_download(
            repo_id,
            repo_type="dataset",
            allow_patterns=patterns,
            cache_dir=cache_dir,
            local_files_only=offline,
        )
    except Exception as exc:  # hub errors have many types (offline, gated, missing)
        raise DatasetError(
            f"could not get the bench {repo_id!r} from the hub ({type(exc).__name__}: {exc}): "
            "connect to the internet or pass a local copy of the dataset repository"
        ) from exc
    return Path(path)


def load_bench(
    config: str,
    source: str | os.PathLike[str] | None = None,
    *,
    videos_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool = False,
) -> BenchSplit:
    """Load one Inst-It Bench configuration.

    Args:
        config: ``image_multi_choice``, ``image_open_ended``, ``video_multi_choice`` or
            ``video_open_ended``.
        source: a local copy of the dataset repository, a hub dataset id, or ``None`` for
            ``Inst-IT/Inst-It-Bench`` from the hub (cached by ``huggingface_hub``).
        videos_dir: where the video frame folders are (or are extracted to); by default next to
            the archive when that folder is writable and not a hub cache snapshot, else
            ``$INSTIT_CACHE/inst-it-bench`` (``~/.cache/instit/inst-it-bench``; for a hub
            snapshot, a sub-folder named by its commit).
        cache_dir: hub cache folder.
        offline: use only the local hub cache.
    """
    if config not in CONFIGS:
        raise DatasetError(f"unknown bench config {config!r}: use one of {', '.join(CONFIGS)}")
    root = resolve_bench_root(source, [config], cache_dir=cache_dir, offline=offline)
    folder = root / config
    if not folder.is_dir():
        raise DatasetError(
            f"{root} has no {config}/ folder: pass the dataset repository's root folder"
        )
    questions = [_question(row, file, i, config) for file, i, row in _rows(folder)]
    # a hub cache snapshot's files link to the repository's blobs/: those stay within it
    media_root = root.parent.parent if _is_hub_snapshot(root) else root
    for q in questions:
        if q.image_path is not None:
            _within(q.image_path, media_root, f"image of question {q.question_id!r}")
    for q in questions:
        if type(q.question_id) not in (str, int):
            raise DatasetError(
                f"{folder}: question_id {q.question_id!r} is a {type(q.question_id).__name__}, "
                "not a string or an integer: the copy is damaged"
            )
    if len({type(q.question_id) for q in questions}) > 1:
        raise DatasetError(
            f"{folder}: question_ids mix strings and integers (for example "
            f"{next(q.question_id for q in questions if isinstance(q.question_id, int))!r}): "
            "the copy is damaged; the bench's ids are all of one kind"
        )
    seen: set[Any] = set()
    for q in questions:
        if q.question_id in seen:
            raise DatasetError(
                f"{folder}: question_id {q.question_id!r} appears twice: the copy is damaged"
            )
        seen.add(q.question_id)
    if CONFIGS[config][0] == "video":
        paths = sorted({str(q.video_dir) for q in questions})
        base = _ensure_videos(root, paths, Path(videos_dir) if videos_dir else None)
        questions = [
            replace(
                q,
                video_dir=_within(
                    base / str(q.video_dir), base, f"video folder of question {q.question_id!r}"
                ),
            )
            for q in questions
        ]
    return BenchSplit(config=config, questions=tuple(questions), root=root)
