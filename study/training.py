"""Train the study's models with ``python -m train`` in a child process, or reuse them.

Training runs in its own process so its peak resident memory and CPU time belong to it alone.
Peak memory is the child's own ``VmHWM`` (``/proc/PID/status``), polled while it runs: Linux's
``ru_maxrss`` of a child starts at the RSS of the process that forked it (the high-water mark of
the copied address space is kept across ``exec``), so a 1 GB parent would make every child look
at least 1 GB big. Where ``/proc`` is missing, ``ru_maxrss`` from ``os.wait4`` is used. A *baseline* process does
everything a training process does before its first step (imports TensorFlow, Larq and the zoo,
loads MNIST, builds every model of the study) and exits: its peak RSS is what no training costs.

A model is reused when ``NAME.h5``, ``NAME.train.json`` and the study's own record of that
training (``NAME.study.json``: the command, peak RSS, CPU seconds, the ``.h5``'s sha256) all
agree: same recipe in full, seed, image limit, MNIST files and parameter count. Otherwise it
is trained again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import TOOL_VERSION, sha256_file, write_json
from pipeline.errors import CheckError
from pipeline.json_input import parse_json

__all__ = ["ChildRun", "Trained", "run_measured", "baseline_rss", "reuse_mismatch", "train_or_reuse"]

_KIB = 1024
_POLL_SECONDS = 0.05


def _read_hwm(pid: int) -> int | None:
    """``VmHWM`` of process ``pid`` in bytes, or ``None`` (no ``/proc``, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * _KIB
    except (OSError, ValueError, IndexError):
        return None
    return None


class _HighWaterWatch:
    """Poll a child's ``VmHWM`` every 50 ms on a thread and keep the largest value seen."""

    def __init__(self, pid: int) -> None:
        self.peak: int | None = None
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            value = _read_hwm(self._pid)
            if value is not None:
                self.peak = value if self.peak is None else max(self.peak, value)
            if self._stop.wait(_POLL_SECONDS):
                return

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass(frozen=True)
class ChildRun:
    """A finished child process and what it cost.

    Attributes:
        command: the argument list.
        status: exit status.
        wall_seconds: wall time.
        cpu_seconds: user + system CPU time of the child.
        peak_rss_bytes: the child's peak resident set size.
        stdout: its standard output.
        stderr: its standard error.
    """

    command: list[str]
    status: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    stdout: str
    stderr: str


def run_measured(command: list[str], env: dict[str, str] | None = None) -> ChildRun:
    """Run ``command`` to completion and measure it: CPU time from ``os.wait4`` (this child only),
    peak RSS from its ``VmHWM`` polled every 50 ms (growth in its last 50 ms can be missed).

    Output goes to temporary files (no pipe can fill up); the child is killed if this process
    is interrupted.

    Args:
        command: program and arguments.
        env: environment (``None``: this process's).

    Returns:
        The :class:`ChildRun`.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        watch = _HighWaterWatch(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            watch.stop()
            raise
        polled = watch.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return ChildRun(
            command=list(command),
            status=proc.returncode,
            wall_seconds=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_bytes=polled if polled is not None else int(usage.ru_maxrss) * _KIB,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def _tail(run: ChildRun) -> str:
    lines = [line.strip() for line in (run.stderr or run.stdout).splitlines() if line.strip()]
    return " | ".join(lines[-2:]) if lines else "no output"


def baseline_rss(models: list[str], data_dir: str | None) -> ChildRun:
    """Peak RSS of a process that prepares to train ``models`` and trains nothing.

    Raises:
        CheckError: the baseline process failed.
    """
    command = [sys.executable, "-m", "study.baseline", *models, *(["--data", data_dir] if data_dir else [])]
    run = run_measured(command)
    if run.status != 0:
        raise CheckError(f"the baseline process failed (exit {run.status}): {_tail(run)}")
    return run


@dataclass
class Trained:
    """A study model on disk, and how its training went.

    Attributes:
        name: zoo name.
        h5: the Keras model.
        train_report: ``NAME.train.json``.
        run: ``NAME.study.json`` (command, wall and CPU seconds, peak RSS).
        reused: taken from an earlier run.
    """

    name: str
    h5: Path
    train_report: dict[str, Any]
    run: dict[str, Any]
    reused: bool


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def reuse_mismatch(
    expected: dict[str, Any], report: dict[str, Any] | None, record: dict[str, Any] | None, h5: Path
) -> str | None:
    """Why an earlier training cannot be reused (``None``: it can).

    Args:
        expected: ``model``, ``recipe`` (the full recipe as JSON), ``seed``, ``limit``, ``data``
            (file name -> sha256) and ``params`` the training must match.
        report: the parsed ``NAME.train.json`` (``None``: missing or unreadable).
        record: the parsed ``NAME.study.json``.
        h5: the ``.h5`` path.
    """
    if not h5.is_file():
        return "no .h5"
    if report is None:
        return "no readable train report"
    if record is None:
        return "no study record of its training (peak RSS)"
    for key in ("model", "recipe", "seed", "limit", "params"):
        if report.get(key) != expected[key]:
            return f"its {key} differs"
    data = report.get("data")
    if not isinstance(data, dict) or data.get("sha256") != expected["data"]:
        return "trained on other MNIST files"
    if record.get("h5_sha256") != sha256_file(h5):
        return "the .h5 changed after the study recorded its training"
    return None


def train_or_reuse(
    name: str,
    recipe_name: str,
    expected: dict[str, Any],
    artifacts: Path,
    *,
    overrides: dict[str, Any],
    data_dir: str | None,
    log: Callable[[str], None] = print,
) -> Trained:
    """Reuse ``artifacts/NAME.h5`` if :func:`reuse_mismatch` allows, else train it in a child process.

    Args:
        name: zoo name.
        recipe_name: ``study`` or ``study_full``.
        expected: what the training must match (see :func:`reuse_mismatch`).
        artifacts: the folder for ``.h5``, reports and the study record.
        overrides: ``--set`` overrides of the recipe (the quick mode's epochs).
        data_dir: ``--data`` for ``python -m train``.
        log: progress printer.

    Returns:
        The :class:`Trained` model.

    Raises:
        CheckError: training failed (its last error line is in the message).
    """
    h5 = artifacts / f"{name}.h5"
    record_path = artifacts / f"{name}.study.json"
    report = _read_json(artifacts / f"{name}.train.json")
    record = _read_json(record_path)
    reason = reuse_mismatch(expected, report, record, h5)
    if reason is None and report is not None and record is not None:
        log(f"{name}: reusing {h5} ({recipe_name} recipe, trained in {report.get('train_seconds')} s)")
        return Trained(name, h5, report, record, reused=True)
    command = [sys.executable, "-m", "train", "--model", name, "--recipe", recipe_name, "--seed", str(expected["seed"])]
    command += ["--out", str(artifacts), "--quiet"]
    command += [f"--set={key}={value}" for key, value in sorted(overrides.items())]
    command += ["--limit", str(expected["limit"])] if expected["limit"] else []
    command += ["--data", data_dir] if data_dir else []
    log(f"{name}: training ({reason}): python -m train {' '.join(command[3:])}")
    run = run_measured(command)
    if run.status != 0:
        raise CheckError(f"python -m train --model {name} failed (exit {run.status}): {_tail(run)}")
    report = _read_json(artifacts / f"{name}.train.json")
    if report is None:
        raise CheckError(f"python -m train --model {name} left no readable {name}.train.json")
    record = {
        "model": name,
        "version": TOOL_VERSION,
        "command": ["python", *command[1:]],
        "wall_seconds": round(run.wall_seconds, 2),
        "cpu_seconds": round(run.cpu_seconds, 2),
        "peak_rss_bytes": run.peak_rss_bytes,
        "h5_sha256": sha256_file(h5),
    }
    write_json(record_path, record)
    log(
        f"{name}: {100 * float(report['test_accuracy']):.2f}% in {run.wall_seconds:.0f} s wall, "
        f"{run.cpu_seconds:.0f} s CPU, peak RSS {run.peak_rss_bytes / 2**20:.0f} MiB"
    )
    return Trained(name, h5, report, record, reused=False)
