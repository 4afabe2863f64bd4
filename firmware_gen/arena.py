"""Measure the tensor arena a model needs with the real TFLite-Micro interpreter.

The ``tflite_micro`` wheel wraps the C++ ``RecordingMicroInterpreter``. Its
``print_allocations()`` writes a report from C++ straight to file descriptor 2, whose first
line is::

    [RecordingMicroAllocator] Arena allocation total 31888 bytes

That total (head: the planned activation buffers + tail: persistent allocations) is what this
module returns. It does not depend on the arena size the interpreter was given, nor on whether
an inference ran (checked on the zoo's cnn, float and int8). It is measured on the host, a
64-bit build, so persistent structures with pointers are larger than on a 32-bit Cortex-M:
the figure is a slight over-estimate for the target, never an under-estimate.

TFLite-Micro dies by signal on some malformed flatbuffers, so the measurement runs in a child
process (:func:`pipeline.isolation.tflm_allocations`): a crash there is one line naming the
file and the signal, and TFLite-Micro's own log lines stay off the terminal.
"""

from __future__ import annotations

import re

from pipeline.errors import InputError
from pipeline.isolation import Worker, tflm_allocations

__all__ = ["measure_arena", "arena_report", "tflm_version"]

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")


def tflm_version() -> str:
    """Version of the installed ``tflite_micro`` wheel (``unknown`` if it cannot be read)."""
    from importlib import metadata

    try:
        return metadata.version("tflite_micro")
    except metadata.PackageNotFoundError:
        return "unknown"


def arena_report(model_bytes: bytes, name: str = "<bytes>", *, worker: Worker | None = None) -> str:
    """The text ``print_allocations()`` writes for this model (allocation after AllocateTensors).

    Args:
        model_bytes: a ``.tflite`` flatbuffer with ops TFLite-Micro implements.
        name: the file name, for messages.
        worker: a running :class:`~pipeline.isolation.Worker` (default: the shared :func:`~pipeline.isolation.default_worker`).

    Returns:
        The allocation report, one ``[RecordingMicroAllocator] ...`` line per entry.

    Raises:
        InputError: TFLite-Micro cannot load, allocate or run the model (unsupported or custom op,
            more than 256 MiB), or it crashed or hung on it.
    """
    return tflm_allocations(model_bytes, name, worker=worker)


def measure_arena(model_bytes: bytes, name: str = "<bytes>", *, worker: Worker | None = None) -> int:
    """Bytes of tensor arena TFLite-Micro uses for this model.

    Exactly the ``Arena allocation total`` that ``print_allocations()`` reports after the
    interpreter allocated its tensors (planned activations + persistent data).

    Args:
        model_bytes: a ``.tflite`` flatbuffer with ops TFLite-Micro implements.
        name: the file name, for messages.
        worker: a running :class:`~pipeline.isolation.Worker` (default: the shared :func:`~pipeline.isolation.default_worker`).

    Returns:
        The total arena bytes.

    Raises:
        InputError: TFLite-Micro cannot load or allocate the model, or crashed on it.
    """
    match = _TOTAL_RE.search(arena_report(model_bytes, name, worker=worker))
    if match is None:  # the child only answers with text that contains the total
        raise InputError(f"{name}: TFLite-Micro printed no arena total")
    return int(match.group(1))
