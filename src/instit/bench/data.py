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

import contextlib
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from instit.bench.protocol import BENCH_REPO_ID, CONFIGS, Format, Split, compose_prompt
from instit.errors import DatasetError, DependencyError, MediaError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_ARCHIVE = "videos_vpt.zip"
_EXTRACTED_MARKER = ".instit-extracted-{name}"


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


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract a zip archive into ``target`` all-or-nothing, refusing path escapes.

    Every member is checked before anything is written (no absolute paths, no ``..``, no drive
    letters, no symlinks).  Files go to a temporary folder inside ``target`` first and are moved
    into place only when all of them extracted; on any failure nothing is left behind.
    Returns the top-level paths created.
    """
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (POSIX ``flock``; no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: processes there are launched one per GPU on one host anyway
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    marker = base / _EXTRACTED_MARKER.format(name=archive.name)
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base / ".instit-extract.lock"):  # several processes may load the bench at once
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
    return pq.read_table(path).to_pylist()


def _read_json_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}): download it again") from exc
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
            if not isinstance(rel, str):
                raise DatasetError(
                    f"{file}: row {index} (question_id {qid!r}) has an unusable 'image' field: "
                    "expected {'bytes': ..., 'path': ...} or a file path"
                )
            image_path = file.parent / rel
    else:
        video_dir = Path(str(_field(row, "video_path", file, index)))
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
    looks_like_id = repo_id.count("/") == 1 and not repo_id.startswith((".", "/", "~"))
    if source is not None and (Path(repo_id).exists() or not looks_like_id):
        raise DatasetError(
            f"bench source {repo_id!r} is neither a folder nor a hub dataset id (owner/name): "
            "pass the folder holding the dataset repository's files"
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
        questions = [replace(q, video_dir=base / str(q.video_dir)) for q in questions]
    return BenchSplit(config=config, questions=tuple(questions), root=root)
