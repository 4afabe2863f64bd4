"""``bench/RESULTS.md``: the results document rendered as markdown tables.

:func:`render_markdown` takes the same dict that is written to ``results.json`` and prints only
what is in it, so the two files never disagree and no number is typed in by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.summary import MIN_VERDICT_IMAGES

__all__ = [
    "markdown_table",
    "fmt_bytes",
    "fmt_pct",
    "fmt_us",
    "fmt_ratio",
    "fmt_count",
    "versus_row",
    "ratio_line",
    "render_markdown",
]

DASH = "—"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table.

    Args:
        header: column titles.
        rows: cells (converted with ``str``; ``|`` is escaped).
        align: one character per column, ``l`` or ``r`` (default: all left).

    Raises:
        ValueError: a row or ``align`` does not have one entry per column.
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} entries for {len(header)} columns")

    def line(cells: Sequence[Any]) -> str:
        if len(cells) != len(header):
            raise ValueError(f"row has {len(cells)} cells for {len(header)} columns: {cells!r}")
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def fmt_bytes(value: int | None) -> str:
    """``12164`` -> ``12,164``; ``None`` -> a dash."""
    return DASH if value is None else f"{int(value):,}"


def fmt_count(value: float | None) -> str:
    """A large count rounded to an integer with separators."""
    return DASH if value is None else f"{round(value):,}"


def fmt_pct(value: float | None) -> str:
    """``0.9793`` -> ``97.93%``."""
    return DASH if value is None else f"{100 * value:.2f}%"


def fmt_us(value: float | None) -> str:
    """Microseconds with a precision that suits the magnitude."""
    if value is None:
        return DASH
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    """``12.345`` -> ``12.3x``."""
    return DASH if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "holds" if ok else "does NOT hold"


def _qemu_time(results: dict[str, Any]) -> str:
    for row in results["runs"]:
        if row["engine"] == "bnn-qemu" and row.get("seconds") is not None:
            return f" in {row['seconds']:.1f} s (build included)"
    return ""


def _header(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    git = machine.get("git", {})
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    load = results.get("load_average", {})
    return [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (`make bench`); every number below comes from that run. "
        "Do not edit by hand: run it again.",
        "",
        f"- date: {machine.get('date')}, commit `{git.get('commit')}`{dirty}",
        f"- machine: {machine.get('cpu')}, {machine.get('cpu_count')} CPUs, {machine.get('platform')}; "
        f"load average at start {load.get('start')}, at end {load.get('end')}",
        f"- software: Python {machine.get('python')}, "
        + ", ".join(f"{name} {version}" for name, version in machine.get("packages", {}).items())
        + "; "
        + ", ".join(f"{version}" for version in machine.get("tools", {}).values() if version),
        f"- data: {results['images']:,} MNIST test images from `{results['data']['source']}`; "
        f"firmware on QEMU Cortex-M4: {results['qemu_images']:,} images{_qemu_time(results)}; "
        f"instruction counts on every core: {results['core_images']:,} images each"
        + (f"; TFLite-Micro firmware on QEMU: {results['tflm_images']:,} images each" if results.get("tflm_images") else ""),
        f"- whole run: {results['seconds']['total']:.0f} s",
    ]


def _acceptance(results: dict[str, Any]) -> list[str]:
    acc = results["acceptance"]
    runtime, speed, data, ram = acc["runtime"], acc["c_vs_lce"], acc["model_data"], acc["ram"]
    rows = [
        (
            "whole run under 30 minutes",
            f"{runtime['seconds']:.0f} s" if runtime["seconds"] is not None else DASH,
            f"< {runtime['budget_seconds']} s",
            _verdict(runtime["ok"]),
        ),
        (
            "generated C (fast host build) vs LCE interpreter, bcnn, median per image on the host",
            f"{fmt_us(speed['lce_us_median'])} us / {fmt_us(speed['c_us_median'])} us = {fmt_ratio(speed['ratio'])}"
            + (
                f" (portable build: {fmt_us(speed['c_portable_us_median'])} us, {fmt_ratio(speed['ratio_portable'])})"
                if speed.get("c_portable_us_median") is not None
                else ""
            ),
            f">= {speed['bar']:g}x",
            _verdict(speed["ok"]),
        ),
        (
            "int8 cnn flatbuffer vs bcnn model data under the bnn engine (packed weights + thresholds)",
            f"{fmt_bytes(data['cnn_int8_flatbuffer_bytes'])} B / {fmt_bytes(data['bnn_model_data_bytes'])} B = "
            f"{fmt_ratio(data['ratio'])} (whole bnn firmware, model + code, Cortex-M4: "
            f"{fmt_bytes(data['bnn_firmware_flash_bytes'])} B)",
            f">= {data['bar']:g}x",
            _verdict(data["ok"]),
        ),
        (
            "int8 cnn TFLite-Micro arena vs bcnn bnn firmware RAM (Cortex-M4, data + bss + stack)",
            f"{fmt_bytes(ram['cnn_int8_tflm_arena_bytes'])} B / {fmt_bytes(ram['bnn_ram_bytes'])} B = {fmt_ratio(ram['ratio'])}",
            f">= {ram['bar']:g}x",
            _verdict(ram["ok"]),
        ),
    ]
    rows.extend(_tflm_acceptance(acc))
    text = ["## Acceptance", "", markdown_table(("check", "measured", "bar", "verdict"), rows)]
    if (acc.get("bnn_vs_tflm") or {}).get("images"):
        text += [
            "",
            "Ratios between two different models are the comparison they look like only at equal accuracy: "
            "the two accuracies, on the same images, are called equal when they differ by at most one standard "
            "error SE = sqrt(p (1 - p) / n), p the mean of the two, n the images (0.31 points at 99 % on 1,000 "
            f"images); with fewer than {MIN_VERDICT_IMAGES:,} images no verdict is given.",
        ]
    return text


def _tflm_acceptance(acc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The two lines of the on-core comparison: agreement with Python, and bnn against TFLite-Micro + CMSIS-NN."""
    rows = []
    agreement = acc.get("tflm_agreement")
    if agreement and agreement["runs"]:
        measured = (
            f"{agreement['exact']} of {agreement['runs']} runs agree on every image "
            f"(at least {agreement['images']:,} images each)"
        )
        if agreement["differ"]:
            measured += "; differ: " + ", ".join(agreement["differ"])
        rows.append(
            (
                "TFLite-Micro firmware on QEMU = TFLite-Micro Python interpreter (every model, core, kernel set that fits)",
                measured,
                "every image",
                _verdict(agreement["ok"]),
            )
        )
    versus = acc.get("bnn_vs_tflm")
    if versus and versus["images"]:
        rows.append(versus_row(versus))
    return rows


