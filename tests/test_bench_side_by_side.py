"""python -m bench.side_by_side: rows and refusals (no QEMU), tables and plot from a synthetic result, one real run.

The real run puts the tiny BCNN under the bnn engine beside the tiny int8 CNN under TFLite-Micro
+ CMSIS-NN on QEMU's Cortex-M4, on the first MNIST test images: every figure of the JSON comes
from the stages' own reports, and this test checks them against each other.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import require_toolchain, run_module, stderr_lines

from bench.side_by_side.cli import check_out
from bench.side_by_side.plot import plot_points, side_by_side_png
from bench.side_by_side.runs import Run, does_not_fit, emulator_command, firmware_gen_command, not_run_entry, stage_error
from bench.side_by_side.spec import Row, check_boards, check_rows, parse_boards, parse_reference, parse_row, run_slug
from bench.side_by_side.summary import add_fits, add_ratios, board_verdicts, ratios
from bench.side_by_side.tables import board_cell, ratio_cell, render_markdown
from pipeline.errors import CheckError, InputError

PROG = "python -m bench.side_by_side"


# --- rows -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BNN=a/b.lce.tflite:bnn", Row("BNN", Path("a/b.lce.tflite"), "bnn", None)),
        ("R8 int8=m.tflite:tflm", Row("R8 int8", Path("m.tflite"), "tflm", "cmsis_nn")),
        ("R8 ref=m.tflite:tflm:reference", Row("R8 ref", Path("m.tflite"), "tflm", "reference")),
        (" spaced = c:/models/x.tflite:tflm:cmsis_nn", Row("spaced", Path("c:/models/x.tflite"), "tflm", "cmsis_nn")),
        ("a (b) + c=x:y.tflite:bnn", Row("a (b) + c", Path("x:y.tflite"), "bnn", None)),
    ],
)
def test_a_row_is_a_label_a_flatbuffer_an_engine_and_a_kernel_set(text, expected):
    assert parse_row(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m.tflite:bnn", "expected LABEL=FLATBUFFER:ENGINE[:KERNELS]"),
        ("=m.tflite:bnn", "expected LABEL=FLATBUFFER:ENGINE[:KERNELS]"),
        ("A=m.tflite", "expected LABEL=FLATBUFFER:ENGINE[:KERNELS]"),
        ("A=m.tflite:xnn", "row 'A': unknown engine 'xnn'"),
        ("A=m.tflite:tflm:helium", "row 'A': unknown kernel set 'helium'"),
        ("A=m.tflite:bnn:reference", "row 'A': a kernel set (reference) is for the tflm engine only"),
        ("A=:bnn", "row 'A': no flatbuffer"),
    ],
)
def test_a_malformed_row_says_what_a_row_is(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse_row(text)


def test_references_and_boards_parse():
    assert parse_reference("BNN = x/b.h5") == ("BNN", Path("x/b.h5"))
    with pytest.raises(argparse.ArgumentTypeError, match="expected LABEL=MODEL.h5"):
        parse_reference("x/b.h5")
    assert parse_boards("STM32F746, stm32f411re,stm32f746") == ["stm32f746", "stm32f411re"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown board 'esp32'"):
        parse_boards("esp32")


def test_rows_are_checked_together(tmp_path):
    model, keras = tmp_path / "m.tflite", tmp_path / "m.h5"
    model.write_bytes(b"x")
    keras.write_bytes(b"x")
    rows = [parse_row(f"A={model}:bnn"), parse_row(f"B={model}:tflm")]
    checked = check_rows(rows, [("B", keras)], "A")
    assert [row.reference for row in checked] == [None, keras]
    for bad_rows, references, baseline, message in [
        ([], [], None, "no rows"),
        ([rows[0], rows[0]], [], None, "row label 'A' is used twice"),
        ([parse_row(f"C={tmp_path / 'none.tflite'}:bnn")], [], None, "row 'C': flatbuffer .* does not exist"),
        (rows, [("Z", keras)], None, "--reference 'Z': no row has that label"),
        (rows, [("A", keras), ("A", keras)], None, "--reference 'A' is given twice"),
        (rows, [("A", tmp_path / "none.h5")], None, "--reference 'A': .*none.h5 does not exist"),
        (rows, [], "Z", "--baseline 'Z' is not a row's label"),
    ]:
        with pytest.raises(InputError, match=message):
            check_rows(bad_rows, references, baseline)


def test_boards_are_judged_on_their_own_core():
    assert check_boards(None, ["cortex-m7"]) == ["stm32f746"]
    assert set(check_boards(None, ["cortex-m4", "cortex-m7"])) == {"stm32f411re", "nrf52840", "stm32f746"}
    assert check_boards(["stm32f411re"], ["cortex-m4"]) == ["stm32f411re"]
    with pytest.raises(InputError, match="its core, cortex-m7, is not among --cores .*add cortex-m7 to --cores"):
        check_boards(["stm32f746"], ["cortex-m4"])


def test_commands_are_the_stages_own():
    row = parse_row("R8=m.tflite:tflm:reference")
    folder = Path("out/firmware") / run_slug(0, row, "cortex-m7")
    assert folder.name == "01-r8-cortex-m7"
    assert firmware_gen_command(row, "cortex-m7", folder) == [
        "python", "-m", "firmware_gen", "--engine", "tflm", "--target", "cortex-m7", "--model", "m.tflite", "--out", str(folder)
    ]  # fmt: skip
    assert emulator_command(row, "cortex-m7", folder, data="d.npz", limit=20, timeout=400.0) == [
        "python", "-m", "emulator", str(folder), "--backend", "qemu", "--target", "cortex-m7",
        "--tflm-kernels", "reference", "--data", "d.npz", "--limit", "20", "--timeout", "400",
    ]  # fmt: skip
    bnn = parse_row("B=b.lce.tflite:bnn")
    assert emulator_command(bnn, "cortex-m4", folder, data=None, limit=None, timeout=50300.0)[-4:] == [
        "--target", "cortex-m4", "--timeout", "50300",
    ]  # fmt: skip
    assert run_slug(11, parse_row("!!=b.tflite:bnn"), "cortex-m0") == "12-row-cortex-m0"


def test_stage_errors_are_the_childs_line_and_its_class():
    run = Run(parse_row("R8=m.tflite:bnn"), "cortex-m0", Path("f"))
    failed = subprocess.CompletedProcess([], 1, "", "warning: x\npython -m emulator: error: QEMU (microbit) did not finish\n")
    error = stage_error(run, "python -m emulator", failed)
    assert isinstance(error, CheckError)
    assert (
        str(error)
        == "row 'R8' on cortex-m0: python -m emulator exited with 1: python -m emulator: error: QEMU (microbit) did not finish"
    )
    refused = subprocess.CompletedProcess([], 2, "", "python -m firmware_gen: error: unsupported op\n")
    assert isinstance(stage_error(run, "python -m firmware_gen", refused), InputError)
    crashed = subprocess.CompletedProcess([], -11, "", "")
    assert "printed nothing" in str(stage_error(run, "python -m emulator", crashed))


def test_a_firmware_larger_than_the_machine_is_recognised_from_the_emulators_line():
    from emulator.qemu_tflm import machine_fit
    from firmware_gen.targets import get_core

    tflm = machine_fit({"text": 200_000, "data": 4_000, "bss": 60_000}, get_core("cortex-m0"))
    assert tflm is not None and does_not_fit(f"python -m emulator: error: {tflm}")
    bnn = "r8-bnn-m0 does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by 36,192 bytes"  # emulator.qemu's form
    assert does_not_fit(bnn)
    assert not does_not_fit("make failed in a copy of x: collect2: error: ld returned 1 exit status")


def test_a_run_that_did_not_fit_keeps_what_the_bnn_engine_measured(tmp_path):
    report = {"flash_bytes": 88_672, "ram_bytes": 49_328, "arena_bytes": 1}
    bnn = Run(parse_row("B=b.tflite:bnn"), "cortex-m0", tmp_path, manifest={"report": report, "model": {"sha256": "ab"}})
    entry = not_run_entry(bnn, "does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by 36,192 bytes")
    assert (entry["ran"], entry["flash_bytes"], entry["ram_bytes"], entry["model_sha256"]) == (False, 88_672, 49_328, "ab")
    tflm = Run(parse_row("T=t.tflite:tflm"), "cortex-m0", tmp_path, manifest={"report": report})
    assert not_run_entry(tflm, "does not fit")["flash_bytes"] is None  # the flatbuffer alone is not the firmware


def test_the_output_folder_holds_only_a_runs_files(tmp_path):
    check_out(tmp_path / "new")
    (tmp_path / "out" / "firmware").mkdir(parents=True)
    (tmp_path / "out" / "side_by_side.json").write_text("{}")
    check_out(tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files than a side-by-side run's \\(notes.txt\\)"):
        check_out(tmp_path / "out")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_out(tmp_path / "out" / "notes.txt")


# --- the command's refusals: one line, exit 2, before anything is built ---------------------------


def test_refusals_are_one_line_and_exit_2(tmp_path):
    model = tmp_path / "m.tflite"  # never read: every refusal here comes first
    model.write_bytes(b"not read")
    cases = [
        (["--row", f"A={model}:xnn"], "argument --row: row 'A': unknown engine 'xnn'"),
        (["--row", f"A={tmp_path / 'none.tflite'}:bnn"], "row 'A': flatbuffer"),
        (["--row", f"A={model}:bnn", "--row", f"A={model}:tflm"], "row label 'A' is used twice"),
        (["--row", f"A={model}:bnn", "--baseline", "B"], "--baseline 'B' is not a row's label (rows: 'A')"),
        (["--row", f"A={model}:bnn", "--cores", "cortex-m4", "--boards", "stm32f746"], "add cortex-m7 to --cores"),
        (["--row", f"A={model}:bnn", "--images", "0"], "argument --images: must be a positive integer"),
        (["--baseline", "A"], "the following arguments are required: --row"),
    ]
    for args, message in cases:
        result = run_module("bench.side_by_side", *args, "--out", tmp_path / "out")
        lines = stderr_lines(result)
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "out").exists()


def test_a_flatbuffer_that_does_not_take_the_data_is_refused_before_any_build(tmp_path, mini_flatbuffers):
    data = tmp_path / "colour.npz"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.arange(8) % 10
    np.savez(data, x_test=x, y_test=y, x_train=x, y_train=y)
    out = tmp_path / "out"
    result = run_module("bench.side_by_side", "--row", f"A={mini_flatbuffers['cnn.int8']}:tflm", "--data", data, "--out", out)
    assert result.returncode == 2
    assert len(stderr_lines(result)) == 1 and "does not take the dataset's 32x32x3 examples" in result.stderr
    assert not out.exists()


# --- tables and plot from a synthetic result ---------------------------------------------------------


def _entry(label: str, core: str, *, ran: bool = True, mean: float = 1e6, flash: int | None = 100_000, ram: int | None = 50_000):
    return {
        "label": label,
        "core": core,
        "qemu_machine": {"cortex-m4": "mps2-an386", "cortex-m0": "microbit"}[core],
        "engine": "bnn",
        "kernels": None,
        "deployment": "bnn engine",
        "ran": ran,
        "note": None if ran else "does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by 1,024 bytes",
        "accuracy": 0.8 if ran else None,
        "images": 10 if ran else None,
        "agreement": {
            "interpreter": {"backend": "lce", "agreement": 1.0, "gate": {"passed": True}} if ran else None,
            "keras": {"agreement": 0.9, "agreeing": 9, "path": "k.h5"} if ran else None,
        },
        "instructions": {"mean": mean, "median": mean, "min": mean - 10, "max": mean + 10} if ran else None,
        "flash_bytes": flash,
        "ram_bytes": ram,
        "commands": {
            "firmware_gen": ["python", "-m", "firmware_gen", "--model", "a b.tflite"],
            "emulator": ["python", "-m", "emulator"],
        },
    }


def _results() -> dict:
    boards = [
        {"name": "stm32f411re", "core": "cortex-m4", "flash_bytes": 512 * 1024, "ram_bytes": 128 * 1024},
        {"name": "stm32f030f4", "core": "cortex-m0", "flash_bytes": 16 * 1024, "ram_bytes": 4 * 1024},
    ]
    runs = [
        _entry("ResNet-8 (TFLite-Micro)", "cortex-m4", mean=30e6, flash=203_812, ram=59_312),
        _entry("BNN", "cortex-m4", mean=3e6, flash=84_844, ram=200_000),
        _entry("ResNet-8 (TFLite-Micro)", "cortex-m0", ran=False, flash=None, ram=None),
        _entry("BNN", "cortex-m0", mean=9e6, flash=15_000, ram=3_000),
    ]
    runs[0]["agreement"]["interpreter"]["gate"] = {"passed": False, "min_agreement": 99.9}
    add_fits(runs, boards)
    add_ratios(runs, "ResNet-8 (TFLite-Micro)")
    return {
        "version": "0.1.0",
        "machine": {"git": {"commit": "0123456789abcdef", "dirty": False}, "date": "d", "cpu": "c", "cpu_count": 2, "tools": {}},
        "data": {
            "source": "cifar.npz",
            "sha256": {"cifar.npz": "f" * 64},
            "example_shape": [32, 32, 3],
            "dtype": "uint8",
            "num_classes": 10,
        },
        "images": 10,
        "test_images": 10_000,
        "cores": ["cortex-m4", "cortex-m0"],
        "boards": boards,
        "baseline": "ResNet-8 (TFLite-Micro)",
        "runs": runs,
    }


def test_boards_and_ratios():
    results = _results()
    m4_tflm, m4_bnn, m0_tflm, m0_bnn = results["runs"]
    assert list(m4_bnn["fits"]) == ["stm32f411re"] and list(m0_bnn["fits"]) == ["stm32f030f4"]
    assert m4_bnn["fits"]["stm32f411re"]["ok"] is False and m4_bnn["fits"]["stm32f411re"]["ram"]["over"] == 200_000 - 131_072
    assert m0_bnn["fits"]["stm32f030f4"]["ok"] is True and m0_tflm["fits"]["stm32f030f4"]["ok"] is None
    assert m4_bnn["ratios"] == pytest.approx(
        {
            "baseline": "ResNet-8 (TFLite-Micro)",
            "instructions": 0.1,
            "flash": 84_844 / 203_812,
            "ram": 200_000 / 59_312,
            "accuracy_points": 0.0,
        }
    )
    assert m4_tflm["ratios"]["instructions"] == 1.0
    assert m0_bnn["ratios"]["instructions"] is None and m0_bnn["ratios"]["flash"] is None  # the baseline did not run there
    assert ratios({"label": "x", "accuracy": 0.5}, {"label": "b", "accuracy": 0.75})["accuracy_points"] == pytest.approx(-25.0)
    add_ratios(results["runs"], None)
    assert all(entry["ratios"] is None for entry in results["runs"])
    assert board_verdicts({"core": "cortex-m7", "flash_bytes": 1, "ram_bytes": 1}, results["boards"]) == {}


def test_cells():
    assert ratio_cell(0.228) == "0.228 (4.39x fewer)" and ratio_cell(2.0) == "2.000 (2.00x more)"
    assert ratio_cell(0.0429, "less") == "0.043 (23.3x less)" and ratio_cell(0.987) == "0.987 (1.01x fewer)"
    assert ratio_cell(1.0) == "1.000" and ratio_cell(None) == "-"
    assert board_cell(None) == "-"
    verdict = {"ok": False, "flash": {"ok": True, "over": -5}, "ram": {"ok": False, "over": 1024}}
    assert board_cell(verdict) == "no (RAM +1,024 B)"
    assert (
        board_cell({"ok": True, "flash": {"ok": True, "over": -5}, "ram": {"ok": True, "over": -1024}})
        == "yes (5 B flash, 1,024 B RAM free)"
    )


def test_markdown_has_a_table_per_core_with_boards_ratios_notes_and_commands():
    text = render_markdown(_results())
    assert "the first 10 of its 10,000 test examples" in text and "sha256 cifar.npz ffffffffffff" in text
    m4, m0 = text.index("## cortex-m4 (QEMU mps2-an386)"), text.index("## cortex-m0 (QEMU microbit)")
    assert m4 < m0
    assert "stm32f411re (512 KiB / 128 KiB) |" in text[m4:m0] and "stm32f030f4" not in text[m4:m0]
    assert (
        "| BNN | bnn engine | 80.00 % | 100.00 % (LCE interpreter) | 90.00 % | 3,000,000 | 3,000,000 | 2,999,990 .. 3,000,010 |"
        in text
    )
    assert "| 84,844 B | 200,000 B | no (RAM +68,928 B) |" in text
    assert "| BNN | 0.100 (10.0x fewer) | 0.416 (2.40x less) | 3.372 (3.37x more) | +0.00 |" in text
    assert "| ResNet-8 (TFLite-Micro) | bnn engine | not run |" in text[m0:]
    assert "- ResNet-8 (TFLite-Micro) on cortex-m0: not run: does not fit QEMU microbit" in text
    assert "**below the bar**" in text and "fewer images than the emulator's bar (99.9 %)" in text
    assert "python -m firmware_gen --model 'a b.tflite'" in text and text.endswith("```\n")


def test_plot_has_a_point_per_run_that_ran():
    results = _results()
    points = plot_points(results["runs"])
    assert [(p["label"], p["core"]) for p in points] == [
        ("ResNet-8 (TFLite-Micro)", "cortex-m4"),
        ("BNN", "cortex-m4"),
        ("BNN", "cortex-m0"),
    ]
    png = side_by_side_png(results["runs"], "synthetic")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    with pytest.raises(ValueError, match="nothing to plot"):
        side_by_side_png([results["runs"][2]], "none ran")


# --- one real run ---------------------------------------------------------------------------------------


@pytest.mark.toolchain
def test_two_rows_on_the_cortex_m4(tmp_path, emulator_artifacts, mnist_path):
    """The tiny BCNN (bnn engine, with its Keras model) beside the tiny int8 CNN (TFLite-Micro + CMSIS-NN)."""
    from firmware_gen.tflm_build import sources_available

    require_toolchain("arm-none-eabi-g++", "arm-none-eabi-ar", "git")
    if not sources_available():
        pytest.fail("TFLite-Micro sources not found: ../shared/vendor (or $TFLM_VENDOR, $TFLM_DIR) is needed")
    bnn, tflm = "tiny BCNN (bnn engine)", "tiny CNN int8 (TFLite-Micro + CMSIS-NN)"
    out = tmp_path / "out"
    result = run_module(
        "bench.side_by_side",
        "--data", mnist_path,
        "--row", f"{bnn}={emulator_artifacts / 'bcnn.lce.tflite'}:bnn",
        "--row", f"{tflm}={emulator_artifacts / 'cnn.int8.tflite'}:tflm:cmsis_nn",
        "--reference", f"{bnn}={emulator_artifacts / 'bcnn.h5'}",
        "--baseline", tflm,
        "--cores", "cortex-m4",
        "--boards", "stm32f411re",
        "--images", "12",
        "--jobs", "2",
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sum(" on cortex-m4: " in line and "instructions/inference" in line for line in lines) == 2  # a line per run
    results = json.loads((out / "side_by_side.json").read_text())
    assert (results["images"], results["cores"], results["baseline"]) == (12, ["cortex-m4"], tflm)
    assert [row["label"] for row in results["rows"]] == [bnn, tflm] and results["rows"][0]["keras"]["path"].endswith("bcnn.h5")
    assert results["machine"]["git"]["commit"] and results["data"]["sha256"] and results["data"]["example_shape"] == [28, 28]
    runs = {entry["label"]: entry for entry in results["runs"]}
    for label, interpreter in ((bnn, "lce"), (tflm, "tflm")):
        entry = runs[label]
        report = json.loads(Path(entry["report"]).read_text())
        assert entry["ran"] and entry["images"] == report["images"] == 12
        assert entry["accuracy"] == report["accuracy"] and entry["flash_bytes"] == report["flash_bytes"] > 0
        assert entry["ram_bytes"] == report["ram_bytes"] > 0
        assert entry["agreement"]["interpreter"]["backend"] == interpreter
        assert entry["agreement"]["interpreter"]["agreement"] == 1.0  # both replay their interpreter's arithmetic
        stats = entry["instructions"]
        assert 0 < stats["min"] <= stats["median"] <= stats["max"] and stats["min"] <= stats["mean"] <= stats["max"]
        assert stats["mean"] == report["instructions_per_inference"]
        assert entry["fits"]["stm32f411re"]["ok"] is True
        assert entry["commands"]["emulator"][:4] == ["python", "-m", "emulator", entry["firmware"]]
    keras = runs[bnn]["agreement"]["keras"]
    assert keras["agreeing"] == round(12 * keras["agreement"]) and keras["agreement"] >= 0.9
    assert runs[tflm]["agreement"]["keras"] is None
    assert runs[bnn]["ratios"]["instructions"] == pytest.approx(
        runs[bnn]["instructions"]["mean"] / runs[tflm]["instructions"]["mean"]
    )
    assert results["tflm_libraries"][0]["core"] == "cortex-m4" and results["tflm_libraries"][0]["kernels"] == "cmsis_nn"
    markdown = (out / "SIDE_BY_SIDE.md").read_text()
    assert "## cortex-m4 (QEMU mps2-an386)" in markdown and f"Against **{tflm}**" in markdown
    assert (out / "side_by_side.png").read_bytes().startswith(b"\x89PNG")
