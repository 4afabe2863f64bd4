"""The search's results: every trial, the Pareto front and the best model that fits, as JSON, markdown and a plot.

* :func:`trial_rows`: one JSON-ready row per trial of the study (state, architecture, the four
  objectives, pruning reason, measurements, wall time).
* :func:`pareto_front`: the completed, feasible trials no other such trial dominates on
  (accuracy up, flash, RAM and instructions down); repeats of a candidate count once.
* :func:`best_trial`: the most accurate feasible trial (ties: less flash, then fewer instructions);
  :func:`ranked_trials`: the first few of that order (the final step may retrain several).
* :func:`accuracy_standard_error`: the sampling noise of an accuracy measured on a few thousand
  images, which the reports print beside the figures they rank candidates by.
* :func:`write_reports`: ``search.json``, ``search.md`` and ``search.png`` in the output folder.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from pipeline.artifacts import TOOL_VERSION, write_bytes, write_json, write_text
from search.trial import OBJECTIVES

__all__ = [
    "trial_rows",
    "accuracy_standard_error",
    "pareto_front",
    "best_trial",
    "ranked_trials",
    "build_report",
    "render_markdown",
    "render_plot",
    "write_reports",
]

_KEYS = [key for key, _ in OBJECTIVES]


def _seconds(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial of ``study`` as a JSON-ready dict, in trial order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = dict(trial.user_attrs)
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "tag": attrs.pop("tag", None),
            "arch": attrs.pop("arch", None),
            "values": dict(zip(_KEYS, trial.values, strict=True)) if trial.values else None,
            "feasible": attrs.pop("feasible", None),
            "pruned": attrs.pop("pruned", None),
            "duplicate_of": attrs.pop("duplicate_of", None),
            "seconds": _seconds(trial),
            "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
            "fail_reason": attrs.pop("error", None) or trial.system_attrs.get("fail_reason"),
            "measurements": attrs,
        }
        rows.append(row)
    return rows


def accuracy_standard_error(accuracy: float, images: int) -> float:
    """One standard error of an accuracy measured on ``images`` images (binomial: sqrt(p (1 - p) / n)).

    Two candidates whose validation accuracies differ by less than about twice this are not told
    apart by that split: ranking them picks noise.

    Raises:
        ValueError: ``images`` below 1 or ``accuracy`` outside [0, 1].
    """
    if images < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"need images >= 1 and an accuracy in [0, 1], got {images} and {accuracy}")
    return math.sqrt(accuracy * (1.0 - accuracy) / images)


def _noise_line(rows: list[dict[str, Any]], best: int | None) -> list[str]:
    """The validation noise of the best trial's accuracy, when its trial recorded the split's size."""
    row = next((r for r in rows if r["number"] == best), None)
    images = row.get("measurements", {}).get("val_images") if row else None
    if not images:
        return []
    accuracy = row["values"]["accuracy"]
    error = 100 * accuracy_standard_error(accuracy, int(images))
    return [
        f"Validation: {int(images):,} held-back images per trial; one standard error at the best trial's "
        f"{100 * accuracy:.2f} % is {error:.2f} points, so trials less than about {2 * error:.2f} points apart "
        "are not told apart.",
        "",
    ]


def _dominates(a: dict[str, float], b: dict[str, float]) -> bool:
    better = [a["accuracy"] >= b["accuracy"], *(a[key] <= b[key] for key in _KEYS[1:])]
    strictly = [a["accuracy"] > b["accuracy"], *(a[key] < b[key] for key in _KEYS[1:])]
    return all(better) and any(strictly)


def _candidates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["state"] == "COMPLETE" and r["feasible"] and r["values"] and r["duplicate_of"] is None]


def pareto_front(rows: list[dict[str, Any]]) -> list[int]:
    """Numbers of the feasible completed trials that no other one dominates, most accurate first."""
    pool = _candidates(rows)
    front = [r for r in pool if not any(_dominates(o["values"], r["values"]) for o in pool if o is not r)]
    front.sort(key=lambda r: (-r["values"]["accuracy"], r["values"]["flash_bytes"], r["number"]))
    return [r["number"] for r in front]


def ranked_trials(rows: list[dict[str, Any]], count: int) -> list[int]:
    """The ``count`` most accurate feasible trials, best first (ties: less flash, then fewer instructions)."""
    pool = _candidates(rows)
    pool.sort(key=lambda r: (-r["values"]["accuracy"], r["values"]["flash_bytes"], r["values"]["instructions"], r["number"]))
    return [int(r["number"]) for r in pool[:count]]


def best_trial(rows: list[dict[str, Any]]) -> int | None:
    """The most accurate feasible trial (ties: less flash, then fewer instructions), or ``None``."""
    ranked = ranked_trials(rows, 1)
    return ranked[0] if ranked else None


def build_report(study: Any, header: dict[str, Any], final: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``search.json``.

    Args:
        study: the study.
        header: board, core, storage, config and the like (merged in as they are).
        final: the retrained model's report (:func:`search.final.finalize`), or ``None``.
    """
    rows = trial_rows(study)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    starts = [row["started"] for row in rows if row["started"]]
    return {
        "version": TOOL_VERSION,
        "study": study.study_name,
        **header,
        "objectives": [{"name": key, "direction": direction} for key, direction in OBJECTIVES],
        "counts": counts,
        "trial_seconds": round(sum(row["seconds"] or 0.0 for row in rows), 1),
        "first_start": min(starts) if starts else None,
        "front": pareto_front(rows),
        "best": best_trial(rows),
        "final": final,
        "trials": rows,
    }


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "accuracy":
        return f"{100 * value:.2f} %"
    if kind == "instructions":
        return f"{value / 1e6:.3f} M"
    return f"{int(value):,}"


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: dict[str, Any]) -> str:
    """``search.md``: the front, the best model, the final model and every trial."""
    board = report.get("board", {})
    by_number = {row["number"]: row for row in report["trials"]}
    lines = [
        f"# Search `{report['study']}`: {board.get('name')} ({board.get('core')}, {_fmt(board.get('flash_bytes'), 'b')} B flash, "
        f"{_fmt(board.get('ram_bytes'), 'b')} B RAM)",
        "",
        "Objectives: firmware accuracy on the validation split (maximise); deployable flash, RAM and "
        "instructions per inference under QEMU (minimise). Board budgets are constraints.",
        "",
        "Trials: "
        + ", ".join(f"{count} {state.lower()}" for state, count in sorted(report["counts"].items()))
        + f"; {report['trial_seconds'] / 60:.1f} minutes of trials in all.",
        "",
        *_noise_line(report["trials"], report["best"]),
        "## Pareto front (feasible trials)",
        "",
        "| trial | architecture | validation accuracy | flash B | RAM B | instructions | trial minutes |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for number in report["front"]:
        row = by_number[number]
        values = row["values"]
        cells = [
            f"{number}{' (best)' if number == report['best'] else ''}",
            f"`{row['tag']}`",
            _fmt(values["accuracy"], "accuracy"),
            _fmt(values["flash_bytes"], "b"),
            _fmt(values["ram_bytes"], "b"),
            _fmt(values["instructions"], "instructions"),
            f"{(row['seconds'] or 0) / 60:.1f}",
        ]
        lines.append(_table_row(cells))
    if not report["front"]:
        lines.append("| - | no completed trial fits the board | | | | | |")
    final = report.get("final")
    if final:
        lines += ["", "## Final model", ""]
        lines += [f"- {line}" for line in final.get("summary", [])]
    lines += [
        "",
        "## Every trial",
        "",
        "| trial | state | architecture | accuracy | flash B | RAM B | instructions | minutes | note |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["trials"]:
        values = row["values"] or {}
        note = row["pruned"] or row["fail_reason"] or ""
        if row["duplicate_of"] is not None:
            note = f"same candidate as trial {row['duplicate_of']}"
        elif row["state"] == "COMPLETE" and not row["feasible"]:
            note = "does not fit the board"
        cells = [
            str(row["number"]),
            row["state"].lower(),
            f"`{row['tag']}`",
            _fmt(values.get("accuracy"), "accuracy"),
            _fmt(values.get("flash_bytes"), "b"),
            _fmt(values.get("ram_bytes"), "b"),
            _fmt(values.get("instructions"), "instructions"),
            f"{(row['seconds'] or 0) / 60:.1f}",
            note.replace("|", "/"),
        ]
        lines.append(_table_row(cells))
    return "\n".join(lines) + "\n"


def render_plot(report: dict[str, Any]) -> bytes:
    """``search.png``: validation accuracy against flash, RAM and instructions; the front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in report["trials"] if r["state"] == "COMPLETE" and r["values"] and r["duplicate_of"] is None]
    front = set(report["front"])
    board = report.get("board", {})
    limits = {
        "flash_bytes": board.get("flash_bytes"),
        "ram_bytes": board.get("ram_bytes"),
        "instructions": report.get("max_instructions"),
    }
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, key, label in zip(
        axes, _KEYS[1:], ("deployable flash (bytes)", "deployable RAM (bytes)", "instructions per inference (QEMU)"), strict=True
    ):
        for subset, style in (
            (
                [r for r in done if r["number"] not in front and r["feasible"]],
                {"color": "0.6", "marker": "o", "label": "feasible"},
            ),
            ([r for r in done if not r["feasible"]], {"color": "tab:red", "marker": "x", "label": "over budget"}),
            ([r for r in done if r["number"] in front], {"color": "tab:blue", "marker": "o", "label": "Pareto front"}),
        ):
            if subset:
                axis.scatter([r["values"][key] for r in subset], [100 * r["values"]["accuracy"] for r in subset], **style)
        for r in done:
            if r["number"] in front:
                axis.annotate(str(r["number"]), (r["values"][key], 100 * r["values"]["accuracy"]), fontsize=8)
        if limits.get(key):
            axis.axvline(limits[key], color="tab:red", linestyle="--", linewidth=1, label="budget")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%), firmware")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"search {report['study']}: {board.get('name')} ({board.get('core')})")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def write_reports(out: Path, report: dict[str, Any]) -> list[Path]:
    """Write ``search.json``, ``search.md`` and ``search.png`` into ``out`` (each atomically)."""
    return [
        write_json(out / "search.json", report),
        write_text(out / "search.md", render_markdown(report)),
        write_bytes(out / "search.png", render_plot(report)),
    ]