def _recipe(side: dict[str, Any]) -> str:
    return f"{side['recipe']} recipe" if side.get("recipe") else "recipe unknown"


def versus_row(versus: dict[str, Any]) -> tuple[str, str, str, str]:
    """The acceptance row of :func:`bench.summary.bnn_vs_tflm`: check, measured, bar, verdict.

    Two engines running two models: the check names each model with its recipe; the measured
    cell ends with both accuracies on the same images and the verdict of
    :func:`bench.summary.equal_accuracy`, which the verdict column repeats.
    """
    bnn, tflm, ratio = versus["bnn"], versus["tflm"], versus["ratios"]
    verdict = versus.get("accuracy") or {"equal": None, "text": "equal accuracy not judged"}
    measured = (
        f"instructions {fmt_count(bnn['instructions'])} vs {fmt_count(tflm['instructions'])} "
        f"= {fmt_ratio(ratio['instructions'])}; "
        f"flash {fmt_bytes(bnn['flash'])} vs {fmt_bytes(tflm['flash'])} B = {fmt_ratio(ratio['flash'])}; "
        f"RAM {fmt_bytes(bnn['ram'])} vs {fmt_bytes(tflm['ram'])} B = {fmt_ratio(ratio['ram'])}; "
        f"accuracy bnn vs TFLite-Micro on the same first {versus['images']:,} images: {verdict['text']}"
    )
    check = (
        f"bnn engine ({bnn['model']}, {_recipe(bnn)}) vs TFLite-Micro + CMSIS-NN ({tflm['model']}, {_recipe(tflm)}) "
        f"on {versus['core']}: TFLite-Micro / bnn"
    )
    equal = verdict["equal"]
    return (
        check,
        measured,
        f"accuracies within 1 SE on >= {MIN_VERDICT_IMAGES:,} images",
        "not established" if equal is None else "at equal accuracy" if equal else "NOT at equal accuracy",
    )


def ratio_line(versus: dict[str, Any]) -> str:
    """The acceptance row of :func:`versus_row` as one line of text (what ``python -m bench`` prints last)."""
    check, measured, _, _ = versus_row(versus)
    return f"{check}: {measured}"


