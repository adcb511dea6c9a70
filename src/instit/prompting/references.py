"""Find and write the Inst-It reference conventions: ``[ID]`` for instances, ``<t>`` for frames.

The Inst-It models were trained to name object instances by the number drawn on them, in square
brackets (``[3]``, several as ``[3] [4] [5]``), and video frames by their 1-based position in
angle brackets (``<5>``, an interval as ``<5>-<7>``).  Models (and people) drift from that format,
so :func:`find_references` accepts the common variants and ignores look-alikes:

=================================  ======================================================
text                               parsed as
=================================  ======================================================
``[3]``, ``[ 3 ]``                 instance 3
``[3] [4]``, ``[3][4]``            one reference to instances 3 and 4 (adjacent brackets)
``[3, 4]``, ``[3,4]``, ``[3; 4]``  one reference to instances 3 and 4
``<5>``                            frame 5
``<5>-<7>``, ``<5> - <7>``,        frames 5 to 7 (also en/em dashes)
``<5> to <7>``
``<7>-<5>``                        two single-frame references (a backwards range is not
                                   an interval)
``[a]``, ``[^1]``, ``[1](url)``,   nothing: markdown links and footnotes, ranges inside
``[1-3]``, ``[0]``, ``<0>``         brackets, and non-positive numbers are not references
``Instance 3``, ``frame 5``        nothing: bare numbers are too ambiguous to be IDs
=================================  ======================================================

"between ``<5>`` and ``<6>``" gives two single-frame references: the model uses the phrase for a
change *across* two frames, not for an interval.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from instit.errors import InstitTypeError, InstitValueError

__all__ = [
    "Reference",
    "find_references",
    "format_frame",
    "format_frame_range",
    "format_ids",
    "frame_numbers",
    "instance_ids",
]

# One bracketed group: "[3]", "[ 3 ]", "[3, 4]", "[3,4]", "[3; 4]".  Not "[^1]", "[a]", "[1-3]".
_BRACKET = r"\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]"
# Adjacent groups ("[3] [4]", "[3][4]") form one reference; a "(" right after the last group makes
# it a markdown link, which is not a reference.
_INSTANCE_RE = re.compile(rf"{_BRACKET}(?:[ \t]*{_BRACKET})*(?!\()")
_FRAME_RE = re.compile(r"<\s*(?P<start>\d+)\s*>(?:\s*(?:-|–|—|\bto\b)\s*<\s*(?P<end>\d+)\s*>)?")
_NUMBER_RE = re.compile(r"\d+")


@dataclass(frozen=True)
class Reference:
    """One mention of instances or frames in a text.

    Attributes:
        kind: ``"instance"`` (``[3]``, ``[3] [4]``) or ``"frame"`` (``<5>``, ``<5>-<7>``).
        start: Offset of the first character of the mention in the text.
        end: Offset just past the mention (``text[start:end]`` is the mention).
        text: The mention as written.
        ids: Instance IDs, in the order written (instance references only).
        frames: ``(first, last)`` 1-based frame numbers, equal for a single frame (frame
            references only).
        seconds: ``(first, last)`` times in seconds of those frames when the media has
            timestamps, else ``None``.
    """

    kind: Literal["instance", "frame"]
    start: int
    end: int
    text: str
    ids: tuple[int, ...] = ()
    frames: tuple[int, int] | None = None
    seconds: tuple[float, float] | None = None

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)`` offsets of the mention."""
        return (self.start, self.end)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        """Every frame the reference covers (``<5>-<7>`` -> ``(5, 6, 7)``); empty for instances."""
        if self.frames is None:
            return ()
        return tuple(range(self.frames[0], self.frames[1] + 1))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ids``/``frames``/``seconds`` only where they apply)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "span": [self.start, self.end],
            "text": self.text,
        }
        if self.kind == "instance":
            out["ids"] = list(self.ids)
        else:
            out["frames"] = list(self.frames) if self.frames else None
            out["seconds"] = list(self.seconds) if self.seconds else None
        return out


