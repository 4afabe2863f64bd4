"""The model report's parts without a browser: SVG figures, cells, the ladder's commands, budgets."""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from emulator.model_report.budgets import board_rows
from emulator.model_report.cells import cell, lookup, percent
from emulator.model_report.ladder import core_rows, ladder
from emulator.model_report.sources import Doc, ModelSources
from emulator.model_report.svg import Span, line_chart, memory_plan_chart, nice_ticks
from firmware_gen.targets import BOARDS, CORES

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (0.93, 0.991), (1.2, 37.5), (0.0, 876.0), (5.0, 5.0)])
def test_nice_ticks_cover_the_range_with_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) >= 2
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    mantissa = f"{steps.pop():.1e}".split("e")[0]
    assert mantissa in ("1.0", "2.0", "5.0")


@pytest.mark.parametrize(
    "low, high", [(-1e308, 1e308), (-1.7976931348623157e308, 1.7976931348623157e308), (1e17, 1e17), (1e308, 1e308), (0.0, 5e-324)]
)
def test_nice_ticks_of_huge_or_tiny_ranges_are_finite(low, high):
    # Before issue 35: OverflowError (the width of -1e308 .. 1e308 is infinite) or ValueError (log10 of 0).
    ticks = nice_ticks(low, high)
    assert len(ticks) >= 2 and all(math.isfinite(t) for t in ticks) and ticks == sorted(ticks)
    assert ticks[0] <= high and ticks[-1] >= low
    assert nice_ticks(0, 10**400) == [0.0]  # an integer no float holds


@pytest.mark.parametrize("values", [[1e308, -1e308, 1.0], [1e17], [-1.7976931348623157e308, 0.5], [math.nan, math.inf, 0.5]])
def test_line_chart_of_extreme_histories_draws_only_finite_coordinates(values):
    text = line_chart({"loss": values}, title="loss")
    root = ET.fromstring(text)
    assert "nan" not in text and "inf" not in text
    finite = [v for v in values if math.isfinite(v)]
    circles = list(root.iter(f"{SVG}circle"))
    assert len(circles) == len(finite)  # NaN and infinities are left out, every finite point is drawn
    ys = [float(c.get("cy")) for c in circles]
    assert all(28 - 0.1 <= y <= 240 - 38 + 0.1 for y in ys)  # inside the plot area
    if len(finite) > 1:
        assert ys[finite.index(max(finite))] == min(ys)  # the largest value is drawn highest


def test_report_of_a_history_of_1e308_and_minus_1e308_is_written(tmp_path, capsys):
    from emulator.model_report.cli import main

    folder = tmp_path / "art"
    folder.mkdir()
    history = {"loss": [1e308, -1e308, 1], "accuracy": [0.5, 0.6, 0.7]}
    (folder / "bcnn.train.json").write_text(json.dumps({"model": "bcnn", "history": history}))
    assert main([str(folder)]) == 0, capsys.readouterr().err
    assert (folder / "bcnn.report.html").is_file()


def test_memory_plan_chart_draws_one_rectangle_per_buffer_where_it_lives():
    spans = [Span("a<b", 0, 676, 0, 1), Span("b", 676, 200, 1, 2), Span("c", 0, 72, 2, 3)]
    root = ET.fromstring(memory_plan_chart(spans, steps=4, total_bytes=876, title="plan & more"))
    rects = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(rects) == 3
    tips = [r.find(f"{SVG}title").text for r in rects]
    assert tips[0].startswith("a<b: 676 bytes at offset 0, operators 0..1")
    x = [float(r.get("x")) for r in rects]
    width = [float(r.get("width")) for r in rects]
    assert x[0] < x[1] < x[2] and width[0] == pytest.approx(width[1])
    heights = [float(r.get("height")) for r in rects]
    assert heights[0] / heights[1] == pytest.approx(676 / 200, rel=0.02)


def test_line_chart_has_a_point_per_epoch_and_a_legend():
    root = ET.fromstring(line_chart({"train": [0.5, 0.8, 0.9], "validation": [0.4, 0.7, 0.85], "empty": []}, title="acc"))
    assert len(list(root.iter(f"{SVG}polyline"))) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == 6
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "train" in labels and "validation" in labels and "empty" not in labels


def _doc(rel: str, data: dict) -> Doc:
    return Doc(rel, Path(rel), data, "0" * 64)


def test_cells_keep_source_key_and_value():
    doc = _doc("x.emulate.json", {"accuracy": 0.98765, "extra": {"instructions": {"median": 12.0}}, "layers": [{"params": 3}]})
    c = cell(doc, "accuracy", percent)
    assert (c.text, c.src, c.key, c.value) == ("98.77 %", "x.emulate.json", "accuracy", 0.98765)
    assert lookup(doc.data, "extra.instructions.median") == 12.0 and lookup(doc.data, "layers.0.params") == 3
    assert lookup(doc.data, "layers.5.params") is None and cell(doc, "nothing", percent).src is None


def test_ladder_commands_and_budget_needs_for_a_bnn_model():
    """Run rungs keep their figures; missing host/QEMU rungs and cores name the command; boards use the core's build."""
    qemu = _doc(
        "firmware/m-cortex-m0/m-cortex-m0.qemu.emulate.json",
        {
            "name": "m",
            "backend": "qemu",
            "model": "art/firmware/m-cortex-m0",
            "images": 10,
            "accuracy": 0.9,
            "agreement": 1.0,
            "reference": {"backend": "keras", "path": "art/m.h5"},
            "flash_bytes": 15000,
            "ram_bytes": 5000,
            "instructions_per_inference": 1100000.4,
            "extra": {"core": "cortex-m0", "instructions": {"median": 1.0, "min": 1.0, "max": 2.0}},
        },
    )
    firmware = _doc("firmware/m-cortex-m0/firmware.json", {"engine": "bnn", "target": "cortex-m0", "report": {}})
    convert = _doc("m.convert.json", {"binary_layers": ["q"], "formats": {"lce": {"path": "art/m.lce.tflite"}}})
    sources = ModelSources("m", convert=convert, emulations=[qemu], firmwares=[firmware])
    rungs = ladder(sources, "art")
    commands = [r.command for r in rungs if r.command]
    assert "python -m emulator art/m.h5" in commands
    assert "python -m emulator art/m.lce.tflite" in commands
    assert "python -m emulator art/firmware/m-cortex-m0 --backend host" not in commands  # host is for the demo core
    assert any(
        c.endswith("art/firmware/m.lce-cortex-m4 --backend host") and "firmware_gen --target cortex-m4" in c for c in commands
    )
    run = next(r for r in rungs if r.source == qemu.rel)
    assert (run.accuracy.text, run.agreement.text, run.reference) == ("90.00 %", "100.00 %", "keras (m.h5)")
    cores = {row.core: row for row in core_rows(sources, "art")}
    assert set(cores) == set(CORES) and cores["cortex-m0"].mean.text == "1,100,000" and cores["cortex-m0"].command is None
    assert cores["cortex-m4"].command.startswith("python -m firmware_gen --target cortex-m4 --model art/m.lce.tflite && ")
    boards = {row.board: row for row in board_rows(sources, "art")}
    assert set(boards) == set(BOARDS)
    small = boards["stm32f030f4"]  # 16 KiB / 4 KiB, a cortex-m0: over on RAM
    assert (small.flash_margin.value, small.ram_margin.value, small.verdict) == (16384 - 15000, 4096 - 5000, "OVER")
    assert small.ram_margin.text == "-904 B" and "cortex-m0 build" not in small.note
    assert re.search("cortex-m0 build", boards["nrf52840"].note)
