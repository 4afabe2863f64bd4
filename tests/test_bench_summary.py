"""bench.summary, bench.tables and bench.plot on small hand-made results (no model runs)."""

from __future__ import annotations

import copy
import json

import pytest

from bench.measure import ROW_LABELS, make_row
from bench.plot import accuracy_vs_flash_png, plot_points
from bench.run import DEFAULT_TFLM_IMAGES
from bench.summary import (
    BUDGET_SECONDS,
    MIN_VERDICT_IMAGES,
    acceptance,
    add_ratios,
    board_rows,
    deployables,
    equal_accuracy,
    find_row,
)
from bench.tables import fmt_bytes, fmt_pct, fmt_ratio, fmt_us, markdown_table, ratio_line, render_markdown
from firmware_gen.targets import Board


def _rows() -> list[dict]:
    """A fake run: numbers chosen so every ratio is easy to check by hand."""
    labels = [0, 1, 2, 3]
    ref = [0, 1, 2, 0]
    return [
        make_row("bcnn", "keras", artifact="bcnn.h5", predictions=[0, 1, 2, 0], labels=labels, reference=ref),
        make_row(
            "bcnn", "lce", artifact="bcnn.lce.tflite", predictions=[0, 1, 2, 0], labels=labels, reference=ref,
            latency_us_median=300.0, model_bytes=160_000, ram_bytes=100_000, ram_source="planner",
        ),
        make_row(
            "bcnn", "bnn-host", artifact="bcnn.lce.tflite", predictions=[0, 1, 2, 0], labels=labels, reference=ref,
            latency_us_median=10.0, model_bytes=12_000, firmware_flash_bytes=14_000, ram_bytes=1_100,
        ),
        make_row(
            "bcnn", "bnn-host-portable", artifact="bcnn.lce.tflite", predictions=[0, 1, 2, 0], labels=labels,
            reference=ref, latency_us_median=60.0, model_bytes=12_000, firmware_flash_bytes=13_000, ram_bytes=1_100,
        ),
        make_row(
            "bcnn", "bnn-qemu", artifact="bcnn.lce.tflite", predictions=[0, 1, 2, 3], labels=labels, reference=ref,
            model_bytes=12_000, firmware_flash_bytes=15_000, ram_bytes=1_000, instructions_per_inference=1.5e6,
            runs_on="QEMU mps2-an386",
        ),
        make_row("bcnn", "tflm", artifact="bcnn.tflite", model_bytes=380_000, note="cannot run: no SIGN kernel"),
        make_row(
            "cnn", "tflite-int8", artifact="cnn.int8.tflite", predictions=[0, 1, 2, 3], labels=labels, reference=ref,
            latency_us_median=30.0, model_bytes=96_000,
        ),
        make_row(
            "cnn", "tflm-int8", artifact="cnn.int8.tflite", predictions=[0, 1, 2, 3], labels=labels, reference=ref,
            latency_us_median=2000.0, model_bytes=96_000, ram_bytes=30_000, ram_source="tflm-arena",
        ),
    ]  # fmt: skip


CORES_RUN = [
    {"core": "cortex-m0", "firmware_flash_bytes": 15_500, "ram_bytes": 1_000},
    {"core": "cortex-m4", "firmware_flash_bytes": 15_000, "ram_bytes": 1_000},
]


def test_make_row_computes_accuracy_and_agreement_and_rejects_unknown_figures():
    row = make_row("m", "tflite", artifact="x", predictions=[1, 2, 3, 4], labels=[1, 2, 0, 0], reference=[1, 0, 3, 4])
    assert row["images"] == 4 and row["accuracy"] == 0.5 and row["agreement_keras"] == 0.75
    assert row["label"] == ROW_LABELS["tflite"] and row["latency_us_median"] is None
    skipped = make_row("m", "tflm", artifact=None, note="why")
    assert skipped["accuracy"] is None and skipped["images"] == 0 and skipped["note"] == "why"
    with pytest.raises(ValueError, match="latency_ms"):
        make_row("m", "tflite", artifact="x", latency_ms=3)


def test_ratios_are_relative_to_the_generated_c_of_the_same_run():
    rows = _rows()
    assert add_ratios(rows) == 10.0
    assert find_row(rows, "bcnn", "lce")["latency_vs_c"] == 30.0
    assert find_row(rows, "cnn", "tflm-int8")["latency_vs_c"] == 200.0
    assert find_row(rows, "bcnn", "bnn-host")["latency_vs_c"] == 1.0
    assert find_row(rows, "bcnn", "bnn-host-portable")["latency_vs_c"] == 6.0
    assert find_row(rows, "bcnn", "keras")["latency_vs_c"] is None
    without_c = [row for row in _rows() if row["engine"] != "bnn-host"]
    assert add_ratios(without_c) is None
    assert all(row["latency_vs_c"] is None for row in without_c)


