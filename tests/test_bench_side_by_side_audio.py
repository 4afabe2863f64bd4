"""python -m bench.side_by_side on an audio dataset: split instructions per clip, the features' check, Keras on features.

* Tables, ratios and the plot from a synthetic audio result (no QEMU): the front end, network and
  total columns, the features column and its note, the network's ratio.
* Refusals before any build (one line, exit 2): a flatbuffer without the dataset's front end, one
  whose front end is another, one with a front end on a dataset without raw clips.
* One real run (QEMU): the narrow keyword BNN of the ``kws_audio`` fixture under the bnn engine on
  the Cortex-M0, fed the first raw test clips, with its Keras model (run on Python's features) as
  the reference; every audio figure is checked against the emulator's report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import require_toolchain, run_module, stderr_lines

from bench.side_by_side.cli import main
from bench.side_by_side.plot import side_by_side_png
from bench.side_by_side.summary import add_fits, add_ratios
from bench.side_by_side.tables import features_cell, render_markdown
from pipeline.errors import InputError

PROG = "python -m bench.side_by_side"
FRONTEND = {"sample_rate": 8000, "clip_samples": 8000, "frame_length": 256, "hop": 128, "channels": 20}


# --- tables, ratios and plot from a synthetic audio result ------------------------------------------


def _entry(label: str, *, frontend: float, network: float, equal: bool = True, ran: bool = True) -> dict:
    total = frontend + network
    return {
        "label": label,
        "core": "cortex-m0",
        "qemu_machine": "microbit",
        "engine": "bnn",
        "kernels": None,
        "deployment": "bnn engine",
        "ran": ran,
        "note": None if ran else "does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by 1,024 bytes",
        "accuracy": 0.75 if ran else None,
        "images": 12 if ran else None,
        "agreement": {
            "interpreter": {"backend": "lce", "agreement": 1.0, "gate": {"passed": True}} if ran else None,
            "keras": {"agreement": 1.0, "agreeing": 12, "path": "k.h5"} if ran else None,
        },
        "instructions": {"mean": total, "median": total, "min": total - 5, "max": total + 5} if ran else None,
        "instructions_per_clip": {"frontend": frontend, "network": network, "total": total} if ran else None,
        "features": (
            {"equal": equal, "clips": 12, "clips_equal": 12 if equal else 9, "differ": [] if equal else [2, 5, 7]}
            if ran
            else None
        ),
        "flash_bytes": 6_000,
        "ram_bytes": 1_800,
        "commands": {"firmware_gen": ["python", "-m", "firmware_gen"], "emulator": ["python", "-m", "emulator"]},
    }


def _results() -> dict:
    boards = [{"name": "stm32f030f4", "core": "cortex-m0", "flash_bytes": 16 * 1024, "ram_bytes": 4 * 1024}]
    runs = [
        _entry("DS-CNN int8", frontend=500_000, network=4_000_000),
        _entry("kws BNN", frontend=500_000, network=1_000_000, equal=False),
        _entry("too big", frontend=0, network=0, ran=False),
    ]
    add_fits(runs, boards)
    add_ratios(runs, "DS-CNN int8")
    return {
        "version": "0.1.0",
        "machine": {"git": {"commit": "0123456789abcdef"}, "date": "d", "cpu": "c", "cpu_count": 2, "tools": {}},
        "data": {
            "source": "datasets/fsdd.json",
            "sha256": {"fsdd.json": "e" * 64},
            "example_shape": [61, 20],
            "dtype": "uint8",
            "num_classes": 10,
            "frontend": FRONTEND,
        },
        "images": 12,
        "test_images": 300,
        "cores": ["cortex-m0"],
        "boards": boards,
        "baseline": "DS-CNN int8",
        "runs": runs,
    }


def test_audio_tables_split_the_instructions_per_clip_and_show_the_features_check():
    results = _results()
    text = render_markdown(results)
    assert "raw 16-bit clips of 8,000 samples at 8,000 Hz" in text and "the first 12 of its 300 test clips" in text
    header = next(line for line in text.splitlines() if line.startswith("| row | deployment"))
    assert "| features equal to Python's | front end (instructions / clip) | network | total | total min .. max |" in header
    assert "instructions / inference" not in header
    assert "| yes (12 of 12 clips) | 500,000 | 4,000,000 | 4,500,000 | 4,499,995 .. 4,500,005 |" in text
    assert "| **no** (3 of 12 clips differ) | 500,000 | 1,000,000 | 1,500,000 |" in text
    assert "| row | instructions / clip (total) | network | flash | RAM | accuracy |" in text
    assert "| kws BNN | 0.333 (3.00x fewer) | 0.250 (4.00x fewer) | 1.000 | 1.000 | +0.00 |" in text
    assert "| too big | - | - |" in text
    assert "- kws BNN on cortex-m0: the chip's features differ from Python's on 3 of 12 clips (first: 2, 5, 7)" in text
    assert features_cell(None) == "-"
    bnn = results["runs"][1]
    assert bnn["ratios"]["network_instructions"] == pytest.approx(0.25)
    assert bnn["ratios"]["instructions"] == pytest.approx(1_500_000 / 4_500_000)
    assert side_by_side_png(results["runs"], "audio").startswith(b"\x89PNG")


def _audio_report(equal: int, clips: int = 4) -> dict:
    """An emulator report from raw clips, as ``python -m emulator --backend qemu`` writes it (the fields read)."""
    return {
        "images": clips,
        "correct": 3,
        "accuracy": 0.75,
        "agreement": 1.0,
        "agreeing": clips,
        "reference": {"backend": "lce", "path": "m.lce.tflite"},
        "agreement_gate": {"min_agreement": 99.9, "passed": True},
        "flash_bytes": 6_000,
        "ram_bytes": 1_800,
        "ram_source": "elf",
        "data": {"sha256": {"kws.json": "ab"}},
        "fed": "raw",
        "frontend": {"config_sha256": "cd", "chunks": [128], "clips": clips, "features_equal": equal, "features_differ": [1]},
        "instructions_per_clip": {"frontend": 500.0, "network": 250.0, "total": 750.0},
        "flash_ram": {"deployable": {"flash_bytes": 6_000, "ram_bytes": 1_800}},
        "extra": {
            "predictions": [0, 1, 2, 3][:clips],
            "instructions": {"mean": 750.0, "median": 750.0, "min": 700.0, "max": 800.0},
            "instructions_per_clip": {"total": {"mean": 750.0}},
            "qemu_seconds": 1.0,
        },
    }


def test_features_that_differ_are_recorded_then_fail_the_command(tmp_path, monkeypatch):
    """The emulator's exit 1 for features that differ keeps the run (its report is read), then the command exits 1."""
    import subprocess

    from bench.side_by_side import runs as runs_module
    from bench.side_by_side.cli import _check_features
    from bench.side_by_side.runs import Run, emulate, entry_from_report, features_differ
    from bench.side_by_side.spec import parse_row
    from pipeline.errors import CheckError

    run = Run(parse_row("kws=m.lce.tflite:bnn"), "cortex-m0", tmp_path / "fw", audio=True)
    run.folder.mkdir()
    run.commands = {"emulator": ["python", "-m", "emulator"]}
    report = _audio_report(equal=3)

    def child(command):
        run.report_path.write_text(json.dumps(report))
        error = "python -m emulator: error: the firmware's features differ from Python's on 1 of 4 clips (first: 1)"
        return subprocess.CompletedProcess(command, 1, "", error + "\n")

    monkeypatch.setattr(runs_module, "_run_child", child)
    outcome = emulate(run, data_sha256={"kws.json": "ab"})
    assert outcome["ran"] and features_differ(outcome["report"])
    entry = entry_from_report(run, outcome["report"], {"path": "k.h5", "predictions": [0, 1, 2, 0]})
    assert entry["features"]["equal"] is False and entry["features"]["clips_equal"] == 3
    assert entry["instructions_per_clip"] == {"frontend": 500.0, "network": 250.0, "total": 750.0}
    assert entry["agreement"]["keras"] == {"path": "k.h5", "agreement": 0.75, "agreeing": 3}
    with pytest.raises(CheckError, match=r"features differ from Python's: 'kws' on cortex-m0 on 1 of 4 clips \(first: 1\)"):
        _check_features([entry], tmp_path / "side_by_side.json")
    _check_features([entry_from_report(run, _audio_report(equal=4), None)], tmp_path / "side_by_side.json")

    report = {**_audio_report(equal=4), "fed": "features"}
    with pytest.raises(CheckError, match="was not fed the raw clips"):
        entry_from_report(run, report, None)
    monkeypatch.setattr(
        runs_module, "_run_child", lambda command: subprocess.CompletedProcess(command, 1, "", "python -m emulator: error: x\n")
    )
    with pytest.raises(CheckError, match="exited with 1: python -m emulator: error: x"):
        emulate(run, data_sha256={"kws.json": "ab"})  # no report: a failed stage


