"""Errors that end a command with one line on stderr and a documented exit code.

Library code raises these; only the CLI edge (:func:`run_cli`) turns them into a line and an
exit status. Exit codes: 1 a check failed, 2 bad usage or input, 3 over budget.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = [
    "ToolError",
    "InputError",
    "CheckError",
    "BudgetError",
    "OneLineArgumentParser",
    "positive_int",
    "non_negative_int",
    "seed_int",
    "positive_float",
    "first_line",
    "printable",
    "run_cli",
]


class ToolError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 2


class InputError(ToolError):
    """Bad usage or bad input (missing file, corrupt data, unknown name): exit 2."""

    exit_code = 2


class CheckError(ToolError):
    """A verification failed (for example agreement below the bar): exit 1."""

    exit_code = 1


class BudgetError(ToolError):
    """The artifact does not fit the flash or RAM budget: exit 3."""

    exit_code = 3


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE`` and exit 2 (no usage block)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0 (``--limit``, ``--epochs``, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0 (``--sanitize 0`` skips a step)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """argparse type: a random seed, a whole number from 0 to 2**32 - 1 (what NumPy and TensorFlow take)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 4294967295, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 4294967295, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``--lr``, ``--timeout``, ...)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def first_line(err: BaseException | str, limit: int = 240) -> str:
    """The first non-empty line of an error (or text), at most ``limit`` characters (cut
    ones end in ``...``).

    Native libraries (TFLite, LCE, h5py) raise errors with multi-line messages; a CLI error is
    one line, so their text is cut to its first line. An empty message gives the exception's
    type name.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__ if isinstance(err, BaseException) else ""
    text = lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(name: str) -> str:
    """A name read from an input file as a message shows it: as is, or quoted (``repr``) when it
    holds a line break or another character that is not printable, so the message stays one line."""
    return name if name.isprintable() else repr(name)


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run ``main(argv)`` and map expected failures to one stderr line and an exit code.

    Besides the project's own errors and ``OSError``, an input that asks for more memory than
    the machine has (``MemoryError``: numpy's message says how much, for which shape) or that
    nests deeper than the code can follow (``RecursionError``) is one line and exit 2, never a
    traceback.

    Args:
        prog: program name used as the prefix of the error line.
        main: the command body; returns its exit status.
        argv: arguments (``None`` means ``sys.argv[1:]``).

    Returns:
        The exit status: ``main``'s, or the error's ``exit_code``.
    """
    try:
        return main(argv)
    except ToolError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except (OSError, EOFError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        what = f"{first_line(err)}; " if str(err).strip() else ""
        print(f"{prog}: error: out of memory: {what}an input declares more data than this machine can hold", file=sys.stderr)
        return 2
    except RecursionError as err:
        print(f"{prog}: error: an input is nested too deeply to follow ({first_line(err)})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
