"""python -m emulator.model_report: the HTML report, checked in a real browser against its JSON.

The figures are read back from the DOM headless Chromium built (``--dump-dom``) and compared
with the JSON reports they came from, formatted here independently of the report's code. The
page must load without a console error, an exception or any request but its own file.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from chromium import dump_dom, inspect_page, screenshot
from conftest import require_chromium, run_module, stderr_lines

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from emulator.cli import main as emulate
from emulator.model_report import write_reports
from firmware_gen.targets import BOARDS, CORES

LIMIT = "100"
CELL = re.compile(r'<(td|span)\b([^>]*?)\sdata-src="([^"]+)" data-key="([^"]+)"(?: data-value="([^"]*)")?>([^<]*)</\1>')


@pytest.fixture(scope="module")
def report_folder(tiny_models, tiny_flatbuffers, tmp_path_factory) -> Path:
    """An artifacts folder as make demo leaves it, for the tiny bcnn on 100 test images.

    Keras, the LCE interpreter, the generated C on the host and (with the Arm toolchain) the
    firmware on QEMU's Cortex-M4, then the report.
    """
    from emulator.qemu import missing_tools
    from firmware_gen.cli import main as firmware_gen

    folder = tmp_path_factory.mktemp("report") / "artifacts"
    folder.mkdir()
    h5 = tiny_models["bcnn"]
    shutil.copy(h5, folder / "bcnn.h5")
    shutil.copy(h5.with_name("bcnn.train.json"), folder / "bcnn.train.json")
    for key in ("lce", "float", "report"):
        shutil.copy(tiny_flatbuffers["bcnn"][key], folder)
    firmware = folder / "firmware" / "bcnn.lce-cortex-m4"
    assert emulate([str(folder / "bcnn.h5"), "--limit", LIMIT]) == 0
    assert emulate([str(folder / "bcnn.lce.tflite"), "--limit", LIMIT]) == 0
    assert firmware_gen(["--target", "cortex-m4", "--model", str(folder / "bcnn.lce.tflite"), "--out", str(firmware)]) == 0
    assert emulate([str(firmware), "--backend", "host", "--limit", LIMIT]) == 0
    if not missing_tools():
        command = [str(firmware), "--backend", "qemu", "--target", "cortex-m4", "--reference", str(folder / "bcnn.h5")]
        assert emulate([*command, "--limit", LIMIT]) == 0
    assert [p.name for p in write_reports(str(folder))] == ["bcnn.report.html"]
    return folder


def _json(folder: Path, rel: str) -> dict:
    return json.loads((folder / rel).read_text())


def _value(data, key: str):
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def _expected_text(key: str, value) -> str:
    """How the report must print a JSON value, written independently of emulator.model_report.cells."""
    leaf = key.split(".")[-1]
    if leaf in ("accuracy", "agreement", "test_accuracy"):
        return f"{value * 100:.2f} %"
    if leaf.endswith("bytes"):
        return f"{value:,} B" if not key.startswith("layers.") else f"{value:,}"
    if leaf in ("instructions_per_inference", "median", "min", "max"):
        return f"{round(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cells(dom: str) -> list[dict]:
    return [
        {"src": m.group(3), "key": m.group(4), "value": m.group(5), "text": html.unescape(m.group(6))} for m in CELL.finditer(dom)
    ]


def test_report_is_self_contained(report_folder):
    """No script, no external reference: inline CSS and SVG only, and a CSP that forbids any fetch."""
    page = (report_folder / "bcnn.report.html").read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"""(?<![\w-])(?:src|href)\s*=\s*["'](?!#|data:)""", page), "a reference that would be fetched"
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page and page.count("<svg") >= 3


