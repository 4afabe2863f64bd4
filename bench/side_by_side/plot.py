"""``side_by_side.png``: accuracy against instructions per inference and against RAM, two panels.

On an audio dataset (runs with ``instructions_per_clip``) the instructions are per clip, the
front end's and the network's together: the total's mean, what ``instructions`` holds.

One marker per row and core that ran: a colour per row, a marker shape (and size, smaller for
each later core, drawn on top) per core; both x axes logarithmic (the rows differ by factors, not by amounts). The house style of
:mod:`bench.plot`: grid on both scales, thousands-separated axis labels, the legend outside.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["plot_points", "side_by_side_png"]

_CORE_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_ROW_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def plot_points(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points to plot: ``{"label", "core", "accuracy", "instructions", "ram_bytes"}`` of every run that ran.

    Runs without accuracy, mean instructions or RAM (not run: larger than the QEMU machine) are left out.
    """
    points = []
    for run in runs:
        mean = (run.get("instructions") or {}).get("mean")
        if not run.get("ran") or run.get("accuracy") is None or mean is None or run.get("ram_bytes") is None:
            continue
        points.append(
            {
                "label": run["label"],
                "core": run["core"],
                "accuracy": run["accuracy"],
                "instructions": mean,
                "ram_bytes": run["ram_bytes"],
            }
        )
    return points


def _count_label(value: float, _position: int) -> str:
    """Axis label: ``30,000,000``."""
    return f"{value:,.0f}"


def side_by_side_png(runs: list[dict[str, Any]], title: str) -> bytes:
    """Render the two panels.

    Args:
        runs: the run entries (``side_by_side.json``'s ``runs``), in row order.
        title: the figure title (name the data and the image count).

    Returns:
        PNG bytes.

    Raises:
        ValueError: no run has accuracy, instructions and RAM.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = plot_points(runs)
    if not points:
        raise ValueError("nothing to plot: no run has accuracy, instructions per inference and RAM")
    audio = any(run.get("instructions_per_clip") is not None for run in runs)
    cost = "instructions per clip (front end + network, QEMU, mean)" if audio else "instructions per inference (QEMU, mean)"
    labels = list(dict.fromkeys(run["label"] for run in runs))
    cores = list(dict.fromkeys(run["core"] for run in runs))
    color = {label: _ROW_COLORS[i % len(_ROW_COLORS)] for i, label in enumerate(labels)}
    marker = {core: _CORE_MARKERS[i % len(_CORE_MARKERS)] for i, core in enumerate(cores)}
    # One row often costs the same on two cores: each later core's marker is smaller and drawn on
    # top, so every point stays visible where they coincide.
    area = {core: max(30.0, 170.0 - 55.0 * i) for i, core in enumerate(cores)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110, sharey=True)
    panels = (
        ("instructions", f"{cost}, log scale"),
        ("ram_bytes", "RAM bytes (whole firmware), log scale"),
    )
    for ax, (key, xlabel) in zip(axes, panels, strict=True):
        for point in points:
            ax.scatter(
                point[key],
                100 * point["accuracy"],
                marker=marker[point["core"]],
                s=area[point["core"]],
                facecolors=color[point["label"]],
                edgecolors="black",
                linewidths=0.6,
                zorder=3 + cores.index(point["core"]),
            )
        values = [point[key] for point in points]
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(_count_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(values) / 1.6, max(values) * 1.6)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(axis="x", labelrotation=20)
    accuracies = [100 * point["accuracy"] for point in points]
    axes[0].set_ylim(max(0.0, min(accuracies) - 3.0), min(100.5, max(accuracies) + 3.0))
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(title)
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor=color[label], markeredgecolor="black", label=label)
        for label in labels
    ]
    handles += [
        Line2D(
            [], [], linestyle="", marker=marker[core], markersize=8, markerfacecolor="white", markeredgecolor="black", label=core
        )
        for core in cores
    ]
    axes[1].legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title="colour: row, marker: core",
        title_fontsize=8,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
