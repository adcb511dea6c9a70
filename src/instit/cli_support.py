"""What every ``instit`` verb shares: exit codes, help layout, error reporting.

Used by :mod:`instit.cli` and the verbs that live with their feature (:mod:`instit.bench.cli`,
:mod:`instit.dataset.cli`).  Standard library only, so ``instit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from instit.errors import InstitError, InstitTypeError, InstitValueError

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


def run_verb(args: argparse.Namespace, name: str) -> int:
    """Run the verb's handler; package errors become one line on stderr and an exit code.

    Bad usage or input (:class:`InstitValueError`, :class:`InstitTypeError`) exits 2, any other
    package error 1, Ctrl-C 130; anything else is a bug and keeps its traceback.  The handler
    finds a :class:`contextlib.ExitStack` in ``args.exit_stack`` for what it holds until it
    returns (output locks).
    """
    try:
        with contextlib.ExitStack() as stack:
            args.exit_stack = stack
            return int(args.handler(args))
    except (InstitValueError, InstitTypeError) as exc:
        print(f"instit {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InstitError as exc:
        print(f"instit {name}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"instit {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
