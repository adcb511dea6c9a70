"""JSON as instit reads it: one decoder for every file, line and string a user hands over.

Standard library only.  :func:`loads` is :func:`json.loads` with every way it can fail turned
into one typed error that names where the text came from: bad JSON, garbage after the value
(``[1]]``), nesting deeper than Python's recursion limit, integers of more digits than
:func:`sys.get_int_max_str_digits` allows (4300 by default), and bytes that are not UTF-8 (with
the line, the byte and its offset).  The caller picks the error class (``DatasetError`` for
benchmark and dataset files, ``InstancesError`` for instances, ``InstitValueError`` for a CLI
argument) and the ``where`` text; :func:`utf8` is the UTF-8 part alone, for files that are not
JSON.  ``NaN`` and ``Infinity`` decode as :func:`json.loads` decodes them: the readers that
need finite numbers check their fields.
"""

from __future__ import annotations

import json
from typing import Any


def utf8(data: bytes | bytearray, where: str, *, error: type[Exception]) -> str:
    """``data`` as UTF-8 text (a leading BOM dropped), else ``error`` naming ``where``, the
    line, the bad byte and its offset."""
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{where}: {_bad_byte(data, exc)}; the file is damaged or in another encoding: "
            "save it as UTF-8"
        ) from None


def loads(
    text: str | bytes | bytearray, where: str, *, error: type[Exception], fix: str = ""
) -> Any:
    """The value of the JSON ``text`` (bytes must be UTF-8), else ``error`` with the message
    ``"{where} is not valid JSON ({reason}){fix}"`` (``fix`` says what to do, e.g.
    ``": download it again"``)."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise error(f"{where} is not valid JSON ({_bad_byte(text, exc)}){fix}") from None
    try:
        return json.loads(text)
    except RecursionError:
        reason = "nested too deeply to be read"
    except ValueError as exc:  # JSONDecodeError, or an integer over the digit limit
        reason = str(exc).split(";")[0]  # the digit limit's advice to raise it is not for users
    raise error(f"{where} is not valid JSON ({reason}){fix}") from None


def _bad_byte(data: bytes | bytearray, exc: UnicodeDecodeError) -> str:
    line = data.count(b"\n", 0, exc.start) + 1
    return f"line {line} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
