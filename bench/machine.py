"""What the benchmark ran on: commit, CPU, tool versions, date, load.

Everything is read from the running system (``git``, ``/proc/cpuinfo``, package metadata,
``--version`` of the tools); a figure that cannot be read is ``None``, never guessed.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "git_commit", "package_version", "tool_version", "load_average", "machine_info"]

_PACKAGES = ("tensorflow", "tf-keras", "larq", "larq-compute-engine", "tflite-micro", "numpy")
_TOOLS = {"gcc": "gcc", "arm-none-eabi-gcc": "arm-none-eabi-gcc", "qemu-system-arm": "qemu-system-arm"}


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo`` (or of the text given), else the platform's processor."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or None


def _output(command: list[str], cwd: Path | None = None) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit(repo: Path) -> dict[str, Any]:
    """``{"commit": HEAD hash or None, "dirty": tracked files differ from HEAD (None if unknown)}``."""
    commit = _output(["git", "rev-parse", "HEAD"], repo)
    status = _output(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_version(name: str) -> str | None:
    """Installed version of a Python distribution, or ``None``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_version(program: str) -> str | None:
    """First line of ``PROGRAM --version``, or ``None`` when it is not installed."""
    text = _output([program, "--version"])
    return text.splitlines()[0].strip() if text else None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_info(repo: Path) -> dict[str, Any]:
    """Everything about the machine and the checkout that a result depends on.

    Args:
        repo: the git checkout the benchmark runs from.

    Returns:
        JSON-ready: ``date`` (UTC, ISO 8601), ``git`` (commit, dirty), ``cpu``, ``cpu_count``,
        ``platform``, ``python``, ``packages`` and ``tools`` versions, ``load_average``.
    """
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "git": git_commit(repo),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in _PACKAGES},
        "tools": {name: tool_version(program) for name, program in _TOOLS.items()},
        "load_average": load_average(),
    }