def test_acceptance_figures_and_verdicts():
    rows = _rows()
    acc = acceptance(rows, 100.0)
    assert acc["runtime"] == {"seconds": 100.0, "budget_seconds": BUDGET_SECONDS, "ok": True}
    assert acc["c_vs_lce"]["ratio"] == 30.0 and acc["c_vs_lce"]["ok"] is True
    assert acc["c_vs_lce"]["ratio_portable"] == 5.0  # reported beside it, not judged
    assert acc["model_data"]["ratio"] == 8.0 and acc["model_data"]["ok"] is True  # 96,000 / 12,000: exactly the bar
    assert acc["model_data"]["bnn_firmware_flash_bytes"] == 15_000
    assert acc["ram"]["ratio"] == 30.0 and acc["ram"]["ok"] is True
    slow = copy.deepcopy(rows)
    find_row(slow, "bcnn", "bnn-host")["latency_us_median"] = 20.0  # 300 / 20 = 15x < 20x
    assert acceptance(slow, BUDGET_SECONDS + 1.0)["c_vs_lce"]["ok"] is False
    assert acceptance(slow, BUDGET_SECONDS + 1.0)["runtime"]["ok"] is False
    partial = acceptance([row for row in rows if row["model"] != "cnn"], None)
    assert partial["model_data"]["ok"] is None and partial["ram"]["ok"] is None and partial["runtime"]["ok"] is None


def test_deployables_and_board_margins():
    items = deployables(_rows(), CORES_RUN)
    assert [(i["model"], i["engine"]) for i in items] == [("bcnn", "bnn"), ("cnn", "tflm-int8")]  # bcnn tflm did not run
    boards = [
        Board("tiny", "a small part", "cortex-m0", 16 * 1024, 4 * 1024),
        Board("mid", "a mid part", "cortex-m3", 64 * 1024, 20 * 1024),
        Board("big", "a big part", "cortex-m4", 512 * 1024, 128 * 1024),
    ]
    table = {(r["board"], r["engine"]): r for r in board_rows(items, boards)}
    tiny = table["tiny", "bnn"]
    assert (tiny["flash_need"], tiny["flash_margin"], tiny["ram_margin"], tiny["fits"]) == (15_500, 16_384 - 15_500, 3_096, True)
    assert table["tiny", "tflm-int8"]["fits"] is False
    assert table["tiny", "tflm-int8"]["flash_margin"] == 16_384 - 96_000
    assert table["mid", "bnn"]["fits"] is None and table["mid", "bnn"]["flash_need"] is None  # m3 not measured
    assert table["mid", "tflm-int8"]["fits"] is False  # flash over even though RAM fits
    assert table["big", "bnn"]["flash_need"] == 15_000 and table["big", "tflm-int8"]["fits"] is True


def _results() -> dict:
    rows = _rows()
    add_ratios(rows)
    items = deployables(rows, CORES_RUN)
    return {
        "machine": {
            "date": "2026-01-01T00:00:00+00:00",
            "git": {"commit": "abc123", "dirty": False},
            "cpu": "Test CPU",
            "cpu_count": 2,
            "platform": "Linux",
            "python": "3.11",
            "packages": {"tensorflow": "2.16.2"},
            "tools": {"gcc": "gcc 12"},
        },
        "load_average": {"start": [0.1, 0.1, 0.1], "end": [0.2, 0.2, 0.2]},
        "data": {"source": "/data/mnist"},
        "images": 4,
        "qemu_images": 4,
        "core_images": 4,
        "runs": rows,
        "c_latency_us": 10.0,
        "cores": [
            {
                "core": "cortex-m4",
                "qemu_machine": "mps2-an386",
                "images": 4,
                "instructions": {"mean": 1_500_000.4, "median": 1_499_999.0, "min": 1_400_000.0, "max": 1_600_000.0},
                "firmware_flash_bytes": 15_000,
                "ram_bytes": 1_000,
                "accuracy": 0.75,
                "agreement_host": 1.0,
                "popcount": "swar",
            }
        ],
        "boards": board_rows(items, [Board("tiny", "a small part", "cortex-m0", 16 * 1024, 4 * 1024)]),
        "models": {
            "bcnn": {
                "recipe": "seed",
                "epochs": 6,
                "h5_sha256": "f" * 64,
                "trained_this_run": False,
                "converted_this_run": True,
                "flatbuffers": {"lce": {"bytes": 160_000}},
            }
        },
        "seconds": {"prepare": 1.0, "total": 100.0},
        "acceptance": acceptance(rows, 100.0),
        "notes": ["a computed note"],
    }


