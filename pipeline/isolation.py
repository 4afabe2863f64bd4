"""Run native interpreters on untrusted flatbuffers in a child process, where a crash cannot take the tool down.

TFLite-Micro, and to a lesser degree TFLite and LCE, can die by signal (SIGSEGV, SIGABRT) on a
malformed flatbuffer that the Python reader accepted: one int32 changed so that a graph input
index is -1 is enough. Run in-process, that kills the command with no message. Here the
interpreter runs in a child (``python -m pipeline.child``); its exit status and its last
stderr line become one :class:`~pipeline.errors.InputError` naming the file and the signal.

What runs where (the cost was measured: the child starts in about a second, because it loads
the three native libraries without importing TensorFlow's Python package):

* TFLite-Micro runs entirely in the child: the arena measurement (:func:`tflm_allocations`)
  and every inference (:func:`run_isolated` with ``kind="tflm"``, in chunks so a progress bar
  still moves). Its crashes are the ones seen in practice.
* TFLite and LCE are validated in the child first (:func:`validate`: load, allocate, one
  invoke on zeros), then run in-process at full speed (:func:`run_checked`): both refuse
  malformed graphs cleanly once they have loaded them, and the parent already holds them.

A :class:`Worker` keeps one child for many requests (the fuzz test sends thousands); after a
crash it starts a fresh child for the next request. The child's stdout and stderr go to a
file the parent reads, so native log lines never reach the terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError

__all__ = [
    "KINDS",
    "INTERPRETER_NAMES",
    "DEFAULT_TIMEOUT",
    "Worker",
    "default_worker",
    "validate",
    "tflm_allocations",
    "run_isolated",
    "run_checked",
    "encode_array",
    "decode_array",
    "write_frame",
    "read_frame",
]

KINDS = ("tflite", "lce", "tflm")
INTERPRETER_NAMES = {"tflite": "TFLite", "lce": "the LCE interpreter", "tflm": "TFLite-Micro"}
DEFAULT_TIMEOUT = 120.0
_START_TIMEOUT = 120.0
_CHUNK = 500
_HEADER = struct.Struct("<Q")


def encode_array(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format (no pickle)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_array(data: bytes) -> np.ndarray:
    """The array of :func:`encode_array` bytes (pickled objects are refused)."""
    import io

    return np.load(io.BytesIO(data), allow_pickle=False)


def write_frame(stream: Any, header: dict[str, Any], blobs: list[bytes]) -> None:
    """Write one message: a JSON header (with the blob lengths) and the blobs, length-prefixed."""
    meta = json.dumps({**header, "blobs": [len(blob) for blob in blobs]}).encode("utf-8")
    stream.write(_HEADER.pack(len(meta)) + meta)
    for blob in blobs:
        stream.write(blob)
    stream.flush()


def read_frame(read_exact: Callable[[int], bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message written by :func:`write_frame` through ``read_exact(n)``."""
    (size,) = _HEADER.unpack(read_exact(_HEADER.size))
    header = json.loads(read_exact(size).decode("utf-8"))
    blobs = [read_exact(int(length)) for length in header.pop("blobs")]
    return header, blobs


class _ChildDiedError(Exception):
    """The child closed its pipe (it exited or was killed)."""


def _signal_name(status: int) -> str:
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
    return f"exit status {status}"


class Worker:
    """One child process serving interpreter requests; restarted after a crash or a timeout.

    Use as a context manager, or call :meth:`close`. Requests are answered in order, one at a time.

    Args:
        timeout: seconds one request may take before the child is killed (a hang).
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.crashes = 0
        self.hangs = 0

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._discard()
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
        )
        return self._process

    def _discard(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the child (it exits when its input closes; killed if it does not)."""
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None:
            try:
                process.stdin.close()
                process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._discard()

    def _log_tail(self, start: int) -> str:
        if self._log is None:
            return ""
        self._log.seek(start)
        text = self._log.read().decode("utf-8", "replace")
        self._log.seek(0, os.SEEK_END)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _read_exact(self, fd: int, count: int, deadline: float) -> bytes:
        chunks = []
        while count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(count, 1 << 20))
            if not chunk:
                raise _ChildDiedError
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def request(
        self, task: str, kind: str, model_bytes: bytes, *, name: str, inputs: np.ndarray | None = None, **options: Any
    ) -> tuple[dict[str, Any], np.ndarray | None]:
        """Send one request and wait for its answer.

        Args:
            task: ``validate``, ``run`` or ``tflm_allocations``.
            kind: ``tflite``, ``lce`` or ``tflm``.
            model_bytes: the flatbuffer.
            name: the file name used in messages.
            inputs: raw inputs for ``run``.
            **options: task options (``delegates``).

        Returns:
            The child's answer (a dict) and the array it returned (scores), if any.

        Raises:
            InputError: the interpreter refused the model, crashed (the message names the signal)
                or did not answer within :attr:`timeout` seconds.
        """
        what = INTERPRETER_NAMES.get(kind, kind)
        header = {"task": task, "kind": kind, "name": name, "options": options}
        blobs = [bytes(model_bytes)] + ([encode_array(inputs)] if inputs is not None else [])
        process = self._start()
        start = self._log.tell() if self._log is not None else 0
        deadline = time.monotonic() + self.timeout
        if process.stdin is None or process.stdout is None:  # Popen with PIPE always sets both
            raise RuntimeError("the interpreter child has no pipes")
        try:
            write_frame(process.stdin, header, blobs)
            fd = process.stdout.fileno()
            answer, arrays = read_frame(lambda n: self._read_exact(fd, n, deadline))
        except (BrokenPipeError, ConnectionResetError, _ChildDiedError):
            try:
                status = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = None
            last = self._log_tail(start)
            self._discard()
            self.crashes += 1
            died = _signal_name(status) if status is not None else "no exit status"
            detail = f"; its last words: {last}" if last else ""
            raise InputError(f"{name}: {what} crashed on this model ({died}){detail}") from None
        except TimeoutError:
            self._discard()
            self.hangs += 1
            raise InputError(f"{name}: {what} did not finish within {self.timeout:g} s on this model and was stopped") from None
        if "error" in answer:
            raise InputError(f"{name}: {answer['error']}")
        return answer, (decode_array(arrays[0]) if arrays else None)


