"""``SIDE_BY_SIDE.md``: the results of :mod:`bench.side_by_side` as markdown, from the results dict alone.

One table per core (rows x figures, a column per board of that core: fits or by how much it is
over), one table of ratios against the baseline row per core, the notes (runs that did not fit
their QEMU machine, agreements under the emulator's bar), and the commands of every run.

On an audio dataset (``results["data"]`` has a ``frontend``) the firmware runs from raw clips: the
instruction columns are per clip, split into front end, network and total (with the total's min
.. max), a column says whether the chip's features equal Python's, the ratios compare the total
and the network, and a run whose features differ gets a note.
"""

from __future__ import annotations

from typing import Any

from bench.side_by_side.summary import runs_by_core

__all__ = ["render_markdown", "percent", "size", "ratio_cell", "board_cell", "features_cell", "is_audio"]

_INTERPRETERS = {"lce": "LCE interpreter", "tflite": "TFLite", "tflm": "TFLite-Micro interpreter", "keras": "Keras"}


def percent(value: float | None) -> str:
    """``0.9921`` -> ``99.21 %``; ``None`` -> ``-``."""
    return "-" if value is None else f"{100 * value:.2f} %"


def size(value: float | None) -> str:
    """``203812`` -> ``203,812 B``; ``None`` -> ``-``."""
    return "-" if value is None else f"{value:,.0f} B"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _kib(value: int) -> str:
    return f"{value // 1024:,} KiB" if value % 1024 == 0 else f"{value:,} B"


def ratio_cell(value: float | None, fewer: str = "fewer") -> str:
    """A ratio to the baseline: ``0.228`` -> ``0.228 (4.39x fewer)``, ``2.0`` -> ``2.000 (2.00x more)``, ``1`` -> ``1.000``.

    The factor has three significant figures below 10 (``1.01x``), one decimal above (``23.3x``);
    ``fewer`` is the word for a smaller figure (``less`` for bytes).
    """
    if value is None:
        return "-"
    if value <= 0 or abs(value - 1.0) < 0.0005:
        return f"{value:.3f}"
    factor = 1 / value if value < 1 else value
    text = f"{factor:.2f}x" if factor < 10 else f"{factor:.1f}x"
    return f"{value:.3f} ({text} {fewer if value < 1 else 'more'})"


def board_cell(verdict: dict[str, Any] | None) -> str:
    """``yes`` (with the room left), ``no`` (with each overshoot), or ``-`` when a figure is missing."""
    if verdict is None or verdict.get("ok") is None:
        return "-"
    if verdict["ok"]:
        free = ", ".join(f"{_count(-verdict[key]['over'])} B {title}" for key, title in (("flash", "flash"), ("ram", "RAM")))
        return f"yes ({free} free)"
    over = [
        f"{title} +{verdict[key]['over']:,} B" for key, title in (("flash", "flash"), ("ram", "RAM")) if not verdict[key]["ok"]
    ]
    return "no (" + ", ".join(over) + ")"


def is_audio(results: dict[str, Any]) -> bool:
    """Whether the results are of an audio dataset (its ``data`` records the front end)."""
    return (results.get("data") or {}).get("frontend") is not None


def features_cell(features: dict[str, Any] | None) -> str:
    """Whether the chip's features equal Python's: ``yes (12 of 12 clips)``, ``**no** (3 of 12 clips differ)``, ``-``."""
    if not features or features.get("clips") is None:
        return "-"
    clips, equal = features["clips"], features["clips_equal"]
    if features["equal"]:
        return f"yes ({equal:,} of {clips:,} clips)"
    return f"**no** ({clips - equal:,} of {clips:,} clips differ)"


def _agreement(entry: dict[str, Any], which: str) -> str:
    agreement = (entry.get("agreement") or {}).get(which)
    if agreement is None:
        return "-"
    text = percent(agreement["agreement"])
    if which == "interpreter":
        backend = agreement.get("backend")
        text += f" ({_INTERPRETERS.get(backend, backend)})" if backend else ""
        if ((agreement.get("gate") or {}).get("passed")) is False:
            text += " **below the bar**"
    return text