def test_render_markdown_shows_the_results_figures():
    results = _results()
    text = render_markdown(results)
    assert json.loads(json.dumps(results, allow_nan=False)) == results  # the same dict is JSON-ready as it is
    for heading in ("## Acceptance", "## Accuracy and host latency", "## Flash and RAM", "## Instructions per inference"):
        assert heading in text
    assert "300.0 us / 10.0 us = 30.0x (portable build: 60.0 us, 5.00x)" in text  # LCE vs generated C
    assert "96,000 B / 12,000 B = 8.00x" in text and "15,000 B" in text
    assert "30,000 B / 1,000 B = 30.0x" in text
    assert "| cortex-m4 | mps2-an386 | 4 | 1,500,000 | 1,499,999 | 1,400,000 .. 1,600,000 |" in text
    assert "tiny (cortex-m0, 16 KiB / 4 KiB)" in text and "**no**" in text and "fits (+0.9 / +3.0)" in text
    assert "cannot run: no SIGN kernel" in text and "- a computed note" in text
    assert "(1,500,000 instructions/inference)" in text
    assert text.count("| does NOT hold |") == 0 and text.count("| holds |") == 4
    assert "## On the core" not in text  # no TFLite-Micro firmware ran
    assert text.endswith("\n") and "accuracy_vs_flash.png" in text


