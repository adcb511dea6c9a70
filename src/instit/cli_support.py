"""What every ``instit`` verb shares: exit codes, help layout, error reporting.

Used by :mod:`instit.cli` and the verbs that live with their feature (:mod:`instit.bench.cli`,
:mod:`instit.dataset.cli`).  Standard library only, so ``instit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import re
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


_KEYWORD = r"(?<![\w.-]){}=(True|False|None|'[^']*'|\"[^\"]*\"|[^\s,;:()'\"]+)?"


def flags_for_keywords(message: str, parser: argparse.ArgumentParser | None) -> str:
    """``message`` with the Python keywords of ``parser``'s options written as its flags.

    The library names its keyword arguments (``pass overwrite=True``); on the command line the
    same advice must name the flag (``pass --overwrite``): ``overwrite=True`` becomes
    ``--overwrite``, ``quantization=None`` ``--quantization none`` (where ``none`` is a
    choice), ``num_frames=8`` ``--num-frames 8``.  Keywords without a flag stay as they are.
    """
    if parser is None:
        return message
    for action in parser._actions:
        flags = [f for f in action.option_strings if f.startswith("--")]
        if not flags or action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        flag = flags[0]
        choices = [str(c) for c in action.choices or ()]

        def as_flag(match: re.Match[str], flag: str = flag, choices: list[str] = choices) -> str:
            value = match.group(1)
            if value is None or value == "True":
                return flag
            if value == "False":
                return f"no {flag}"
            if value == "None":
                return f"{flag} none" if "none" in choices else match.group(0)
            return f"{flag} {value.strip(chr(39) + chr(34))}"

        message = re.sub(_KEYWORD.format(re.escape(action.dest)), as_flag, message)
        message = message.replace(f"{flag} ({flag})", flag)
    return message


def add_progress_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--no-progress``, the one name of this option in every verb (``--quiet``: hidden alias)."""
    parser.add_argument("--no-progress", action="store_true", help=help_text)
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def add_device_map_option(parser: argparse.ArgumentParser) -> None:
    """``--device-map``: spread an Inst-It model over several GPUs (instead of ``--device``)."""
    parser.add_argument(
        "--device-map",
        choices=["auto", "balanced", "balanced_low_0", "sequential"],
        help="spread the model over the visible GPUs (instead of --device); CPU without GPUs",
    )


def _one_line_warnings(prefix: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``<prefix>: warning: <message>``."""

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"{prefix}: warning: {message}", file=sys.stderr)

    return show


def run_verb(
    args: argparse.Namespace, name: str, parser: argparse.ArgumentParser | None = None
) -> int:
    """Run the verb's handler; package errors become one line on stderr and an exit code.

    Bad usage or input (:class:`InstitValueError`, :class:`InstitTypeError`) exits 2, any other
    package error 1, Ctrl-C 130; anything else is a bug and keeps its traceback.  Warnings are
    printed as one line each.  Advice in the message that names a keyword argument names the
    verb's flag instead (``parser``: the verb's own parser, see :func:`flags_for_keywords`).
    The handler finds a :class:`contextlib.ExitStack` in ``args.exit_stack`` for what it holds
    until it returns (output locks).
    """

    def handle() -> int:
        with contextlib.ExitStack() as stack:
            args.exit_stack = stack
            return int(args.handler(args))

    return report_errors(f"instit {name}", handle, parser=parser)


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


def report_errors(
    prefix: str,
    run: Callable[[], int],
    *,
    checkpoint_hint: str = "",
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """``run()``, with instit's errors printed as one line after ``prefix`` and turned into
    exit codes (2 bad usage or input, 1 any other failure, 130 Ctrl-C), warnings as one line
    each; anything else is a bug and keeps its traceback."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(prefix)
            return run()
    except (InstitValueError, InstitTypeError) as exc:
        print(f"{prefix}: error: {flags_for_keywords(str(exc), parser)}", file=sys.stderr)
        return EXIT_USAGE
    except InstitError as exc:
        hint = checkpoint_hint if isinstance(exc, CheckpointError) else ""
        hint = f"; {hint}" if hint else ""
        print(f"{prefix}: failed: {flags_for_keywords(str(exc), parser)}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
