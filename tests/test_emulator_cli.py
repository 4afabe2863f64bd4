"""python -m emulator: backends, reference agreement, RAM figures, JSON, datasets and bad input."""

from __future__ import annotations

import gzip
import json
import re
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, run_module, stderr_lines

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from emulator.backend_result import BackendRun
from emulator.cli import main
from pipeline.artifacts import sha256_file

LIMIT = "200"


def emulate(*args: str | Path) -> int:
    """Run the CLI in-process (same edge as ``python -m emulator``; no TensorFlow start-up per call)."""
    return main([str(a) for a in args])


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_lce_flatbuffer_agrees_with_its_h5(emulator_artifacts: Path, tmp_path: Path) -> None:
    out_lce, out_h5 = tmp_path / "lce.json", tmp_path / "h5.json"
    assert emulate(emulator_artifacts / "bcnn.lce.tflite", "--limit", LIMIT, "--json", out_lce) == 0
    assert emulate(emulator_artifacts / "bcnn.h5", "--limit", LIMIT, "--json", out_h5) == 0
    lce, keras = load(out_lce), load(out_h5)
    assert lce["backend"] == "lce" and keras["backend"] == "keras"
    assert lce["reference"]["path"] == str(emulator_artifacts / "bcnn.h5")
    assert lce["reference"]["accuracy"] == keras["accuracy"]
    assert lce["agreement"] >= 0.99
    assert abs(lce["accuracy"] - keras["accuracy"]) <= 0.01
    assert lce["ram_source"] == "planner" and lce["ram_bytes"] == lce["planner_bytes"] > 0
    assert lce["flash_bytes"] == (emulator_artifacts / "bcnn.lce.tflite").stat().st_size
    assert keras["agreement"] is None and keras["reference"] is None
    assert keras["flash_bytes"] is None and keras["ram_bytes"] is None
    required = {"model", "sha256", "backend", "images", "accuracy", "agreement", "flash_bytes", "ram_bytes",
                "ram_source", "instructions_per_inference", "budget", "version"}  # fmt: skip
    assert required <= set(lce) and required <= set(keras)
    assert lce["sha256"] == sha256_file(emulator_artifacts / "bcnn.lce.tflite")
    assert lce["images"] == int(LIMIT) and lce["instructions_per_inference"] is None
    assert lce["budget"]["ok"] is None  # no budget given: nothing judged


def test_float_model_tflm_equals_tflite(emulator_artifacts: Path, tmp_path: Path) -> None:
    out = tmp_path / "cnn.json"
    assert emulate(emulator_artifacts / "cnn.tflite", "--limit", LIMIT, "--json", out) == 0
    report = load(out)
    assert report["backend"] == "tflite"
    assert report["tflm"]["accuracy"] == report["accuracy"]
    assert report["tflm"]["agreement_with_tflite"] == 1.0
    assert report["ram_source"] == "tflm-arena"
    # the explicit tflm backend gives the same accuracy and the same RAM
    out_tflm = tmp_path / "cnn.tflm.json"
    assert emulate(emulator_artifacts / "cnn.tflite", "--backend", "tflm", "--limit", LIMIT, "--json", out_tflm) == 0
    tflm = load(out_tflm)
    assert tflm["backend"] == "tflm" and tflm["accuracy"] == report["accuracy"]
    assert tflm["ram_bytes"] == report["ram_bytes"] and tflm["agreement"] == report["agreement"]


def _print_allocations_total(model_bytes: bytes, capfd: pytest.CaptureFixture[str]) -> int:
    """Total from tflite_micro's print_allocations, read here without the emulator's code."""
    from tflite_micro.python.tflite_micro import runtime

    capfd.readouterr()
    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=4 << 20)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
    interpreter.print_allocations()
    text = capfd.readouterr().err
    return int(re.search(r"Arena allocation total (\d+) bytes", text).group(1))


@pytest.mark.parametrize("name", ["cnn.int8.tflite", "cnn.tflite"])
def test_ram_equals_print_allocations_total(emulator_artifacts: Path, tmp_path: Path, capfd, name: str) -> None:
    out = tmp_path / "r.json"
    assert emulate(emulator_artifacts / name, "--limit", "20", "--json", out) == 0
    report = load(out)
    expected = _print_allocations_total((emulator_artifacts / name).read_bytes(), capfd)
    assert report["ram_bytes"] == expected
    assert report["ram_source"] == "tflm-arena"
    assert report["planner_bytes"] < report["ram_bytes"]
    # TFLite's builtin kernels and TFLite-Micro's agree on every image, int8 included
    assert report["tflm"]["agreement_with_tflite"] == 1.0 and report["tflm"]["accuracy"] == report["accuracy"]


