"""Paths and files every writer and reader shares: containment, output checks, locks, swaps.

Standard library only (the CLI checks outputs with it before any heavy import).  One place for:

* :func:`inside` - does a path (after following symlinks) stay within a root folder;
* :func:`looks_like_local_path` / :func:`missing_path` - a mistyped local path is reported as
  a missing folder, not sent to the hub;
* :func:`check_output` - an output path is usable (parent exists, right kind, known suffix, not
  replaced without the caller's overwrite flag), checked before any work is done;
* :func:`check_not_an_input` - an output never replaces one of the inputs;
* :func:`output_lock` - one writer per output at a time (fails fast, never blocks on a dead one);
* :func:`replace_folder` - a folder's new contents replace the old ones as one unit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from instit.errors import InstitValueError

T = TypeVar("T")

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """``path`` resolves (symlinks followed) to ``root`` or somewhere below it."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved == base or base in resolved.parents


def looks_like_local_path(text: str) -> bool:
    """``text`` is meant as a local path rather than a hub id ``owner/name``.

    True for anything that is not shaped like a hub id (absolute, ``./x``, ``~/x``, ``a/b/c``,
    backslashes) and for ``a/b`` whose first part exists here (``ck/typo`` next to ``ck/``).
    """
    if not _HUB_ID.fullmatch(text) or text.startswith("."):
        return True
    return Path(text.split("/", 1)[0]).exists()


def missing_path(path: str | os.PathLike[str], what: str) -> str:
    """A message saying that ``path`` does not exist and which part of it does."""
    full = Path(path).expanduser().absolute()
    existing = next(p for p in full.parents if p.exists())  # the root always exists
    part = full.relative_to(existing).parts[0]
    return f"{what} {str(path)!r} does not exist: {existing} has no {part!r}; check the path"


def check_output(
    path: str | os.PathLike[str],
    *,
    kind: Literal["file", "folder"],
    overwrite: bool,
    flag: str,
    suffixes: Sequence[str] = (),
    what: str = "output",
) -> Path:
    """Refuse an output path that cannot or must not be written; return it as a ``Path``.

    A ``"file"`` needs an existing parent folder, must not be a folder, must end in one of
    ``suffixes`` (when given) and must not exist unless ``overwrite``.  A ``"folder"`` must not
    be a file (nor lie below one) and must be empty unless ``overwrite``; missing folders are
    created by the writer.  ``flag`` is how the caller spells overwriting (``"--overwrite"`` on
    the command line, ``"overwrite=True"`` in Python), so the message names what to type.
    """
    path = Path(path).expanduser()
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InstitValueError(f"{what} {path}: {blocker} is a file, not a folder")
    if kind == "file":
        if path.is_dir():
            raise InstitValueError(f"{what} {path} is a folder: pass a file path")
        if not path.parent.is_dir():
            raise InstitValueError(
                f"{what} {path}: folder {path.parent} does not exist; create it first"
            )
        if suffixes and path.suffix.lower() not in suffixes:
            raise InstitValueError(
                f"{what} {path} has an unknown extension {path.suffix!r}: use one of "
                + ", ".join(suffixes)
            )
        if path.exists() and not overwrite:
            raise InstitValueError(f"{what} {path} exists: choose another path or pass {flag}")
        return path
    if path.exists() and not path.is_dir():
        raise InstitValueError(f"{what} {path} is a file: pass a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InstitValueError(
            f"{what} {path} exists and is not empty: choose another folder or pass {flag}"
        )
    return path


def require_new_folder(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a ``Path`` when it does not exist or is an empty folder, else an error: for
    writers that fill a whole folder and must never write into someone's data."""
    path = Path(path).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InstitValueError(
            f"{path} exists and is not empty: {what} writes only into a new or empty folder"
        )
    return path


def check_not_an_input(
    output: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str] | None], what: str
) -> None:
    """Refuse an ``output`` that is one of ``inputs`` or a folder holding one of them (paths
    resolved, so ``./a``, ``a``, symbolic and hard links to ``a`` are the same): writing it
    would destroy the input."""
    for source in inputs:
        if source is None or not Path(source).exists():
            continue
        if inside(source, output) or (Path(output).exists() and Path(output).samefile(source)):
            raise InstitValueError(
                f"{what} {output} would replace the input {source}: write somewhere else"
            )


def _lock_file(target: Path) -> Path:
    return target.parent / f".{target.name}.instit-lock"


@contextlib.contextmanager
def output_lock(
    target: str | os.PathLike[str], what: str = "output", *, wait: bool = False
) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a file or folder, existing or not) while writing.

    A second writer fails at once with :class:`~instit.errors.InstitValueError` naming the
    holder's process id (or, with ``wait=True``, waits for it).  The lock is the operating
    system's (``flock`` on a sibling ``.<name>.instit-lock`` file, removed on release): a killed
    holder releases it, so a stale lock file never blocks.  Without ``fcntl`` (Windows) no lock
    is taken.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    target = Path(target)
    lock = _lock_file(target)
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # read-only or special file systems, permissions
            raise InstitValueError(
                f"cannot write {what} {target}: {exc.strerror or exc} ({lock.parent}); choose a "
                "folder you can write to"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise InstitValueError(
                f"another instit process (pid {holder}) is writing {what} {target}; wait for "
                "it to finish or write somewhere else"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # the holder removed this file as it released it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)  # releases the flock


def replace_folder(target: str | os.PathLike[str], write: Callable[[Path], T]) -> T:
    """Fill a new folder with ``write(folder)`` and put it in place of ``target`` as one unit.

    ``write`` fills a temporary sibling; only when it returns is the old ``target`` (if any)
    moved aside, the new folder renamed to ``target`` and the old one deleted.  If ``write``
    fails, ``target`` is untouched.  Returns what ``write`` returned, with paths under the
    temporary folder rewritten to ``target`` when it returns a list of path strings.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        result = write(staging)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        try:
            os.replace(staging, target)
        except OSError:
            if old is not None:
                os.replace(old / target.name, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