# --- refusals before any build ---------------------------------------------------------------------


def _refusal(capsys, *args) -> str:
    status = main([*map(str, args)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), (status, lines)
    return lines[0]


def test_flatbuffers_must_carry_the_datasets_front_end(kws_audio, tmp_path, capsys, monkeypatch):
    from audio_data import CONFIG, write_spec
    from test_convert_frontend import features_npz

    from convert.metadata import FRONTEND_METADATA
    from pipeline.frontend import FrontendConfig

    data = kws_audio["lce"].read_bytes()
    name = FRONTEND_METADATA.encode()
    assert data.count(name) == 1
    bare = tmp_path / "bare.lce.tflite"  # the same model, its front end entry renamed: none left
    bare.write_bytes(data.replace(name, b"x" * len(name)))
    out = tmp_path / "out"
    row = f"kws={kws_audio['lce']}:bnn"
    line = _refusal(capsys, "--row", f"kws={bare}:bnn", "--data", kws_audio["data"], "--out", out)
    assert "carries no audio front end, but the dataset is audio" in line
    npz = features_npz(kws_audio["dataset"], tmp_path / "features.npz")
    line = _refusal(capsys, "--row", row, "--data", npz, "--out", out)
    assert "carries an audio front end" in line and "the dataset has no raw clips" in line
    other = FrontendConfig(**{**CONFIG.to_json(), "log_offset": 9})
    spec = write_spec(Path(kws_audio["data"]).parent / "side-by-side-other.json", other)
    line = _refusal(capsys, "--row", row, "--data", spec, "--out", out)
    assert f"the dataset's front end ({other.sha256()[:12]}) is not the one" in line
    assert not out.exists()

    from bench.side_by_side.cli import _check_flatbuffers
    from bench.side_by_side.spec import parse_row

    no_clips = dataclasses.replace(kws_audio["dataset"], raw_test=None)
    with pytest.raises(InputError, match="the dataset has no raw clips"):
        _check_flatbuffers([parse_row(row)], no_clips)


# --- one real run ------------------------------------------------------------------------------------


@pytest.mark.toolchain
def test_a_clip_firmware_larger_than_the_machine_is_not_run(kws_audio, tmp_path):
    """The clip runner says "does not fit QEMU" as the image runners do, so the run is reported, not a failed stage."""
    import re

    from bench.side_by_side.runs import does_not_fit
    from emulator.clips import run_qemu
    from emulator.qemu import QemuError
    from firmware_gen.cli import main as firmware_gen

    require_toolchain()
    folder = tmp_path / "small-ram"
    assert firmware_gen(["--engine", "bnn", "--target", "cortex-m0", "--model", str(kws_audio["lce"]), "--out", str(folder)]) == 0
    script = folder / "link.ld"  # the machine's RAM cut to 1 KiB: the link overflows
    text, count = re.subn(
        r"(RAM \(rwx\) : ORIGIN = 0x[0-9a-fA-F]+, LENGTH = )0x[0-9a-fA-F]+", r"\g<1>0x00000400", script.read_text()
    )
    assert count == 1
    script.write_text(text)
    with pytest.raises(QemuError) as caught:
        run_qemu(folder, kws_audio["dataset"].raw_test[:1], core="cortex-m0", allow_modified=True)  # link.ld edited
    message = str(caught.value)
    assert (
        message.startswith("small-ram does not fit QEMU microbit (cortex-m0): region `RAM' overflowed by ")
        and "\n" not in message
    )
    assert does_not_fit(f"python -m emulator: error: {message}")


@pytest.mark.toolchain
def test_the_keyword_bnn_from_raw_clips_on_the_cortex_m0(kws_audio, tmp_path):
    """The firmware runs the front end and the network from raw samples; Keras runs on Python's features."""
    require_toolchain()
    label, clips = "kws BNN (bnn engine)", 8
    out = tmp_path / "out"
    result = run_module(
        "bench.side_by_side",
        "--data", kws_audio["data"],
        "--row", f"{label}={kws_audio['lce']}:bnn",
        "--reference", f"{label}={kws_audio['h5']}",
        "--baseline", label,
        "--cores", "cortex-m0",
        "--boards", "stm32f030f4",
        "--images", str(clips),
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not stderr_lines(result) or all("error" not in line for line in stderr_lines(result))
    progress = [line for line in result.stdout.splitlines() if " on cortex-m0: " in line]
    assert len(progress) == 1 and "instructions/clip (front end " in progress[0] and "features equal to Python's" in progress[0]
    results = json.loads((out / "side_by_side.json").read_text())
    assert results["data"]["frontend"] == kws_audio["dataset"].frontend and results["images"] == clips
    assert results["rows"][0]["keras"]["path"] == str(kws_audio["h5"])
    (entry,) = results["runs"]
    report = json.loads(Path(entry["report"]).read_text())
    assert report["fed"] == "raw" and entry["ran"] and entry["images"] == report["images"] == clips

    split = entry["instructions_per_clip"]
    assert split == report["instructions_per_clip"]
    assert split["frontend"] > 0 and split["network"] > 0
    assert split["frontend"] + split["network"] == pytest.approx(split["total"], rel=1e-9)
    assert entry["instructions"]["mean"] == pytest.approx(split["total"]) == report["instructions_per_inference"]
    assert set(entry["instructions_per_clip_statistics"]) == {"frontend", "network", "total"}

    features = entry["features"]
    assert features["equal"] is True and features["clips"] == features["clips_equal"] == clips
    assert features["config_sha256"] == report["frontend"]["config_sha256"]
    assert set(entry["flash_ram"]) == {"deployable", "network", "frontend"}
    assert entry["flash_bytes"] == entry["flash_ram"]["deployable"]["flash_bytes"] == report["flash_bytes"]
    assert entry["fits"]["stm32f030f4"]["ok"] is True

    assert entry["agreement"]["interpreter"]["backend"] == "lce" and entry["agreement"]["interpreter"]["agreement"] == 1.0
    keras = entry["agreement"]["keras"]
    assert keras["path"] == str(kws_audio["h5"]) and keras["agreement"] == 1.0 and keras["agreeing"] == clips
    assert entry["ratios"]["instructions"] == 1.0 and entry["ratios"]["network_instructions"] == 1.0

    markdown = (out / "SIDE_BY_SIDE.md").read_text()
    assert "| features equal to Python's | front end (instructions / clip) | network | total |" in markdown
    assert f"| yes ({clips} of {clips} clips) | {split['frontend']:,.0f} | {split['network']:,.0f} | {split['total']:,.0f} |" in (
        markdown
    )
    assert (out / "side_by_side.png").read_bytes().startswith(b"\x89PNG")
