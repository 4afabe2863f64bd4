"""``bench/accuracy_vs_flash.png``: test accuracy against bytes in flash, log scale, every model/engine pair.

One point per row that ran and has a flash figure (Keras has none: it is not deployable). The
``bnn`` engine gets two points: its model data (packed weights + thresholds) and, hollow, its
whole firmware (model + code) on the Cortex-M4; the TFLite-Micro firmware on the Cortex-M4 gets a
hollow point at its whole firmware (flatbuffer + TFLite-Micro + kernels + C library).
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["plot_points", "accuracy_vs_flash_png"]

_MARKERS = {
    "tflite": "o",
    "tflite-int8": "s",
    "lce": "^",
    "tflm": "v",
    "tflm-int8": "D",
    "bnn-host": "*",
    "bnn-host-portable": "X",
    "bnn-qemu": "P",
    "tflm-qemu-reference": "<",
    "tflm-qemu-cmsis_nn": ">",
    "tflm-qemu-int8-reference": "h",
    "tflm-qemu-int8-cmsis_nn": "H",
}
_COLORS = {"bcnn": "tab:red", "cnn": "tab:blue", "mlp": "tab:green"}


def _byte_label(value: float, _position: int) -> str:
    """Axis label for a byte count: ``20,000``."""
    return f"{value:,.0f}"


def plot_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points to plot: ``{"model", "engine", "label", "bytes", "accuracy", "hollow"}``.

    Rows without accuracy or flash bytes are left out; a ``bnn-qemu`` row adds a hollow point
    at its whole-firmware flash; a ``tflm-qemu-*`` row is only that hollow point.
    """
    points = []
    for row in rows:
        if row["accuracy"] is None or row["model_bytes"] is None:
            continue
        base = {"model": row["model"], "engine": row["engine"], "accuracy": row["accuracy"]}
        if row["engine"].startswith("tflm-qemu"):
            if row["firmware_flash_bytes"] is not None:  # the model bytes are the tflm row's point already
                label = f"{row['model']}: {row['label']} (whole firmware)"
                points.append({**base, "label": label, "bytes": row["firmware_flash_bytes"], "hollow": True})
            continue
        points.append({**base, "label": f"{row['model']}: {row['label']}", "bytes": row["model_bytes"], "hollow": False})
        if row["engine"] == "bnn-qemu" and row["firmware_flash_bytes"] is not None:
            points.append(
                {
                    **base,
                    "label": f"{row['model']}: bnn whole firmware (model + code), Cortex-M4",
                    "bytes": row["firmware_flash_bytes"],
                    "hollow": True,
                }
            )
    return points


def accuracy_vs_flash_png(rows: list[dict[str, Any]], title: str) -> bytes:
    """Render the scatter plot.

    Args:
        rows: the result rows (:mod:`bench.measure`).
        title: the figure title (say how many images).

    Returns:
        PNG bytes.

    Raises:
        ValueError: no row has both an accuracy and a flash figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = plot_points(rows)
    if not points:
        raise ValueError("nothing to plot: no row has both an accuracy and a flash figure")
    fig, ax = plt.subplots(figsize=(12, 6.5), dpi=110)
    for point in points:
        color = _COLORS.get(point["model"], "tab:gray")
        ax.scatter(
            point["bytes"],
            100 * point["accuracy"],
            marker=_MARKERS.get(point["engine"], "o"),
            s=110 if point["engine"].startswith("bnn") else 60,
            facecolors="none" if point["hollow"] else color,
            edgecolors=color,
            linewidths=1.5,
            label=point["label"],
            zorder=3,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_byte_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bytes in flash (model; hollow: whole firmware on Cortex-M4), log scale")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    sizes = [p["bytes"] for p in points]
    ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
    low = min(100 * p["accuracy"] for p in points)
    ax.set_ylim(max(0.0, low - 1.0), 100.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
