"""Figures derived from the runs: the board verdicts and the ratios against the baseline row.

Pure functions over the JSON-ready run entries of :mod:`bench.side_by_side.runs`, so the tables
and the plot can be rebuilt from ``side_by_side.json`` alone (and tested on a synthetic one).

* A board is judged on the firmware built for its core: flash and RAM of the whole firmware as
  the emulator reported them, against the board's budget (:func:`firmware_gen.targets.check_budget`).
* Ratios are a row's figure divided by the baseline row's on the same core (instructions per
  inference, mean; flash; RAM), and the accuracy difference in percentage points; ``None`` where
  either side has no figure (a run that did not fit its QEMU machine). On an audio dataset the
  instructions are per clip (front end and network: the total's mean) and the network's alone
  is compared too (``network_instructions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["board_verdicts", "add_fits", "ratios", "add_ratios", "runs_by_core"]


def board_verdicts(entry: dict[str, Any], boards: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The verdict of every board of the entry's core: ``board name -> check_budget(...)``.

    Args:
        entry: a run entry (``core``, ``flash_bytes``, ``ram_bytes``).
        boards: ``{"name", "core", "flash_bytes", "ram_bytes"}`` of the boards judged.

    Returns:
        Per board of the same core: ``{"flash": {"need", "budget", "over", "ok"}, "ram": {...},
        "ok": True/False/None, "message": ...}``; ``ok`` is ``None`` when a figure is missing.
    """
    from firmware_gen.targets import check_budget

    return {
        board["name"]: check_budget(
            entry.get("flash_bytes"),
            entry.get("ram_bytes"),
            board["flash_bytes"],
            board["ram_bytes"],
            label=f"board {board['name']}",
        )
        for board in boards
        if board["core"] == entry["core"]
    }


def add_fits(entries: list[dict[str, Any]], boards: list[dict[str, Any]]) -> None:
    """Set ``entry["fits"]`` (:func:`board_verdicts`) on every entry, in place."""
    for entry in entries:
        entry["fits"] = board_verdicts(entry, boards)


def _quotient(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


def ratios(entry: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A run's figures as fractions of the baseline's on the same core.

    Args:
        entry: a run entry.
        baseline: the baseline row's entry on the same core.

    Returns:
        ``{"baseline", "instructions", "flash", "ram", "accuracy_points"}``: ``instructions`` is
        the mean instructions per inference over the baseline's (0.25: a quarter of them),
        ``flash`` and ``ram`` likewise, ``accuracy_points`` the accuracy difference in
        percentage points (negative: less accurate); ``None`` where a figure is missing. An audio
        entry (one with ``instructions_per_clip``) also has ``network_instructions``: the network's
        mean instructions per clip over the baseline's (the front end is the same code in both).
    """
    mean = (entry.get("instructions") or {}).get("mean")
    base_mean = (baseline.get("instructions") or {}).get("mean")
    accuracy, base_accuracy = entry.get("accuracy"), baseline.get("accuracy")
    figures = {
        "baseline": baseline["label"],
        "instructions": _quotient(mean, base_mean),
        "flash": _quotient(entry.get("flash_bytes"), baseline.get("flash_bytes")),
        "ram": _quotient(entry.get("ram_bytes"), baseline.get("ram_bytes")),
        "accuracy_points": None if accuracy is None or base_accuracy is None else 100.0 * (accuracy - base_accuracy),
    }
    if "instructions_per_clip" in entry:
        network = (entry.get("instructions_per_clip") or {}).get("network")
        figures["network_instructions"] = _quotient(network, (baseline.get("instructions_per_clip") or {}).get("network"))
    return figures


def add_ratios(entries: list[dict[str, Any]], baseline: str | None) -> None:
    """Set ``entry["ratios"]`` against the run of the row labelled ``baseline`` on the same core, in place.

    Every entry gets ``None`` when there is no baseline.
    """
    bases = {entry["core"]: entry for entry in entries if baseline is not None and entry["label"] == baseline}
    for entry in entries:
        base = bases.get(entry["core"])
        entry["ratios"] = None if base is None else ratios(entry, base)


def runs_by_core(entries: list[dict[str, Any]], cores: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The entries grouped by core, in the order of ``cores``, each group in row order."""
    return {core: [entry for entry in entries if entry["core"] == core] for core in cores}
