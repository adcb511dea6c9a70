"""The one check of the generation settings that ``InstIt.generate``/``stream`` and the tasks take.

Every entry point refuses the same bad value with the same error: a value of the wrong type is an
:class:`~instit.errors.InstitTypeError`, a value out of range an
:class:`~instit.errors.InstitValueError`, and the message names the setting as ``name=value``
(which the CLI rewrites as its flag).
"""

from __future__ import annotations

from instit.errors import InstitTypeError, InstitValueError

__all__ = ["check_generation"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_generation(max_new_tokens: object, temperature: object, top_p: object = None) -> None:
    """Refuse generation settings before any work is done.

    Args:
        max_new_tokens: a positive int.
        temperature: a number ``>= 0`` (0 is greedy decoding, the reference's setting).
        top_p: ``None`` or a number in ``(0, 1]`` (used when sampling).

    Raises:
        InstitTypeError: a setting is not a number (``max_new_tokens`` not an int).
        InstitValueError: ``max_new_tokens < 1``, ``temperature < 0`` (or NaN), or ``top_p``
            outside ``(0, 1]``.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise InstitTypeError(
            f"max_new_tokens={max_new_tokens!r} is not an int; pass a whole number of tokens, "
            "e.g. max_new_tokens=128"
        )
    if max_new_tokens < 1:
        raise InstitValueError(
            f"max_new_tokens={max_new_tokens}; pass a positive number, e.g. max_new_tokens=128"
        )
    if not _is_number(temperature):
        raise InstitTypeError(
            f"temperature={temperature!r} is not a number; pass 0 (greedy) or more, e.g. 0.7"
        )
    if not temperature >= 0:  # type: ignore[operator]  # NaN fails too
        raise InstitValueError(
            f"temperature={temperature}; pass 0 (greedy) or more, e.g. temperature=0.7"
        )
    if top_p is None:
        return
    if not _is_number(top_p):
        raise InstitTypeError(f"top_p={top_p!r} is not a number; pass one in (0, 1], e.g. 0.9")
    if not 0 < top_p <= 1:  # type: ignore[operator]
        raise InstitValueError(f"top_p={top_p}; pass a number in (0, 1], e.g. top_p=0.9")