def find_references(text: str) -> list[Reference]:
    """Every instance (``[ID]``) and frame (``<t>``) reference in ``text``, in text order.

    See the module docstring for the accepted variants.  IDs and frame numbers are positive
    integers; a group that contains ``0`` is not a reference.

    Example:
        >>> [r.ids or r.frames for r in find_references("[3] [4] meet at <2>-<4>.")]
        [(3, 4), (2, 4)]
    """
    if not isinstance(text, str):
        raise InstitTypeError(
            f"find_references() needs a str, got {type(text).__name__}; pass the model's text"
        )
    found: list[Reference] = []
    for match in _INSTANCE_RE.finditer(text):
        ids = tuple(int(n) for n in _NUMBER_RE.findall(match.group(0)))
        if all(i > 0 for i in ids):
            found.append(Reference("instance", match.start(), match.end(), match.group(0), ids))
    for match in _FRAME_RE.finditer(text):
        first = int(match.group("start"))
        last_text = match.group("end")
        last = int(last_text) if last_text is not None else first
        if last_text is not None and last < first:
            # a backwards "range" is two single frames
            found.extend(_split_backwards(match))
            continue
        if first > 0 and last > 0:
            found.append(
                Reference("frame", match.start(), match.end(), match.group(0), frames=(first, last))
            )
    found.sort(key=lambda r: r.start)
    return found


def _split_backwards(match: re.Match[str]) -> list[Reference]:
    """``<7>-<5>`` -> references to frame 7 and frame 5 (each positive one)."""
    out: list[Reference] = []
    for group in ("start", "end"):
        value = int(match.group(group))
        if value <= 0:
            continue
        # the "<n>" token around the number: from the "<" before it to the ">" after it
        begin = match.string.rfind("<", match.start(), match.start(group))
        finish = match.string.find(">", match.end(group)) + 1
        out.append(
            Reference("frame", begin, finish, match.string[begin:finish], frames=(value, value))
        )
    return out


def instance_ids(references: Iterable[Reference]) -> list[int]:
    """The instance IDs mentioned, unique, in order of first mention."""
    seen: dict[int, None] = {}
    for ref in references:
        for i in ref.ids:
            seen.setdefault(i, None)
    return list(seen)


def frame_numbers(references: Iterable[Reference]) -> list[int]:
    """The frames mentioned (intervals expanded), unique, in order of first mention."""
    seen: dict[int, None] = {}
    for ref in references:
        for t in ref.frame_numbers:
            seen.setdefault(t, None)
    return list(seen)


def format_ids(ids: int | Sequence[int]) -> str:
    """Write instance IDs the way the models read them: ``3`` -> ``"[3]"``, ``[3, 4]`` ->
    ``"[3] [4]"``."""
    values = [ids] if isinstance(ids, int) else list(ids)
    for value in values:
        _check_positive(value, "instance ID")
    return " ".join(f"[{v}]" for v in values)


def format_frame(t: int) -> str:
    """Write a 1-based frame number the way the models read it: ``5`` -> ``"<5>"``."""
    _check_positive(t, "frame number")
    return f"<{t}>"


def format_frame_range(first: int, last: int) -> str:
    """Write a frame interval: ``(5, 7)`` -> ``"<5>-<7>"`` (a single frame when equal)."""
    _check_positive(first, "frame number")
    _check_positive(last, "frame number")
    if last < first:
        raise InstitValueError(
            f"frame interval <{first}>-<{last}> runs backwards; pass the earlier frame first"
        )
    return format_frame(first) if first == last else f"<{first}>-<{last}>"


def _check_positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InstitTypeError(f"a {what} must be an int, got {value!r}; pass a positive int")
    if value <= 0:
        raise InstitValueError(
            f"a {what} must be positive (they count from 1), got {value}; pass a value >= 1"
        )