def _accuracy(results: dict[str, Any]) -> list[str]:
    rows = []
    for row in results["runs"]:
        latency = fmt_us(row["latency_us_median"])
        if row["instructions_per_inference"] is not None:
            latency = f"{DASH} ({fmt_count(row['instructions_per_inference'])} instructions/inference)"
        rows.append(
            (
                row["model"],
                row["label"],
                row["runs_on"],
                fmt_bytes(row["images"]) if row["images"] else DASH,
                fmt_pct(row["accuracy"]),
                fmt_pct(row["agreement_keras"]),
                latency,
                fmt_ratio(row.get("latency_vs_c")),
                row["note"] or "",
            )
        )
    base = results.get("c_latency_us")
    return [
        "## Accuracy and host latency",
        "",
        "Agreement: the share of images whose predicted class equals Keras'. Latency: median over the images "
        "after a warm-up, one thread, one image per call (interpreters: set input, invoke, read output; "
        "generated C: each `bnn_predict` timed with `clock_gettime` by the host harness, median over all images). "
        "`x C`: latency over the generated C's "
        f"({fmt_us(base)} us per image, bcnn) in this same run.",
        "",
        markdown_table(
            ("model", "engine", "runs on", "images", "accuracy", "agreement", "median us/image", "x C", "note"),
            rows,
            "lllrrrrrl",
        ),
    ]


def _footprint(results: dict[str, Any]) -> list[str]:
    rows = [
        (
            row["model"],
            row["label"],
            fmt_bytes(row["model_bytes"]),
            row["flash_source"] or DASH,
            fmt_bytes(row["firmware_flash_bytes"]),
            fmt_bytes(row["ram_bytes"]),
            row["ram_source"] or DASH,
        )
        for row in results["runs"]
        if row["model_bytes"] is not None
    ]
    return [
        "## Flash and RAM",
        "",
        "Model bytes: what the model itself occupies in flash. Whole firmware: model + code of the deployable "
        "part (the bnn engine's ELF; for TFLite-Micro firmware on QEMU: flatbuffer + TFLite-Micro runtime and "
        "kernels + C library). The TFLite-Micro interpreter rows count the flatbuffer and the arena the real "
        "TFLite-Micro interpreter allocates, not TFLite-Micro's code.",
        "",
        markdown_table(
            ("model", "engine", "model bytes", "model bytes from", "whole firmware flash", "RAM bytes", "RAM from"),
            rows,
            "llrlrrl",
        ),
    ]


def _cores(results: dict[str, Any]) -> list[str]:
    rows = [
        (
            entry["core"],
            entry["qemu_machine"],
            fmt_bytes(entry["images"]),
            fmt_count(entry["instructions"]["mean"]),
            fmt_count(entry["instructions"]["median"]),
            f"{fmt_count(entry['instructions']['min'])} .. {fmt_count(entry['instructions']['max'])}",
            fmt_bytes(entry["firmware_flash_bytes"]),
            fmt_bytes(entry["ram_bytes"]),
            fmt_pct(entry["accuracy"]),
            fmt_pct(entry["agreement_host"]),
            entry.get("popcount") or DASH,
        )
        for entry in results["cores"]
    ]
    return [
        "## Instructions per inference on every emulated core (bcnn, bnn engine)",
        "",
        "QEMU with `-icount shift=0` counts executed instructions, not the cycles of a real part: wait states, "
        "pipeline stalls and multi-cycle instructions are not in these figures.",
        "",
        markdown_table(
            (
                "core",
                "QEMU machine",
                "images",
                "instructions (mean)",
                "median",
                "min .. max",
                "firmware flash",
                "RAM",
                "accuracy",
                "agreement with host C",
                "popcount",
            ),
            rows,
            "llrrrrrrrrl",
        ),
    ]


def _agreement_cell(value: float | None, what: str) -> str:
    return DASH if value is None else f"{fmt_pct(value)} ({what})"