def test_default_json_path_beside_the_artifact(emulator_artifacts: Path, tmp_path: Path) -> None:
    model = tmp_path / "mlp.int8.tflite"
    model.write_bytes((emulator_artifacts / "mlp.int8.tflite").read_bytes())
    assert emulate(model, "--limit", "20") == 0
    report = load(tmp_path / "mlp.int8.tflite.emulate.json")
    assert report["model"] == str(model) and report["reference"] is None  # no mlp.h5 in tmp_path


def _write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    image_bytes = struct.pack(">IIII", 0x803, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    label_bytes = struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(image_bytes))
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(label_bytes)


def test_any_idx_dataset_with_the_same_layout(emulator_artifacts: Path, tmp_path: Path) -> None:
    from pipeline.interpreters import run_tflite

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=30, dtype=np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    _write_idx(data, images, labels, "t10k")
    _write_idx(data, images[:10], labels[:10], "train")
    out = tmp_path / "synthetic.json"
    assert emulate(emulator_artifacts / "mlp.tflite", "--data", data, "--json", out) == 0
    report = load(out)
    expected = run_tflite((emulator_artifacts / "mlp.tflite").read_bytes(), images).argmax(axis=1)
    assert report["images"] == 30
    assert report["correct"] == int(np.sum(expected == labels))
    assert report["data"]["source"] == str(data)