_DEFAULT: Worker | None = None


def default_worker() -> Worker:
    """The process's shared :class:`Worker`, started on first use and stopped at exit.

    One command (an emulator run, a firmware generation) sends several requests; sharing the
    child means one start-up. A crash only costs the request that caused it.
    """
    global _DEFAULT
    if _DEFAULT is None:
        import atexit

        _DEFAULT = Worker()
        atexit.register(_DEFAULT.close)
    return _DEFAULT


def _request(task: str, kind: str, model_bytes: bytes, name: str, worker: Worker | None, **kwargs: Any) -> Any:
    return (worker or default_worker()).request(task, kind, model_bytes, name=name, **kwargs)


def validate(kind: str, model_bytes: bytes, name: str, *, worker: Worker | None = None) -> dict[str, Any]:
    """Load ``model_bytes`` in ``kind``'s interpreter in a child, allocate it and invoke it once on zeros.

    Args:
        kind: ``tflite`` (builtin kernels, no delegates), ``lce`` or ``tflm``.
        model_bytes: the flatbuffer.
        name: the file name used in messages.
        worker: the :class:`Worker` to use (default: :func:`default_worker`).

    Returns:
        The model's signature as the interpreter sees it: ``input_shape``, ``input_dtype``,
        ``output_shape``, ``output_dtype`` (plus ``arena_report`` for ``tflm``).

    Raises:
        InputError: the interpreter refuses the model (one line naming it and why), crashes or hangs.
    """
    if kind not in KINDS:
        raise InputError(f"unknown interpreter {kind!r}: expected one of {', '.join(KINDS)}")
    answer, _ = _request("validate", kind, model_bytes, name, worker)
    return answer


def tflm_allocations(model_bytes: bytes, name: str, *, worker: Worker | None = None) -> str:
    """The text TFLite-Micro's ``print_allocations()`` writes for this model, measured in a child.

    The arena handed to the interpreter grows (1 MiB, then x4 up to 256 MiB) until the model
    allocates; the report does not depend on that size. The model is also invoked once on zeros.

    Raises:
        InputError: TFLite-Micro cannot load, allocate or run the model, crashes or hangs.
    """
    answer, _ = _request("tflm_allocations", "tflm", model_bytes, name, worker)
    return str(answer["report"])


def run_isolated(
    kind: str,
    model_bytes: bytes,
    inputs: np.ndarray,
    name: str,
    *,
    delegates: bool = False,
    progress: str | None = None,
    worker: Worker | None = None,
) -> np.ndarray:
    """Float32 scores ``(N, outputs)`` of ``kind``'s interpreter on ``inputs``, computed in a child.

    The inputs go in chunks of 500 (a tqdm bar labelled ``progress`` follows them on terminals);
    the child keeps the interpreter open between chunks.

    Raises:
        InputError: the model or the inputs are refused, or the interpreter crashed or hung.
    """
    from tqdm import tqdm

    active = worker or default_worker()
    parts = []
    with tqdm(total=len(inputs), desc=progress, unit="input", disable=None if progress else True, leave=False) as bar:
        for start in range(0, max(len(inputs), 1), _CHUNK):
            chunk = np.asarray(inputs[start : start + _CHUNK])
            _, scores = active.request("run", kind, model_bytes, name=name, inputs=chunk, delegates=delegates)
            if scores is None:
                raise InputError(f"{name}: {INTERPRETER_NAMES[kind]} returned no scores")
            parts.append(scores)
            bar.update(len(chunk))
    return np.concatenate(parts).astype(np.float32)


def run_checked(
    kind: str,
    model_bytes: bytes,
    inputs: np.ndarray,
    name: str,
    *,
    delegates: bool = False,
    progress: str | None = None,
    worker: Worker | None = None,
) -> np.ndarray:
    """Scores of an untrusted flatbuffer: TFLite-Micro in a child; TFLite and LCE validated in a child, then run here.

    Args:
        kind: ``tflite``, ``lce`` or ``tflm``.
        model_bytes: the flatbuffer.
        inputs: raw inputs ``(N, ...)``.
        name: the file name used in messages.
        delegates: TFLite only: its default delegates (XNNPACK) or builtin kernels only.
        progress: tqdm label.
        worker: the :class:`Worker` to use (default: :func:`default_worker`).

    Raises:
        InputError: the model is refused, or the interpreter crashed or hung.
    """
    if kind == "tflm":
        return run_isolated(kind, model_bytes, inputs, name, progress=progress, worker=worker)
    from pipeline.interpreters import run_lce, run_tflite

    validate(kind, model_bytes, name, worker=worker)
    if kind == "lce":
        return run_lce(model_bytes, inputs, progress=progress)
    if kind == "tflite":
        return run_tflite(model_bytes, inputs, delegates=delegates, progress=progress)
    raise InputError(f"unknown interpreter {kind!r}: expected one of {', '.join(KINDS)}")