def test_markdown_table_and_formatters():
    table = markdown_table(("a", "b"), [(1, "x|y")], "lr")
    assert table.splitlines() == ["| a | b |", "|---|---:|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError):
        markdown_table(("a", "b"), [(1,)])
    with pytest.raises(ValueError):
        markdown_table(("a", "b"), [], "l")
    assert (fmt_bytes(12164), fmt_bytes(None)) == ("12,164", "—")
    assert (fmt_pct(0.9793), fmt_pct(None)) == ("97.93%", "—")
    assert (fmt_us(1933.9), fmt_us(54.31), fmt_us(2.591)) == ("1,934", "54.3", "2.59")
    assert (fmt_ratio(26.04), fmt_ratio(3.517)) == ("26.0x", "3.52x")


def test_plot_points_and_png():
    rows = _rows()
    points = plot_points(rows)
    engines = [(p["engine"], p["hollow"], p["bytes"]) for p in points]
    assert ("bnn-qemu", False, 12_000) in engines and ("bnn-qemu", True, 15_000) in engines
    assert all(p["engine"] not in ("keras", "tflm") for p in points)  # no flash figure / did not run
    png = accuracy_vs_flash_png(rows, "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with pytest.raises(ValueError, match="nothing to plot"):
        accuracy_vs_flash_png([rows[0]], "empty")


def _oncore(core: str, kernels: str, fmt: str = "int8", model: str = "cnn", **figures) -> dict:
    entry = {
        "model": model,
        "format": fmt,
        "engine": f"tflm-{kernels}",
        "label": f"TFLM {kernels}",
        "kernels": kernels,
        "core": core,
        "qemu_machine": "mps2-an386",
        "images": 4,
        "ran": True,
        "note": None,
        "accuracy": 0.75,
        "agreement_tflm_python": 1.0,
        "agreement_keras": 0.75,
        "instructions": {"mean": 15e6, "median": 15e6, "min": 14e6, "max": 16e6},
        "instructions_per_inference": 15e6,
        "firmware_flash_bytes": 150_000,
        "ram_bytes": 40_000,
        "static_ram_bytes": 38_000,
        "stack_bytes": 2_000,
        "arena_bytes": 33_000,
        "model_bytes": 96_000,
        "seconds": 3.0,
    }
    entry.update(figures)
    return entry


def test_tflm_agreement_and_the_ratio_line():
    rows = _rows()
    oncore = [
        _oncore("cortex-m4", "cmsis_nn"),
        _oncore("cortex-m4", "reference", instructions_per_inference=60e6),
        _oncore("cortex-m0", "cmsis_nn", ran=False, note="does not fit", accuracy=None, agreement_tflm_python=None),
    ]
    agreement = acceptance(rows, 1.0, oncore, 0.5)["tflm_agreement"]
    assert agreement == {
        "runs": 2,
        "exact": 2,
        "images": 4,
        "differ": [],
        "not_run": ["cnn.int8 cortex-m0 cmsis_nn: does not fit"],
        "ok": True,
    }
    oncore[1]["agreement_tflm_python"] = 0.75
    assert acceptance(rows, 1.0, oncore)["tflm_agreement"]["differ"] == ["cnn.int8 cortex-m4 reference"]
    assert acceptance(rows, 1.0)["tflm_agreement"]["ok"] is None
    versus = acceptance(rows, 1.0, oncore, 0.5)["bnn_vs_tflm"]
    # bnn-qemu row: 1.5 M instructions, 15,000 B flash, 1,000 B RAM; TFLM + CMSIS-NN: 15 M, 150,000 B, 40,000 B.
    assert versus["ratios"] == {"instructions": 10.0, "flash": 10.0, "ram": 40.0}
    assert versus["bnn"]["accuracy"] == 0.5 and versus["tflm"]["accuracy"] == 0.75 and versus["images"] == 4
    assert versus["accuracy"]["equal"] is None  # 4 images: no verdict
    assert acceptance(rows, 1.0, [e for e in oncore if e["kernels"] != "cmsis_nn"])["bnn_vs_tflm"]["ratios"]["flash"] is None


def test_oncore_table_ratio_line_and_boards():
    results = _results()
    oncore = [
        _oncore("cortex-m4", "cmsis_nn"),
        _oncore(
            "cortex-m0",
            "cmsis_nn",
            ran=False,
            note="does not fit QEMU microbit",
            firmware_flash_bytes=300_000,
            ram_bytes=None,
            accuracy=None,
            agreement_tflm_python=None,
            instructions_per_inference=None,
        ),
    ]
    results["oncore"] = oncore
    results["cores"][0]["model"] = "bcnn"
    results["tflm_images"] = 4
    results["tflm_libraries"] = [
        {"core": "cortex-m4", "kernels": "cmsis_nn", "objects": 171, "reused": False, "build_seconds": 95.0}
    ]
    results["acceptance"] = acceptance(_rows(), 100.0, oncore, 0.75)
    items = deployables(_rows(), CORES_RUN, oncore)
    firmware = [item for item in items if item["engine"] == "tflm-firmware-int8"]
    assert firmware and firmware[0]["flash"] == {"cortex-m4": 150_000, "cortex-m0": 300_000}
    boards = board_rows(firmware, [Board("tiny", "a small part", "cortex-m0", 16 * 1024, 4 * 1024)])
    assert boards[0]["fits"] is False  # flash alone is over, RAM unknown
    text = render_markdown(results)
    assert "## On the core: bnn engine and TFLite-Micro under QEMU" in text
    assert (
        "| cnn (int8) | TFLM cmsis_nn | cortex-m4 | 4 | 15,000,000 | 150,000 | 40,000 | 75.00% | 100.00% (TFLM Python) |" in text
    )
    assert "does not fit QEMU microbit" in text and "| cortex-m4 | cmsis_nn | 171 | built in 95 s |" in text
    assert "1 of 1 runs agree on every image (at least 4 images each)" in text
    assert "| bcnn (lce) | bnn engine | cortex-m4 | 4 | 1,500,000 | 15,000 | 1,000 | 75.00% | 100.00% (host C) |" in text
    assert (
        "instructions 1,500,000 vs 15,000,000 = 10.0x; flash 15,000 vs 150,000 B = 10.0x; RAM 1,000 vs 40,000 B = 40.0x" in text
    )
    assert (
        "accuracy bnn vs TFLite-Micro on the same first 4 images: equal accuracy not established: 75.00% vs 75.00% "
        "on 4 images, fewer than the 1,000 a verdict needs | accuracies within 1 SE on >= 1,000 images | not established |"
    ) in text
    assert "TFLite-Micro firmware on QEMU: 4 images each" in text


def test_a_model_trained_with_another_recipe_than_its_default_is_noted():
    from bench.run import _notes

    results = _results()  # its bcnn: the seed recipe, 6 epochs
    assert (
        "bcnn was trained with the seed recipe, not its default fast: its figures are not those of the model "
        "python -m train gives."
    ) in _notes(results)
    results["models"]["bcnn"]["recipe"] = "fast"
    assert not [note for note in _notes(results) if "recipe" in note]


def test_equal_accuracy_within_one_standard_error_of_the_mean_accuracy():
    # SE = sqrt(p (1 - p) / n) at the mean p of the two: 99.05 % on 1,000 images -> 0.31 points.
    equal = equal_accuracy(0.990, 0.991, 1000)
    assert equal["equal"] is True and equal["images"] == 1000
    assert equal["standard_error_points"] == pytest.approx(100 * (0.9905 * 0.0095 / 1000) ** 0.5)
    assert equal["difference_points"] == pytest.approx(0.1)
    assert equal["text"] == "at equal accuracy: 99.00% vs 99.10% (difference 0.10 points <= SE 0.31 points on 1,000 images)"
    assert equal_accuracy(0.988, 0.991, 1000)["equal"] is True  # 0.30 points <= SE 0.32
    assert equal_accuracy(0.987, 0.991, 1000)["equal"] is False  # 0.40 points > SE 0.33
    assert equal_accuracy(0.991, 0.987, 1000)["equal"] is False  # the order does not matter
    assert equal_accuracy(0.989, 0.991, 10_000)["equal"] is False  # 0.20 > SE 0.10 on 10,000 images
    apart = equal_accuracy(0.938, 0.991, 1000)
    assert apart["equal"] is False
    assert apart["text"] == ("not at equal accuracy: 93.80% vs 99.10% (difference 5.30 points > SE 0.59 points on 1,000 images)")
    assert equal_accuracy(1.0, 1.0, 1000)["equal"] is True  # SE 0, no difference
    few = equal_accuracy(0.990, 0.991, MIN_VERDICT_IMAGES - 1)
    assert few["equal"] is None and few["text"].startswith("equal accuracy not established: 99.00% vs 99.10% on 999 images")
    for missing in (equal_accuracy(None, 0.991, 1000), equal_accuracy(0.99, 0.991, None)):
        assert missing["equal"] is None and missing["text"].startswith("equal accuracy not established")
    assert DEFAULT_TFLM_IMAGES >= MIN_VERDICT_IMAGES  # the default on-core run is enough for a verdict


def _versus_results(bnn_accuracy: float, tflm_accuracy: float, images: int = 1000) -> dict:
    results = _results()
    oncore = [_oncore("cortex-m4", "cmsis_nn", images=images, accuracy=tflm_accuracy)]
    results["oncore"] = oncore
    results["cores"][0]["model"] = "bcnn"
    results["tflm_images"] = images
    results["acceptance"] = acceptance(_rows(), 100.0, oncore, bnn_accuracy, {"bcnn": "seed", "cnn": "seed"})
    return results


def test_the_ratio_line_says_the_accuracies_are_not_equal():
    """The issue's run: a 6-epoch bcnn at 93.80 % against the int8 cnn at 99.10 % on the same 1,000 images."""
    results = _versus_results(0.938, 0.991)
    line = ratio_line(results["acceptance"]["bnn_vs_tflm"])
    assert line.startswith(
        "bnn engine (bcnn, seed recipe) vs TFLite-Micro + CMSIS-NN (cnn.int8, seed recipe) on cortex-m4: TFLite-Micro / bnn: "
        "instructions 1,500,000 vs 15,000,000 = 10.0x;"
    )
    assert line.endswith(
        "accuracy bnn vs TFLite-Micro on the same first 1,000 images: not at equal accuracy: 93.80% vs 99.10% "
        "(difference 5.30 points > SE 0.59 points on 1,000 images)"
    )
    text = render_markdown(results)
    assert f"| {line.split(': TFLite-Micro / bnn: ')[1]} |" in text  # the acceptance table has the same line
    assert "| accuracies within 1 SE on >= 1,000 images | NOT at equal accuracy |" in text
    assert "SE = sqrt(p (1 - p) / n), p the mean of the two, n the images" in text
    assert results["acceptance"]["bnn_vs_tflm"]["accuracy"]["equal"] is False


def test_the_ratio_line_says_the_accuracies_are_equal():
    results = _versus_results(0.990, 0.991)
    line = ratio_line(results["acceptance"]["bnn_vs_tflm"])
    assert "not at equal accuracy" not in line
    assert line.endswith(
        "on the same first 1,000 images: at equal accuracy: 99.00% vs 99.10% "
        "(difference 0.10 points <= SE 0.31 points on 1,000 images)"
    )
    text = render_markdown(results)
    assert "| accuracies within 1 SE on >= 1,000 images | at equal accuracy |" in text
    assert "NOT at equal accuracy" not in text and "not at equal accuracy" not in text
    fewer = _versus_results(0.990, 0.991, images=500)
    assert "equal accuracy not established: 99.00% vs 99.10% on 500 images" in ratio_line(fewer["acceptance"]["bnn_vs_tflm"])
    unknown = acceptance(_rows(), 100.0, [_oncore("cortex-m4", "cmsis_nn", images=1000)], 0.99)["bnn_vs_tflm"]
    assert "(bcnn, recipe unknown) vs TFLite-Micro + CMSIS-NN (cnn.int8, recipe unknown)" in ratio_line(unknown)