def test_emulator_json_records_layers_and_memory_plan(report_folder):
    """The emulator's JSON carries what the report draws (no --layers needed): a valid, non-overlapping plan."""
    lce = _json(report_folder, "bcnn.lce.lce.emulate.json")
    plan = lce["memory_plan"]
    assert len(lce["layers"]) == plan["operator_count"] > 0
    assert plan["total_bytes"] == lce["planner_bytes"] == max(b["offset"] + b["size"] for b in plan["buffers"])
    for i, a in enumerate(plan["buffers"]):
        for b in plan["buffers"][i + 1 :]:
            alive_together = a["first_use"] <= b["last_use"] and b["first_use"] <= a["last_use"]
            assert not (alive_together and a["offset"] < b["offset"] + b["size"] and b["offset"] < a["offset"] + a["size"])
    firmware = _json(report_folder, "firmware/bcnn.lce-cortex-m4/firmware.json")
    arena = firmware["report"]["arena_buffers"]
    assert max(b["offset"] + b["bytes"] for b in arena) == firmware["report"]["activation_ram_bytes"]


@pytest.mark.browser
def test_report_figures_equal_their_json(report_folder):
    """Every figure in the browser's DOM equals its JSON; accuracy, agreement, flash, RAM and instructions are all there."""
    chromium = require_chromium()
    dom, console = dump_dom(chromium, report_folder / "bcnn.report.html")
    assert console == []
    cells = _cells(dom)
    assert len(cells) > 100
    for c in cells:
        value = _value(_json(report_folder, c["src"]), c["key"])
        assert c["text"] == _expected_text(c["key"], value), c
        if c["value"] is not None and isinstance(value, (int, float)):
            assert float(c["value"]) == value, c
    shown = {(c["src"], c["key"]) for c in cells}
    emulations = sorted(p.relative_to(report_folder).as_posix() for p in report_folder.rglob("*.emulate.json"))
    assert len(emulations) >= 3
    for rel in emulations:
        report = _json(report_folder, rel)
        assert (rel, "accuracy") in shown and (rel, "images") in shown
        if report["agreement"] is not None:
            assert (rel, "agreement") in shown
        if report["backend"] == "qemu":
            for key in ("instructions_per_inference", "flash_bytes", "ram_bytes"):
                assert (rel, key) in shown, key
    convert = _json(report_folder, "bcnn.convert.json")
    for fmt in ("float", "lce"):
        assert ("bcnn.convert.json", f"formats.{fmt}.agreement") in shown
    assert convert["formats"]["lce"]["agreement"] >= 0.999
    rows = re.findall(r"<tr[^>]*><td[^>]*>([\w-]+)</td><td>(cortex-m\w+)</td>(.*?)</tr>", dom, re.DOTALL)
    boards = {name: body for name, core, body in rows if name in BOARDS}
    assert set(boards) == set(BOARDS)
    qemu = report_folder / "firmware/bcnn.lce-cortex-m4/bcnn.lce-cortex-m4.qemu.emulate.json"
    need = _json(report_folder, qemu.relative_to(report_folder).as_posix()) if qemu.exists() else None
    for name, body in boards.items():
        board = BOARDS[name]
        assert f">{board.flash_bytes:,} B<" in body and f">{board.ram_bytes:,} B<" in body
        if need is not None:
            assert f">{need['flash_bytes']:,} B<" in body and f">{board.flash_bytes - need['flash_bytes']:+,} B<" in body
            assert f">{need['ram_bytes']:,} B<" in body and f">{board.ram_bytes - need['ram_bytes']:+,} B<" in body