def test_layers_table_in_output_and_json(emulator_artifacts: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "layers.json"
    assert emulate(emulator_artifacts / "bcnn.lce.tflite", "--limit", "10", "--layers", "--json", out) == 0
    printed = capsys.readouterr().out
    assert "LceBconv2d" in printed and "binary MACs" in printed
    rows = load(out)["layers"]
    assert [row["op"] for row in rows][:2] == ["CONV_2D", "MAX_POOL_2D"]
    assert sum(row["binary_macs"] for row in rows) > 0


def _fake_firmware(folder: Path, model: Path, target: str = "cortex-m4", figures: dict | None = None) -> Path:
    folder.mkdir()
    manifest = {"engine": "bnn", "target": target, "model": {"path": str(model), "sha256": "ab", "bytes": 1}}
    if figures is not None:
        manifest["report"] = figures
    (folder / "firmware.json").write_text(json.dumps(manifest))
    return list_firmware_files(folder)


def _fake_host(model: Path, calls: dict, wrong: int = 1):
    """A stand-in for emulator.host.run_host: the LCE predictions with ``wrong`` of them changed, x86-64 sizes."""
    from pipeline.interpreters import run_lce

    def run_host(firmware_dir, images, *, sanitize=False, allow_modified=False):
        calls["dir"] = Path(firmware_dir)
        predictions = run_lce(model.read_bytes(), images).argmax(axis=1)
        predictions[:wrong] = (predictions[:wrong] + 1) % 10  # disagreements, to see them counted
        extra = {"per_layer": np.arange(3), "seconds": np.float32(0.5), "dir": Path(firmware_dir)}  # numpy in extra
        return BackendRun(predictions, flash_bytes=99_999, ram_bytes=88_888, ram_source="elf", extra=extra)

    return types.SimpleNamespace(run_host=run_host)


def test_firmware_folder_uses_host_backend_and_lce_reference(emulator_artifacts: Path, tmp_path: Path, monkeypatch) -> None:
    """The host backend's budget is judged on the target's figures from firmware.json, never on x86-64 objects."""
    model = emulator_artifacts / "bcnn.lce.tflite"
    folder = _fake_firmware(tmp_path / "bcnn-cortex-m0", model, "cortex-m0", {"flash_bytes": 12000, "ram_bytes": 1500})
    calls = {}
    monkeypatch.setitem(sys.modules, "emulator.host", _fake_host(model, calls))
    assert emulate(folder, "--limit", "50", "--board", "stm32f030f4", "--min-agreement", "95") == 0
    report = load(folder / "bcnn-cortex-m0.host.emulate.json")
    assert calls["dir"] == folder
    assert report["backend"] == "host" and report["ram_source"] == "elf (cortex-m0, firmware.json)" and report["name"] == "bcnn"
    assert report["sha256"] == sha256_file(folder / "firmware.json") and report["model_sha256"] == "ab"
    assert report["reference"]["backend"] == "lce" and report["reference"]["path"] == str(model)
    assert report["agreeing"] == 49 and report["agreement_gate"] == {"min_agreement": 95.0, "note": None, "passed": True}
    assert report["flash_bytes"] == 12000 and report["ram_bytes"] == 1500
    assert report["extra"]["host_flash_bytes"] == 99_999 and report["extra"]["host_ram_bytes"] == 88_888
    assert report["extra"]["per_layer"] == [0, 1, 2] and report["extra"]["seconds"] == 0.5
    assert report["extra"]["dir"] == str(folder)
    assert report["budget"]["ok"] is True and report["budget"]["ram"]["over"] == 1500 - 4096


@pytest.mark.parametrize(
    ("target", "figures", "why"),
    [
        ("cortex-m4", {"flash_bytes": 12000, "ram_bytes": 1500}, "generated for cortex-m4, the budget is for a cortex-m0"),
        ("cortex-m0", None, "no target flash and RAM"),
    ],
)
def test_host_backend_says_when_it_cannot_judge_a_budget(
    emulator_artifacts: Path, tmp_path: Path, monkeypatch, capsys, target: str, figures, why: str
) -> None:
    """Before: the x86-64 object sizes were judged against the board (a verdict about the wrong machine)."""
    model = emulator_artifacts / "bcnn.lce.tflite"
    folder = _fake_firmware(tmp_path / "fw", model, target, figures)
    monkeypatch.setitem(sys.modules, "emulator.host", _fake_host(model, {}, wrong=0))
    assert emulate(folder, "--limit", "20", "--board", "stm32f030f4") == 0
    printed = capsys.readouterr().out
    report = load(folder / "fw.host.emulate.json")
    assert report["flash_bytes"] is None and report["ram_bytes"] is None and report["budget"]["ok"] is None
    assert why in report["extra"]["figures_note"]
    assert f"note: {report['extra']['figures_note']}; the flash budget was not checked" in printed


def test_agreement_below_the_bar_exits_1_with_the_figure(emulator_artifacts: Path, tmp_path: Path, monkeypatch, capfd) -> None:
    """Before: a run at 37 % agreement exited 0. Now one line with the figure, exit 1, the JSON still written."""
    model = emulator_artifacts / "bcnn.lce.tflite"
    folder = _fake_firmware(tmp_path / "fw", model)
    monkeypatch.setitem(sys.modules, "emulator.host", _fake_host(model, {}, wrong=13))
    capfd.readouterr()
    assert emulate(folder, "--limit", "20") == 1
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("python -m emulator: error: agreement 35.00% (7 of 20 images) with "), lines
    assert "below --min-agreement 99.9%" in lines[0]
    report = load(folder / "fw.host.emulate.json")
    assert report["agreement_gate"] == {"min_agreement": 99.9, "note": None, "passed": False}
    assert emulate(folder, "--limit", "20", "--min-agreement", "30") == 0


def test_integer_model_against_a_float_reference_is_reported_not_gated(emulator_artifacts: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.json"
    assert emulate(emulator_artifacts / "cnn.int8.tflite", "--limit", LIMIT, "--json", out) == 0
    gate = load(out)["agreement_gate"]
    assert gate["min_agreement"] is None and gate["passed"] is None and "quantization" in gate["note"]
    assert emulate(emulator_artifacts / "cnn.int8.tflite", "--limit", LIMIT, "--json", out, "--min-agreement", "0") == 0
    assert load(out)["agreement_gate"]["min_agreement"] == 0.0


def test_float_larq_flatbuffer_keeps_tflite_figures_and_names_the_missing_op(tiny_flatbuffers, tmp_path: Path, capfd) -> None:
    """TFLite-Micro has no SIGN: before, the default backend exited 2 after TFLite had run (and TFLite-Micro's
    own log lines reached the terminal). Now TFLite's figures stand, with a note."""
    model = tmp_path / "bcnn.tflite"
    model.write_bytes(tiny_flatbuffers["bcnn"]["float"].read_bytes())
    capfd.readouterr()
    assert emulate(model, "--limit", "20") == 0
    out, err = capfd.readouterr()
    report = load(tmp_path / "bcnn.tflite.emulate.json")
    assert report["backend"] == "tflite" and report["images"] == 20
    assert report["tflm"]["skipped"] and "TFLite-Micro has no kernel for SIGN" in report["tflm"]["note"]
    assert "SIGN" in out and err.strip() == ""


def test_emulator_host_agreement_failure_is_one_line(tmp_path: Path, monkeypatch, capfd, mnist_path) -> None:
    """python -m emulator.host used to exit 1 with nothing on stderr."""
    import emulator.host as host

    def compare(*args, **kwargs):
        return {"images": 100, "agreement": 37, "agreement_percent": 37.0, "sanitizer_clean": True}

    monkeypatch.setattr(host, "compare_with_lce", compare)
    model = tmp_path / "m.lce.tflite"
    model.write_bytes(b"x")
    capfd.readouterr()
    assert host.main([str(tmp_path), str(model), "--limit", "100", "--data", str(mnist_path)]) == 1
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    expected = "python -m emulator.host: error: host C agrees with the LCE interpreter on 37.00% of 100 images (37), below 99.98%"
    assert lines == [expected]


def test_corrupt_artifact_exits_2_with_one_line(emulator_artifacts: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes((emulator_artifacts / "cnn.int8.tflite").read_bytes()[:3000])
    result = run_module("emulator", corrupt, "--limit", "5")
    lines = stderr_lines(result)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "corrupt" in lines[0] and str(corrupt) in lines[0], lines
    assert not list(tmp_path.glob("*.json"))


def test_bad_inputs_exit_2_with_one_line(emulator_artifacts: Path, tmp_path: Path, capsys) -> None:
    text = tmp_path / "notes.tflite"
    text.write_text("not a model\n")
    fake_h5 = tmp_path / "model.h5"
    fake_h5.write_text("not hdf5\n")
    cases = [
        ([text], "not a TFLite flatbuffer"),
        ([fake_h5], "not an HDF5 file"),
        ([tmp_path / "missing.tflite"], "no such file"),
        ([tmp_path], "not a firmware folder"),
        ([emulator_artifacts / "cnn.tflite", "--ram-budget", "12XB"], "bad size"),
        ([emulator_artifacts / "cnn.tflite", "--board", "nosuchboard"], "valid boards are"),
        ([emulator_artifacts / "cnn.tflite", "--board", "nrf52840", "--target", "cortex-m0"], "has a cortex-m4"),
        ([emulator_artifacts / "bcnn.lce.tflite", "--backend", "tflite"], "use --backend lce"),
        ([emulator_artifacts / "cnn.tflite", "--backend", "keras"], "cannot run a flatbuffer"),
        ([emulator_artifacts / "cnn.tflite", "--limit", "0"], "positive integer"),
        ([_fake_firmware(tmp_path / "fw", text), "--backend", "qemu"], "needs --target"),
    ]
    for args, message in cases:
        capsys.readouterr()
        try:
            code = emulate(*args, *(["--limit", "5"] if "--limit" not in args else []))
        except SystemExit as stop:  # argparse usage errors exit from inside the parser
            code = stop.code
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2, (args, lines)
        assert len(lines) == 1 and message in lines[0], (args, lines)
    assert not list(tmp_path.glob("*.emulate.json"))


def test_input_range_from_convert_json_is_fed_to_keras(emulator_artifacts: Path, tmp_path: Path, mnist) -> None:
    """A .h5 converted with --input-range expects scaled pixels: the emulator scales them the same way."""
    from convert.keras_io import load_keras_model

    for name in ("cnn.h5", "cnn.tflite"):
        (tmp_path / name).write_bytes((emulator_artifacts / name).read_bytes())
    (tmp_path / "cnn.convert.json").write_text(json.dumps({"input_range": [0.0, 1.0]}))
    images, labels = mnist.x_test[:100], mnist.y_test[:100]
    # independent reference: the model fed pixels / 255 (what [0, 1] means), no emulator code
    model = load_keras_model(tmp_path / "cnn.h5")
    expected = np.argmax(model.predict(images.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0, verbose=0), axis=1)
    assert emulate(tmp_path / "cnn.h5", "--limit", "100") == 0
    keras = load(tmp_path / "cnn.keras.emulate.json")
    assert keras["extra"]["input_range"] == [0.0, 1.0]
    assert keras["correct"] == int(np.sum(expected == labels))
    # The range recorded here is deliberately wrong for this cnn (it scales pixels itself), so the
    # flatbuffer and its Keras reference disagree: without --min-agreement 0 that is exit 1.
    assert emulate(tmp_path / "cnn.tflite", "--limit", "100") == 1
    assert emulate(tmp_path / "cnn.tflite", "--limit", "100", "--min-agreement", "0") == 0
    lite = load(tmp_path / "cnn.tflite.emulate.json")
    assert lite["reference"]["input_range"] == [0.0, 1.0]
    assert lite["reference"]["accuracy"] == keras["accuracy"]
