"""What every ``instit`` verb shares: exit codes, help layout, error reporting.

Used by :mod:`instit.cli` and the verbs that live with their feature (:mod:`instit.bench.cli`,
:mod:`instit.dataset.cli`).  Standard library only, so ``instit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

from instit.errors import CheckpointError, InstitError, InstitTypeError, InstitValueError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """Help text keeps the examples' line breaks."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number >= 1 (else a usage error naming the option)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def _one_line_warnings(prefix: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``<prefix>: warning: <message>``."""

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"{prefix}: warning: {message}", file=sys.stderr)

    return show


def run_verb(args: argparse.Namespace, name: str) -> int:
    """Run the verb's handler; package errors become one line on stderr and an exit code.

    Bad usage or input (:class:`InstitValueError`, :class:`InstitTypeError`) exits 2, any other
    package error 1, Ctrl-C 130; anything else is a bug and keeps its traceback.  Warnings are
    printed as one line each.  The handler finds a :class:`contextlib.ExitStack` in
    ``args.exit_stack`` for what it holds until it returns (output locks).
    """

    def handle() -> int:
        with contextlib.ExitStack() as stack:
            args.exit_stack = stack
            return int(args.handler(args))

    return report_errors(f"instit {name}", handle)


def run_script(main: Callable[[], object], name: str, *, checkpoint_hint: str = "") -> int:
    """Run an example script's ``main`` the way the ``instit`` verbs run: its package errors
    end as one line (``<name>: error: ...``) and exit code 2 or 1 instead of a traceback.

    ``checkpoint_hint`` is added to a :class:`CheckpointError` (say which option takes a local
    checkpoint folder, e.g. ``"pass --model PATH for a local checkpoint folder"``).
    """

    def handle() -> int:
        main()
        return EXIT_OK

    return report_errors(name, handle, checkpoint_hint=checkpoint_hint)


def report_errors(prefix: str, run: Callable[[], int], *, checkpoint_hint: str = "") -> int:
    """``run()``, with instit's errors printed as one line after ``prefix`` and turned into
    exit codes (2 bad usage or input, 1 any other failure, 130 Ctrl-C), warnings as one line
    each; anything else is a bug and keeps its traceback."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(prefix)
            return run()
    except (InstitValueError, InstitTypeError) as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InstitError as exc:
        hint = checkpoint_hint if isinstance(exc, CheckpointError) else ""
        hint = f"; {hint}" if hint else ""
        print(f"{prefix}: failed: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