def _figures_table(entries: list[dict[str, Any]], boards: list[dict[str, Any]], audio: bool = False) -> list[str]:
    headers = ["row", "deployment", "accuracy", "agrees with its interpreter", "agrees with Keras"]
    aligns = ["---", "---", "---:", "---", "---"]
    if audio:
        headers += ["features equal to Python's", "front end (instructions / clip)", "network", "total", "total min .. max"]
        aligns += ["---", "---:", "---:", "---:", "---:"]
    else:
        headers += ["instructions / inference (mean)", "median", "min .. max"]
        aligns += ["---:", "---:", "---:"]
    headers += ["flash", "RAM"]
    headers += [f"{board['name']} ({_kib(board['flash_bytes'])} / {_kib(board['ram_bytes'])})" for board in boards]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join([*aligns, "---:", "---:"] + ["---"] * len(boards)) + "|"]
    for entry in entries:
        stats = entry.get("instructions") or {}
        low, high = stats.get("min"), stats.get("max")
        spread = "-" if low is None or high is None else f"{low:,.0f} .. {high:,.0f}"
        cells = [
            entry["label"],
            entry["deployment"],
            percent(entry.get("accuracy")) if entry["ran"] else "not run",
            _agreement(entry, "interpreter"),
            _agreement(entry, "keras"),
        ]
        if audio:
            split = entry.get("instructions_per_clip") or {}
            cells += [
                features_cell(entry.get("features")),
                *(_count(split.get(part)) for part in ("frontend", "network", "total")),
            ]
            cells.append(spread)
        else:
            cells += [_count(stats.get("mean")), _count(stats.get("median")), spread]
        cells += [size(entry.get("flash_bytes")), size(entry.get("ram_bytes"))]
        cells += [board_cell((entry.get("fits") or {}).get(board["name"])) for board in boards]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratios_table(entries: list[dict[str, Any]], baseline: str, audio: bool = False) -> list[str]:
    instructions = "instructions / clip (total) | network" if audio else "instructions / inference"
    lines = [
        f"Against **{baseline}** on the same core (a row's figure over the baseline's; accuracy in percentage points):",
        "",
        f"| row | {instructions} | flash | RAM | accuracy |",
        "|---|---:|---:|---:|---:|" + ("---:|" if audio else ""),
    ]
    for entry in entries:
        if entry["label"] == baseline:
            continue
        figures = entry.get("ratios") or {}
        points = figures.get("accuracy_points")
        cells = [ratio_cell(figures.get("instructions"))]
        if audio:
            cells.append(ratio_cell(figures.get("network_instructions")))
        lines.append(
            f"| {entry['label']} | {' | '.join(cells)} | {ratio_cell(figures.get('flash'), 'less')} | "
            f"{ratio_cell(figures.get('ram'), 'less')} | {'-' if points is None else f'{points:+.2f}'} |"
        )
    return lines


