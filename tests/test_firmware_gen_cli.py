"""python -m firmware_gen: arguments, defaults, errors (one line, exit 2/3), the atomic tree, firmware.json."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from conftest import run_module, stderr_lines

from firmware_gen import engines
from firmware_gen.cli import main, write_tree
from firmware_gen.engines import EngineOutput
from firmware_gen.targets import BOARDS, CORES, get_core
from pipeline.errors import InputError


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    return lines[0]


def test_list_targets_prints_every_core_and_board():
    result = run_module("firmware_gen", "--list-targets")
    assert result.returncode == 0, result.stderr
    for name in [*CORES, "cortex-m", *BOARDS]:
        assert re.search(rf"^  {re.escape(name)} ", result.stdout, re.MULTILINE), name
    for core in CORES.values():
        assert core.qemu_machine in result.stdout


def test_bad_target_exits_2_with_the_valid_names(tmp_path):
    line = _one_error_line(run_module("firmware_gen", "--target", "cortex-m9", "--model", tmp_path / "x.tflite"), 2)
    assert "cortex-m9" in line and "cortex-m0plus" in line and "cortex-m55" in line


def test_unknown_board_exits_2_with_the_valid_names():
    line = _one_error_line(run_module("firmware_gen", "--target", "cortex-m4", "--board", "arduino-uno"), 2)
    assert "arduino-uno" in line and "stm32f030f4" in line and "nrf52840" in line


def test_board_of_another_core_exits_2():
    line = _one_error_line(run_module("firmware_gen", "--target", "cortex-m4", "--board", "stm32f030f4"), 2)
    assert "cortex-m0" in line


def test_missing_model_exits_2(tmp_path):
    line = _one_error_line(run_module("firmware_gen", "--target", "cortex-m4", "--model", tmp_path / "nope.tflite"), 2)
    assert "nope.tflite" in line


def test_no_target_and_no_board_exits_2():
    _one_error_line(run_module("firmware_gen"), 2)


def _main_error_line(argv: list[str], capsys, code: int = 2) -> str:
    assert main(argv) == code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_default_model_missing_lists_what_is_there(tmp_path, monkeypatch, capsys):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "mlp.tflite").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    line = _main_error_line(["--target", "cortex-m4"], capsys)
    assert "artifacts/bcnn.lce.tflite" in line and "artifacts/mlp.tflite" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    line = _main_error_line(["--target", "cortex-m4"], capsys)
    assert "no .tflite files" in line


def test_corrupt_flatbuffers_exit_2(tiny_cnn_tflite, tmp_path, capsys):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"this is not a flatbuffer at all")
    line = _one_error_line(run_module("firmware_gen", "--target", "cortex-m4", "--model", garbage, "--out", tmp_path / "o1"), 2)
    assert "garbage.tflite" in line
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny_cnn_tflite["int8"].read_bytes()[:4000])
    line = _main_error_line(["--target", "cortex-m4", "--model", str(truncated), "--out", str(tmp_path / "o2")], capsys)
    assert "truncated.tflite" in line
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_default_model_is_used_and_announced(tiny_cnn_tflite, tmp_path, monkeypatch, capsys):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "bcnn.lce.tflite").write_bytes(tiny_cnn_tflite["int8"].read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main(["--target", "cortex-m"]) == 0
    out = capsys.readouterr().out
    assert "no --model given: using artifacts/bcnn.lce.tflite" in out
    report = json.loads((tmp_path / "artifacts/firmware/bcnn.lce-cortex-m4/firmware.json").read_text())
    assert report["engine"] == "tflm"  # auto: no LCE ops in this flatbuffer
    assert report["target"] == "cortex-m4"


def test_two_runs_give_identical_trees_and_a_consistent_report(tiny_cnn_tflite, tmp_path, capsys):
    model = tiny_cnn_tflite["int8"]
    args = ["--target", "cortex-m0", "--model", str(model)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    assert main([*args, "--out", str(tmp_path / "a")]) == 0  # replaces the previous tree
    assert _tree(tmp_path / "a") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary folders left

    report = json.loads(first["firmware.json"])
    qemu = {f"qemu/{name}" for name in ("Makefile", "harness.c", "link.ld", "semihost.c", "semihost.h", "startup.c")}
    assert (
        set(first)
        == {
            "firmware.json",
            "Makefile",
            "README.md",
            "main.cc",
            "model_data.c",
            "model_data.h",
            "tflm_model.h",
            "CMakeLists.txt",
            "arm-none-eabi.cmake",
        }
        | qemu
    )
    assert [entry["path"] for entry in report["files"]] == sorted(set(first) - {"firmware.json"})
    for entry in report["files"]:
        assert entry["sha256"] == hashlib.sha256(first[entry["path"]]).hexdigest()
        assert entry["bytes"] == len(first[entry["path"]])
    data = model.read_bytes()
    relative = os.path.relpath(model, tmp_path / "a")
    assert report["model"] == {"path": relative, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert report["engine"] == "tflm" and report["target"] == "cortex-m0" and report["board"] is None
    assert report["budget"] is None and report["version"]
    assert report["gcc_flags"] == list(get_core("cortex-m0").gcc_flags)
    arena = int(re.search(rb"kArenaSize = (\d+);", first["main.cc"]).group(1))
    assert report["report"]["arena_bytes"] == report["report"]["ram_bytes"] == arena
    assert "-mcpu=cortex-m0" in first["Makefile"].decode()


def test_over_budget_exits_3_naming_the_budgets(tiny_cnn_tflite, tmp_path):
    """Acceptance 4: --board stm32f030f4 with cnn.int8.tflite is over budget (exit 3) with the numbers."""
    model = tiny_cnn_tflite["int8"]
    out = tmp_path / "fw"
    line = _one_error_line(run_module("firmware_gen", "--board", "stm32f030f4", "--model", model, "--out", out), 3)
    size = model.stat().st_size
    arena = int(re.search(r"kArenaSize = (\d+);", (out / "main.cc").read_text()).group(1))
    assert f"over flash budget of board stm32f030f4: needs {size:,} bytes, has 16,384 (over by {size - 16384:,})" in line
    assert f"over RAM budget of board stm32f030f4: needs {arena:,} bytes, has 4,096 (over by {arena - 4096:,})" in line
    assert f"firmware written to {out}" in line
    budget = json.loads((out / "firmware.json").read_text())["budget"]
    assert budget["ok"] is False
    assert budget["flash"]["over"] == size - 16384 and budget["ram"]["over"] == arena - 4096


def test_a_board_that_fits_exits_0(tiny_cnn_tflite, tmp_path, capsys):
    out = tmp_path / "fw"
    assert main(["--board", "nrf52840", "--model", str(tiny_cnn_tflite["int8"]), "--out", str(out)]) == 0
    report = json.loads((out / "firmware.json").read_text())
    assert report["target"] == "cortex-m4" and report["board"]["name"] == "nrf52840"
    assert report["budget"]["ok"] is True


def test_write_tree_failure_keeps_the_previous_tree(tmp_path):
    out = tmp_path / "fw"
    write_tree(out, {"firmware.json": b"{}", "a.c": b"old"})
    with pytest.raises(InputError):
        write_tree(out, {"firmware.json": b"{}", "b.c": b"new", "../escape.c": b"bad"})
    assert _tree(out) == {"firmware.json": b"{}", "a.c": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]
    write_tree(out, {"firmware.json": b"{}", "sub/b.c": b"new"})
    assert _tree(out) == {"firmware.json": b"{}", "sub/b.c": b"new"}  # a.c is gone: the tree is replaced


def test_write_tree_refuses_an_unrelated_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="refusing"):
        write_tree(tmp_path, {"firmware.json": b"{}"})
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_model_path_resolves_from_any_directory(tiny_cnn_tflite, tmp_path, monkeypatch, capsys):
    """firmware.json used to store --model as typed: a relative path only worked from the same directory."""
    from emulator.backends import load_artifact
    from emulator.reference import firmware_model_path

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "cnn.int8.tflite").write_bytes(tiny_cnn_tflite["int8"].read_bytes())
    monkeypatch.chdir(work)
    assert main(["--target", "cortex-m4", "--model", "models/cnn.int8.tflite", "--out", "out/fw"]) == 0
    report = json.loads((work / "out/fw/firmware.json").read_text())
    assert report["model"]["path"] == "../../models/cnn.int8.tflite"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = firmware_model_path(load_artifact(work / "out/fw"))
    assert found is not None and found.samefile(work / "models" / "cnn.int8.tflite")


def test_no_firmware_for_a_model_its_reference_interpreter_refuses(mini_flatbuffers, tmp_path, capsys):
    """Before: the tflm engine wrote firmware for files TFLite refuses (here an int8 convolution whose filter
    zero point is 5, which TFLite's CONV_2D rejects), the bnn engine for files LCE refuses (here LceQuantize
    writing FLOAT64 instead of bit-packed INT32 words: the bnn engine never looks at that type)."""
    import numpy as np
    from fuzzing import edit_model

    def filter_zero_point(model) -> None:
        conv = model.subgraphs[0].operators[0]
        quant = model.subgraphs[0].tensors[conv.inputs[1]].quantization
        quant.zeroPoint = np.full(len(quant.zeroPoint), 5, np.int64)

    def packed_bits_as_float64(model) -> None:
        graph = model.subgraphs[0]
        quantize = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].customCode == b"LceQuantize")
        graph.tensors[quantize.outputs[0]].type = 10  # FLOAT64: LCE wants INT32 bit-packed words

    model = tmp_path / "zp.int8.tflite"
    model.write_bytes(edit_model(mini_flatbuffers["cnn.int8"].read_bytes(), filter_zero_point))
    out = tmp_path / "fw"
    line = _main_error_line(["--target", "cortex-m4", "--engine", "tflm", "--model", str(model), "--out", str(out)], capsys)
    assert "TFLite interpreter cannot load the model" in line and "zero_point" in line and line.endswith("no firmware written")
    assert not out.exists()
    model = tmp_path / "f64.lce.tflite"
    model.write_bytes(edit_model(mini_flatbuffers["bcnn.lce"].read_bytes(), packed_bits_as_float64))
    line = _main_error_line(["--target", "cortex-m4", "--engine", "bnn", "--model", str(model), "--out", str(out)], capsys)
    assert "LCE interpreter cannot load the model" in line and "quantization.cc" in line and line.endswith("no firmware written")
    assert not out.exists()


def test_bnn_engine_dispatch_merges_baremetal(tiny_cnn_tflite, monkeypatch):
    from convert.flatbuffer import read_model
    from firmware_gen import baremetal, bnn

    calls = []
    monkeypatch.setattr(
        bnn,
        "generate",
        lambda model, core, board, input_type="auto", optimize="speed": calls.append("bnn")
        or EngineOutput({"bnn.c": b"1"}, {"x": 10}),
    )
    monkeypatch.setattr(
        baremetal,
        "generate",
        lambda model, core, board, out: calls.append(("baremetal", sorted(out.files)))
        or EngineOutput({"startup.c": b"2"}, {"elf": True}),
    )
    model = read_model(tiny_cnn_tflite["int8"])
    output = engines.run_engine("bnn", model, get_core("cortex-m0"), None)
    assert calls == ["bnn", ("baremetal", ["bnn.c"])]
    assert set(output.files) == {"bnn.c", "startup.c", "CMakeLists.txt", "arm-none-eabi.cmake"}
    assert output.files["bnn.c"] == b"1" and output.files["startup.c"] == b"2"
    assert b"add_library(bnn_model STATIC ${CMAKE_CURRENT_SOURCE_DIR}/bnn.c)" in output.files["CMakeLists.txt"]
    assert output.report == {
        "x": 10,
        "elf": True,
        "cmake": {"target": "bnn_model", "sources": ["bnn.c"], "toolchain_file": "arm-none-eabi.cmake"},
    }
    assert engines.choose_engine("auto", model) == "tflm"
    assert engines.choose_engine("bnn", model) == "bnn"


def _fake_bnn(monkeypatch, report: dict) -> None:
    """The bnn engine replaced by one that reports ``report``, with no bare-metal project (so no ELF figures)."""
    from firmware_gen import baremetal, bnn

    monkeypatch.setattr(
        bnn,
        "generate",
        lambda model, core, board, input_type="auto", optimize="speed": EngineOutput({"bnn_model.c": b"int x;\n"}, dict(report)),
    )
    monkeypatch.setattr(baremetal, "generate", lambda model, core, board, out: EngineOutput({}, {}))


def test_engine_without_figures_is_not_reported_as_fitting(tiny_cnn_tflite, tmp_path, monkeypatch, capsys):
    _fake_bnn(monkeypatch, {"model_data_bytes": 12_000})
    out = tmp_path / "fw"
    assert main(["--board", "stm32f030f4", "--engine", "bnn", "--model", str(tiny_cnn_tflite["int8"]), "--out", str(out)]) == 0
    assert "note: flash and ram budget of board stm32f030f4 not checked" in capsys.readouterr().out
    budget = json.loads((out / "firmware.json").read_text())["budget"]
    assert budget["ok"] is None and budget["checked"] == []


def test_engine_figures_drive_the_verdict(tiny_cnn_tflite, tmp_path, monkeypatch, capsys):
    _fake_bnn(monkeypatch, {"flash_bytes": 16_385, "ram_bytes": 4_096})
    args = ["--board", "stm32f030f4", "--engine", "bnn", "--model", str(tiny_cnn_tflite["int8"]), "--out", str(tmp_path / "fw")]
    line = _main_error_line(args, capsys, code=3)
    assert line.endswith(
        "over flash budget of board stm32f030f4: needs 16,385 bytes, has 16,384 (over by 1) "
        f"(firmware written to {tmp_path / 'fw'})"
    )
    assert "RAM" not in line  # 4,096 of 4,096 fits exactly


def test_input_type_and_optimize_reach_the_bnn_engine_and_are_refused_elsewhere(tiny_cnn_tflite, tmp_path, monkeypatch, capsys):
    from firmware_gen import baremetal, bnn

    seen = []

    def generate(model, core, board=None, *, input_type="auto", optimize="speed"):
        seen.append((input_type, optimize))
        return EngineOutput({"bnn_model.c": b"int x;\n"}, {})

    monkeypatch.setattr(bnn, "generate", generate)
    monkeypatch.setattr(baremetal, "generate", lambda model, core, board, out: EngineOutput({}, {}))
    model = str(tiny_cnn_tflite["int8"])
    base = ["--target", "cortex-m4", "--model", model]
    for choice in ("auto", "uint8", "float32"):
        assert main([*base, "--engine", "bnn", "--input-type", choice, "--out", str(tmp_path / choice)]) == 0
    assert main([*base, "--engine", "bnn", "--optimize", "size", "--out", str(tmp_path / "size")]) == 0
    assert seen == [("auto", "speed"), ("uint8", "speed"), ("float32", "speed"), ("auto", "size")]

    def refused(args: list[str], message: str) -> None:
        capsys.readouterr()
        assert main(args) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], lines

    refused([*base, "--input-type", "uint8", "--out", str(tmp_path / "y")], "applies to the bnn engine only")
    refused([*base, "--optimize", "size", "--out", str(tmp_path / "y")], "--optimize size applies to the bnn engine only")
    for flag, value in (("--input-type", "int16"), ("--optimize", "tiny")):
        with pytest.raises(SystemExit) as stop:
            main([*base, flag, value])
        assert stop.value.code == 2
    assert not (tmp_path / "y").exists()
