"""The child side of :mod:`pipeline.isolation`: ``python -m pipeline.child`` serves interpreter requests.

Requests arrive on stdin and answers leave on the original stdout, framed by
:func:`pipeline.isolation.write_frame`; file descriptors 1 and 2 both point at the log file the
parent reads, so whatever the native libraries print lands there. A native crash ends this
process: the parent sees the signal and turns it into one line.

The three interpreters are loaded without TensorFlow's Python package (its import alone takes
seconds): TFLite's and LCE's native wrappers are loaded straight from their extension files
(the pinned TensorFlow and LCE wheels), with the ordinary import as a fallback, and the
``tflite_micro`` wheel needs nothing else.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from pipeline.errors import InputError, first_line
from pipeline.interpreters import Session, open_lce_native, open_tflm, tflite_wrapper_session
from pipeline.isolation import INTERPRETER_NAMES, decode_array, encode_array, read_frame, write_frame

__all__ = ["MEMORY_LIMIT", "serve", "main"]

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_FIRST_ARENA = 1 << 20
_MAX_ARENA = 256 << 20
MEMORY_LIMIT = 4 << 30
"""Bytes of heap the child may take (RLIMIT_DATA)."""


def _extension(package: str, relative: str, fallback: Callable[[], ModuleType]) -> ModuleType:
    """Load the extension module ``package/relative*.so`` without importing ``package``; else ``fallback()``."""
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    name = os.path.basename(relative)
    for root in roots:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(root, relative + suffix)
            if not os.path.isfile(path):
                continue
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            module_spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            if module_spec is None:
                continue
            module = importlib.util.module_from_spec(module_spec)
            loader.exec_module(module)
            return module
    return fallback()


def _tflite_module() -> ModuleType:
    def fallback() -> ModuleType:
        from tensorflow.lite.python.interpreter_wrapper import _pywrap_tensorflow_interpreter_wrapper

        return _pywrap_tensorflow_interpreter_wrapper

    return _extension("tensorflow", "lite/python/interpreter_wrapper/_pywrap_tensorflow_interpreter_wrapper", fallback)


def _lce_module() -> ModuleType:
    def fallback() -> ModuleType:
        from larq_compute_engine.tflite.python import interpreter_wrapper_lite

        return interpreter_wrapper_lite

    return _extension("larq_compute_engine", "tflite/python/interpreter_wrapper_lite", fallback)


class _Captured:
    """What the native code printed on file descriptors 1 and 2 while the block ran (they stay in the log too)."""

    def __enter__(self) -> _Captured:
        self.text = ""
        self._libc = ctypes.CDLL(None)
        self._flush()
        self._start = os.fstat(2).st_size
        return self

    def _flush(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._libc.fflush(None)

    def __exit__(self, *exc: object) -> None:
        self._flush()
        end = os.fstat(2).st_size
        if end > self._start:
            self.text = os.pread(2, end - self._start, self._start).decode("utf-8", "replace")


def _open(kind: str, model: bytes, delegates: bool) -> Session:
    if kind == "tflite":
        return tflite_wrapper_session(_tflite_module(), model, delegates=delegates)
    if kind == "lce":
        return open_lce_native(_lce_module(), model)
    if kind == "tflm":
        return open_tflm(model)
    raise ValueError(f"unknown interpreter {kind!r}")


def _invoke_zeros(session: Session) -> np.ndarray:
    output = session.call(np.zeros(session.input_shape, session.input_dtype))
    return np.asarray(output)


def _signature(session: Session, output: np.ndarray) -> dict[str, Any]:
    """What the interpreter made of the model: input and output as it computed them, and for
    TFLite every tensor's shape after allocation (kernels recompute shapes the file declares)."""
    signature: dict[str, Any] = {
        "input_shape": list(session.input_shape),
        "input_dtype": np.dtype(session.input_dtype).name,
        "output_shape": [int(d) for d in output.shape],
        "output_dtype": np.dtype(session.output_dtype).name,
    }
    wrapper = session.native
    if session.kind == "tflite" and wrapper is not None:
        signature["tensor_shapes"] = [_tensor_shape(wrapper, i) for i in range(wrapper.NumTensors(0))]
    return signature


def _tensor_shape(wrapper: Any, index: int) -> list[int] | None:
    """Tensor ``index``'s shape in a TFLite wrapper, or ``None`` for a tensor it keeps without one."""
    try:
        return [int(d) for d in wrapper.TensorSize(index, 0)]
    except ValueError:
        return None