def _oncore(results: dict[str, Any]) -> list[str]:
    """The bnn firmware and the TFLite-Micro firmware side by side on every emulated core."""
    entries = results.get("oncore") or []
    if not entries:
        return []
    rows = []
    for entry in results["cores"]:
        if entry["core"] in {e["core"] for e in entries}:
            rows.append(
                (
                    f"{entry['model']} (lce)",
                    "bnn engine",
                    entry["core"],
                    fmt_bytes(entry["images"]),
                    fmt_count(entry["instructions"]["mean"]),
                    fmt_bytes(entry["firmware_flash_bytes"]),
                    fmt_bytes(entry["ram_bytes"]),
                    fmt_pct(entry["accuracy"]),
                    _agreement_cell(entry["agreement_host"], "host C"),
                    "",
                )
            )
    for entry in entries:
        rows.append(
            (
                f"{entry['model']} ({entry['format']})",
                entry["label"],
                entry["core"],
                fmt_bytes(entry["images"]) if entry["ran"] else DASH,
                fmt_count(entry["instructions_per_inference"]),
                fmt_bytes(entry["firmware_flash_bytes"]),
                fmt_bytes(entry["ram_bytes"]),
                fmt_pct(entry["accuracy"]),
                _agreement_cell(entry["agreement_tflm_python"], "TFLM Python"),
                entry["note"] or "",
            )
        )
    libraries = [
        (
            lib["core"],
            lib["kernels"],
            fmt_bytes(lib["objects"]),
            "reused" if lib["reused"] else f"built in {lib['build_seconds']:.0f} s",
        )
        for lib in results.get("tflm_libraries", [])
    ]
    return [
        "## On the core: bnn engine and TFLite-Micro under QEMU",
        "",
        "Instructions per inference: SysTick under `-icount shift=0`, the same harness for both engines (mean over "
        "the images). Flash: the whole deployable firmware (model, engine or TFLite-Micro runtime and kernels, C "
        "library helpers), `arm-none-eabi-size` text + data of the deployable link. RAM: its data + bss (the tensor "
        "arena included) + stack (bnn: deepest static call path; TFLite-Micro: the painted high-water mark of setup "
        "and inference, since it calls kernels through pointers). Agreement: bnn with its host C build, TFLite-Micro "
        "with the TFLite-Micro Python interpreter fed the same int8 input. Static RAM of a firmware that does not fit "
        "the machine is in results.json.",
        "",
        markdown_table(
            (
                "model",
                "engine",
                "core",
                "images",
                "instructions (mean)",
                "firmware flash",
                "RAM",
                "accuracy",
                "agreement",
                "note",
            ),
            rows,
            "lllrrrrrrl",
        ),
        "",
        "TFLite-Micro libraries (90b983c2, `python -m firmware_gen.tflm_build`: the framework, the CMSIS-NN sources "
        "and the kernels of the models' ops, cached in build/tflm):",
        "",
        markdown_table(("core", "kernels", "objects", "this run"), libraries, "llrl"),
    ]


def _margin(value: int | None) -> str:
    if value is None:
        return "?"
    return f"+{value / 1024:,.1f}" if value >= 0 else f"{value / 1024:,.1f}"


def _boards(results: dict[str, Any]) -> list[str]:
    entries = results["boards"]
    labels = list(dict.fromkeys(entry["label"] for entry in entries))
    boards = list(dict.fromkeys(entry["board"] for entry in entries))
    cells: dict[tuple[str, str], str] = {}
    info: dict[str, str] = {}
    for entry in entries:
        info[entry["board"]] = (
            f"{entry['board']} ({entry['core']}, {entry['flash_budget'] // 1024:,} KiB / {entry['ram_budget'] // 1024:,} KiB)"
        )
        mark = "not measured" if entry["fits"] is None else "fits" if entry["fits"] else "**no**"
        cells[entry["board"], entry["label"]] = f"{mark} ({_margin(entry['flash_margin'])} / {_margin(entry['ram_margin'])})"
    rows = [(info[board], *(cells.get((board, label), DASH) for label in labels)) for board in boards]
    return [
        "## Which model fits which board",
        "",
        "Cells: verdict (flash margin / RAM margin in KiB; negative = over budget). bnn: the whole deployable "
        "firmware built for the board's core; TFLite-Micro: flatbuffer + arena only (its code would add more).",
        "",
        markdown_table(("board (core, flash / RAM)", *labels), rows, "l" + "r" * len(labels)),
    ]


def _models(results: dict[str, Any]) -> list[str]:
    rows = [
        (
            name,
            model.get("recipe") or DASH,
            model.get("epochs") if model.get("epochs") is not None else DASH,
            f"`{model['h5_sha256'][:12]}`",
            "trained" if model.get("trained_this_run") else "reused",
            "converted" if model.get("converted_this_run") else "reused",
            ", ".join(f"{fmt}: {fmt_bytes(entry['bytes'])} B" for fmt, entry in model["flatbuffers"].items()),
        )
        for name, model in results["models"].items()
    ]
    return [
        "## Models",
        "",
        markdown_table(("model", "recipe", "epochs", ".h5 sha256", ".h5", "flatbuffers", "flatbuffer bytes"), rows),
    ]


def _seconds(results: dict[str, Any]) -> list[str]:
    rows = [(stage, f"{seconds:.1f}") for stage, seconds in results["seconds"].items()]
    return ["## Time per stage", "", markdown_table(("stage", "seconds"), rows, "lr")]


def render_markdown(results: dict[str, Any]) -> str:
    """The whole ``RESULTS.md`` for a results dict (as written to ``results.json``).

    Returns:
        Markdown text ending with a newline.
    """
    parts = [
        _header(results),
        _acceptance(results),
        _accuracy(results),
        _footprint(results),
        _cores(results),
        _oncore(results),
        _boards(results),
        _models(results),
        _seconds(results),
    ]
    notes = results.get("notes") or []
    if notes:
        parts.append(["## Notes", "", *(f"- {note}" for note in notes)])
    parts.append(["![accuracy vs flash bytes](accuracy_vs_flash.png)"])
    return "\n\n".join("\n".join(part) for part in parts if part) + "\n"
