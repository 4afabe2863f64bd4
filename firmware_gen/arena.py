"""Measure the tensor arena a model needs with the real TFLite-Micro interpreter.

The ``tflite_micro`` wheel wraps the C++ ``RecordingMicroInterpreter``. Its
``print_allocations()`` writes a report from C++ straight to file descriptor 2 (not through
Python's ``sys.stderr``), whose first line is::

    [RecordingMicroAllocator] Arena allocation total 31888 bytes

That total (head: the planned activation buffers + tail: persistent allocations) is what this
module returns. It does not depend on the arena size the interpreter was given, nor on whether
an inference ran (checked on the zoo's cnn, float and int8). It is measured on the host, a
64-bit build, so persistent structures with pointers are larger than on a 32-bit Cortex-M:
the figure is a slight over-estimate for the target, never an under-estimate.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from pipeline.errors import InputError

__all__ = ["measure_arena", "arena_report", "tflm_version"]

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_FIRST_ARENA = 1 << 20
_MAX_ARENA = 256 << 20


def tflm_version() -> str:
    """Version of the installed ``tflite_micro`` wheel (``unknown`` if it cannot be read)."""
    from importlib import metadata

    try:
        return metadata.version("tflite_micro")
    except metadata.PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _capture_fds(*fds: int) -> Iterator[list[str]]:
    """Redirect the given OS file descriptors into a temporary file; yield a list filled on exit."""
    captured: list[str] = []
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(fd) for fd in fds]
        try:
            libc.fflush(None)
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            yield captured
        finally:
            libc.fflush(None)
            for fd, copy in zip(fds, saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def arena_report(model_bytes: bytes) -> str:
    """The text ``print_allocations()`` writes for this model (allocation after AllocateTensors).

    Args:
        model_bytes: a ``.tflite`` flatbuffer with ops TFLite-Micro implements.

    Returns:
        The allocation report, one ``[RecordingMicroAllocator] ...`` line per entry.

    Raises:
        InputError: TFLite-Micro cannot load or allocate the model (unsupported or custom op,
            or it needs more than 256 MiB).
    """
    from tflite_micro.python.tflite_micro import runtime

    arena = max(_FIRST_ARENA, 4 * len(model_bytes))
    last_error = ""
    while arena <= _MAX_ARENA:
        with _capture_fds(1, 2) as log:
            try:
                interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena)
            except (RuntimeError, ValueError) as err:
                interpreter = None
                last_error = str(err)
            if interpreter is not None:
                interpreter.print_allocations()
                del interpreter
        text = log[0]
        if _TOTAL_RE.search(text):
            return text
        if "Failed to resize buffer" not in text and "arena" not in text.lower():
            break  # not a size problem: a bigger arena will not help
        arena *= 4
    reason = " ".join(line.strip() for line in text.splitlines() if line.strip())[:300]
    raise InputError(f"TFLite-Micro cannot allocate this model: {reason or last_error or 'no report'}")


def measure_arena(model_bytes: bytes) -> int:
    """Bytes of tensor arena TFLite-Micro uses for this model.

    Exactly the ``Arena allocation total`` that ``print_allocations()`` reports after the
    interpreter allocated its tensors (planned activations + persistent data).

    Args:
        model_bytes: a ``.tflite`` flatbuffer with ops TFLite-Micro implements.

    Returns:
        The total arena bytes.

    Raises:
        InputError: TFLite-Micro cannot load or allocate the model.
    """
    match = _TOTAL_RE.search(arena_report(model_bytes))
    if match is None:  # arena_report only returns text that contains the total
        raise InputError("TFLite-Micro printed no arena total")
    return int(match.group(1))