def _tflm_allocations(model: bytes) -> dict[str, Any]:
    from tflite_micro.python.tflite_micro import runtime

    arena = max(_FIRST_ARENA, 4 * len(model))
    last_error = text = ""
    while arena <= _MAX_ARENA:
        with _Captured() as log:
            try:
                interpreter = runtime.Interpreter.from_bytes(bytes(model), arena_size=arena)
            except (RuntimeError, ValueError) as err:
                interpreter = None
                last_error = first_line(err)
            if interpreter is not None:
                interpreter.print_allocations()
        text = log.text
        if interpreter is not None and _TOTAL_RE.search(text):
            _invoke_zeros(open_tflm(model, arena_size=arena))
            return {"report": text}
        if "Failed to resize buffer" not in text and "arena" not in text.lower():
            break  # not a size problem: a bigger arena will not help
        arena *= 4
    reason = " ".join(line.strip() for line in text.splitlines() if line.strip())[:300]
    raise InputError(f"TFLite-Micro cannot allocate this model: {reason or last_error or 'no report'}")


class _Server:
    def __init__(self) -> None:
        self._key: tuple[str, str, bool] | None = None
        self._session: Session | None = None

    def session(self, kind: str, model: bytes, delegates: bool) -> Session:
        import hashlib

        key = (kind, hashlib.sha256(model).hexdigest(), delegates)
        if key != self._key or self._session is None:
            self._session = None
            self._session = _open(kind, model, delegates)
            self._key = key
        return self._session

    def handle(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], np.ndarray | None]:
        task, kind = header.get("task"), str(header.get("kind"))
        delegates = bool(header.get("options", {}).get("delegates", False))
        model = blobs[0]
        if task == "tflm_allocations":
            return _tflm_allocations(model), None
        session = self.session(kind, model, delegates)
        if task == "validate":
            return _signature(session, _invoke_zeros(session)), None
        if task == "run":
            return {}, session.run(decode_array(blobs[1]))
        raise ValueError(f"unknown task {task!r}")


def _with_reason(message: str, native_log: str) -> str:
    """``message`` plus the first line the native code printed about it, when the message lacks it.

    LCE's wrapper only says which check failed (``AllocateTensors() == kTfLiteOk``); the reason
    (``Node number 5 (LceBconv2d) failed to prepare``) is what TFLite's error reporter printed.
    """
    lines = [line.strip() for line in native_log.splitlines() if line.strip() and "RecordingMicroAllocator" not in line]
    reason = next((line for line in lines if line not in message), "")
    return first_line(f"{message}: {reason}" if reason else message, 300)


def serve(requests: BinaryIO, answers: BinaryIO) -> int:
    """Answer framed requests from ``requests`` on ``answers`` until ``requests`` closes.

    Returns:
        0 (the exit status) when the parent closed the requests stream.
    """
    server = _Server()

    def read_exact(count: int) -> bytes:
        data = requests.read(count)
        if len(data) != count:
            raise EOFError
        return data

    while True:
        try:
            header, blobs = read_frame(read_exact)
        except EOFError:
            return 0
        what = INTERPRETER_NAMES.get(str(header.get("kind")), "the interpreter")
        log = _Captured()
        try:
            with log:
                answer, array = server.handle(header, blobs)
        except InputError as err:  # the runners' own one-line refusals name the interpreter
            answer, array = {"error": _with_reason(first_line(err), log.text)}, None
        except Exception as err:  # every other failure of a native interpreter, whatever its type, is an answer too
            message = f"{what} failed on this model ({type(err).__name__}: {first_line(err)})"
            answer, array = {"error": _with_reason(message, log.text)}, None
        write_frame(answers, answer, [encode_array(array)] if array is not None else [])


def _limit_memory(limit: int = MEMORY_LIMIT) -> None:
    """Cap this process's data (heap) at ``limit`` bytes: a model whose tensors would need more
    fails to allocate here (an error, or an abort the parent reports) instead of pushing the
    machine into swap."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def main() -> int:
    """Entry point: cap memory, keep the protocol on a private copy of stdout, send fd 1 to the log (fd 2)."""
    _limit_memory()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if not _is_regular(2):  # run by hand on a terminal: keep a log file to read from
        log = tempfile.TemporaryFile()
        os.dup2(log.fileno(), 2)
        os.dup2(log.fileno(), 1)
    return serve(sys.stdin.buffer, answers)


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


if __name__ == "__main__":
    sys.exit(main())