def _header(results: dict[str, Any]) -> list[str]:
    data, machine = results["data"], results["machine"]
    shape = "x".join(str(d) for d in data.get("example_shape") or [])
    digests = ", ".join(f"{name} {digest[:12]}" for name, digest in sorted((data.get("sha256") or {}).items()))
    git = machine.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12] + (" (uncommitted changes)" if git.get("dirty") else "")
    tools = machine.get("tools") or {}
    count = results["images"]
    subset = (
        f"the first {count:,} of its {results['test_images']:,}" if count < results["test_images"] else f"all {count:,} of its"
    )
    run_line = (
        f"Run: commit {commit}, {machine.get('date')}, {machine.get('cpu')} ({machine.get('cpu_count')} CPUs); "
        f"{tools.get('qemu-system-arm') or 'qemu-system-arm unknown'}; "
        f"{tools.get('arm-none-eabi-gcc') or 'arm-none-eabi-gcc unknown'}; "
        f"bnn-mcu {results['version']}."
    )
    if is_audio(results):
        frontend = data["frontend"]
        return [
            "# Side by side on emulated Cortex-M cores",
            "",
            f"Data: `{data.get('source')}` (sha256 {digests}): raw 16-bit clips of {frontend.get('clip_samples', 0):,} "
            f"samples at {frontend.get('sample_rate', 0):,} Hz, turned by the integer log-mel front end into {shape} "
            f"{data.get('dtype')} features, {data.get('num_classes')} classes; {subset} test clips, the same for every row "
            "and core.",
            run_line,
            "",
            "Every firmware takes the raw clips through its clip API and runs the front end on the chip; the features it "
            "makes are compared byte for byte with Python's (the dataset's features, which the interpreters and Keras are "
            "fed). Instructions per clip are QEMU's (`-icount shift=0`; instructions, not the cycles of a real part), "
            "means over the clips: the front end (every push of samples and the final padding), the network, and their "
            "total. Flash and RAM are the whole deployable firmware as the emulator measured it (front end, clip API, the "
            "engine or TFLite-Micro with its kernels, the model, the C library helpers; RAM with the stack). Agreement is "
            "the share of clips where the firmware picks the class its flatbuffer's interpreter picks on Python's features "
            "(and the Keras model's, where one was given).",
        ]
    return [
        "# Side by side on emulated Cortex-M cores",
        "",
        f"Data: `{data.get('source')}` (sha256 {digests}): {shape} {data.get('dtype')} examples, "
        f"{data.get('num_classes')} classes; {subset} test examples, the same for every row and core.",
        run_line,
        "",
        "Instructions per inference are QEMU's (`-icount shift=0`): instructions, not the cycles of a real part. "
        "Flash and RAM are the whole deployable firmware as the emulator measured it (the engine or TFLite-Micro with its "
        "kernels, the model, the C library helpers; RAM with the stack). Agreement is the share of images where the "
        "firmware picks the class its flatbuffer's interpreter picks (and the Keras model's, where one was given).",
    ]


def _notes(entries: list[dict[str, Any]]) -> list[str]:
    notes = []
    for entry in entries:
        if not entry["ran"]:
            notes.append(f"- {entry['label']} on {entry['core']}: not run: {entry['note']}")
        gate = ((entry.get("agreement") or {}).get("interpreter") or {}).get("gate") or {}
        if gate.get("passed") is False:
            notes.append(
                f"- {entry['label']} on {entry['core']}: agrees with its interpreter on fewer images than the emulator's "
                f"bar ({gate.get('min_agreement')} %)"
            )
        features = entry.get("features") or {}
        if entry["ran"] and features.get("equal") is False:
            first = ", ".join(str(i) for i in features.get("differ") or [])
            notes.append(
                f"- {entry['label']} on {entry['core']}: the chip's features differ from Python's on "
                f"{features['clips'] - features['clips_equal']:,} of {features['clips']:,} clips (first: {first}): a failed check"
            )
    return notes


def render_markdown(results: dict[str, Any]) -> str:
    """The whole ``SIDE_BY_SIDE.md``.

    Args:
        results: the dict written to ``side_by_side.json`` (:mod:`bench.side_by_side.cli`).

    Returns:
        Markdown text ending in a newline.
    """
    lines = _header(results)
    boards = results["boards"]
    baseline = results.get("baseline")
    audio = is_audio(results)
    for core, entries in runs_by_core(results["runs"], results["cores"]).items():
        machine = entries[0]["qemu_machine"] if entries else ""
        lines += ["", f"## {core} (QEMU {machine})", ""]
        lines += _figures_table(entries, [board for board in boards if board["core"] == core], audio)
        if baseline is not None:
            lines += ["", *_ratios_table(entries, baseline, audio)]
    notes = _notes(results["runs"])
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Commands", "", "Each run, from the folder the command ran in:", "", "```sh"]
    for entry in results["runs"]:
        lines.append(f"# {entry['label']} on {entry['core']}")
        commands = entry["commands"]
        lines += [" ".join(_quote(arg) for arg in commands[stage]) for stage in ("firmware_gen", "emulator") if stage in commands]
    lines += ["```", ""]
    return "\n".join(lines)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