@pytest.mark.browser
def test_report_loads_without_console_errors_or_requests(report_folder, tmp_path):
    """DevTools: no console error, no exception, no request but the file; the same check catches a broken page."""
    chromium = require_chromium()
    page = report_folder / "bcnn.report.html"
    loaded = inspect_page(chromium, page)
    assert loaded.errors() == []
    assert loaded.requests == [page.resolve().as_uri()]
    broken = tmp_path / "broken.html"
    text = page.read_text().replace(
        "</body>", '<img src="https://example.com/a.png"><script>console.error("bad figure")</script></body>'
    )
    broken.write_text(text)
    caught = inspect_page(chromium, broken)
    assert any("example.com" in line or "Content Security Policy" in line for line in caught.errors()), caught
    assert "https://example.com/a.png" in caught.requests
    assert any("bad figure" in line or "script-src" in line or "Content Security Policy" in line for line in caught.errors())
    unguarded = tmp_path / "unguarded.html"
    unguarded.write_text('<!DOCTYPE html><title>t</title><script>console.error("bad figure"); undefinedCall();</script>')
    errors = inspect_page(chromium, unguarded).errors()
    assert any("bad figure" in line for line in errors) and any("undefinedCall" in line for line in errors)
    assert dump_dom(chromium, unguarded)[1] != []


@pytest.mark.browser
def test_report_screenshot(report_folder, tmp_path):
    """A screenshot of the page: a PNG of the window, with content (not a blank page)."""
    from PIL import Image

    chromium = require_chromium()
    png = screenshot(chromium, report_folder / "bcnn.report.html", tmp_path / "report.png", height=2400)
    with Image.open(png) as image:
        assert image.size == (1280, 2400)
        colours = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 50


def test_rungs_not_run_show_the_command(tiny_models, tmp_path):
    """A folder with only the training report: every later rung is 'not run' with the command that runs it."""
    folder = tmp_path / "art"
    folder.mkdir()
    shutil.copy(tiny_models["bcnn"].with_name("bcnn.train.json"), folder)
    result = run_module("emulator.model_report", folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {folder / 'bcnn.report.html'}"
    page = html.unescape((folder / "bcnn.report.html").read_text())
    assert f"not run: <code>python -m emulator {folder}/bcnn.h5</code>" in page
    assert f"not run: <code>python -m convert {folder}/bcnn.h5</code>" in page
    assert "test accuracy" in page and "confusion_matrix" in page


def test_binary_model_without_firmware_names_every_core(report_folder, tmp_path):
    """Rungs and cores not run point at firmware_gen first when no firmware folder exists."""
    folder = tmp_path / "art"
    folder.mkdir()
    for name in ("bcnn.train.json", "bcnn.convert.json", "bcnn.keras.emulate.json", "bcnn.lce.lce.emulate.json"):
        shutil.copy(report_folder / name, folder)
    write_reports(str(folder))
    page = html.unescape((folder / "bcnn.report.html").read_text())
    for core in CORES:
        assert f"python -m firmware_gen --target {core} --model {folder}/bcnn.lce.tflite && python -m emulator" in page
    assert f"{folder}/firmware/bcnn.lce-cortex-m4 --backend host" in page


def test_report_is_deterministic_and_written_atomically(report_folder, tmp_path):
    """The same reports give the same bytes; --out gets only the finished files."""
    first = write_reports(str(report_folder), tmp_path / "a")
    second = write_reports(str(report_folder), tmp_path / "b")
    assert first[0].read_bytes() == second[0].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["bcnn.report.html"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (None, "no such folder"),
        ({}, "no pipeline reports"),
        ({"x.emulate.json": "{"}, "not valid JSON"),
        ({"x.emulate.json": "[1, 2]"}, "expected a JSON object"),
        ({"x.emulate.json": "{}"}, "no name"),
        ({"bcnn.train.json": '{"history": 3, "confusion_matrix": 1}'}, "unexpected layout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, message):
    folder = tmp_path / "art"
    if setup is not None:
        folder.mkdir()
        for name, text in setup.items():
            (folder / name).write_text(text)
    result = run_module("emulator.model_report", folder)
    lines = stderr_lines(result)
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not list(tmp_path.rglob("*.html"))


def test_unknown_model_is_refused(report_folder):
    result = run_module("emulator.model_report", report_folder, "--model", "nosuch")
    assert result.returncode == 2 and "nosuch" in result.stderr and "found: bcnn" in result.stderr
