"""Size budgets: tiny trained models against real boards, through the CLI's exit codes and JSON.

Figures of the tiny models (the zoo's topologies, so the sizes are the real ones): bcnn LCE
about 164 KB of flatbuffer and 108 KB of planned activations; cnn int8 about 103 KB and a
32 KB TFLM arena; cnn float about 378 KB and 113 KB; mlp int8 about 121 KB.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_module, stderr_lines

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from emulator.cli import main
from firmware_gen.targets import get_board

LIMIT = ["--limit", "20"]


def emulate(tmp_path: Path, artifact: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / f"{artifact.name}.{len(list(tmp_path.iterdir()))}.json"
    code = main([str(artifact), *LIMIT, "--json", str(out), *args])
    return code, json.loads(out.read_text())


@pytest.mark.parametrize(
    ("name", "board"),
    [
        ("bcnn.lce.tflite", "nrf52840"),
        ("bcnn.lce.tflite", "stm32f411re"),
        ("cnn.int8.tflite", "stm32f411re"),
        ("cnn.int8.tflite", "rp2040"),
        ("cnn.tflite", "stm32f411re"),
        ("mlp.int8.tflite", "stm32f746"),
    ],
)
def test_fits_board(emulator_artifacts: Path, tmp_path: Path, name: str, board: str) -> None:
    code, report = emulate(tmp_path, emulator_artifacts / name, "--board", board)
    spec = get_board(board)
    assert code == 0
    verdict = report["budget"]
    assert verdict["ok"] is True and verdict["label"] == f"board {board}"
    assert verdict["flash"] == {
        "need": report["flash_bytes"],
        "budget": spec.flash_bytes,
        "over": report["flash_bytes"] - spec.flash_bytes,
        "ok": True,
    }
    assert verdict["ram"]["need"] == report["ram_bytes"] <= spec.ram_bytes


@pytest.mark.parametrize(
    ("name", "board", "over"),
    [
        ("cnn.int8.tflite", "stm32f030f4", {"flash", "ram"}),
        ("bcnn.lce.tflite", "stm32f030f4", {"flash", "ram"}),
        ("cnn.tflite", "stm32f103c8", {"flash", "ram"}),
        ("mlp.int8.tflite", "stm32f103c8", {"flash"}),
    ],
)
def test_over_board_exits_3(emulator_artifacts: Path, tmp_path: Path, capsys, name: str, board: str, over: set[str]) -> None:
    code, report = emulate(tmp_path, emulator_artifacts / name, "--board", board)
    spec = get_board(board)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 3
    assert report["budget"]["ok"] is False
    assert {key for key in ("flash", "ram") if report["budget"][key]["ok"] is False} == over
    assert len(err) == 1
    if "flash" in over:
        need = report["flash_bytes"]
        assert f"over flash budget of board {board}: needs {need:,} bytes, has {spec.flash_bytes:,}" in err[0]
        assert f"over by {need - spec.flash_bytes:,}" in err[0]


@pytest.mark.parametrize("name", ["bcnn.lce.tflite", "cnn.tflite", "cnn.int8.tflite", "mlp.tflite", "mlp.int8.tflite"])
def test_one_kib_of_ram_is_never_enough(emulator_artifacts: Path, tmp_path: Path, capsys, name: str) -> None:
    code, report = emulate(tmp_path, emulator_artifacts / name, "--ram-budget", "1KiB")
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    need = report["ram_bytes"]
    assert code == 3
    assert report["budget"]["ram"] == {"need": need, "budget": 1024, "over": need - 1024, "ok": False}
    assert report["budget"]["flash"]["budget"] is None  # no flash budget given: not judged
    assert err == [f"python -m emulator: error: over RAM budget: needs {need:,} bytes, has 1,024 (over by {need - 1024:,})"]


def test_flash_budget_boundary(emulator_artifacts: Path, tmp_path: Path) -> None:
    model = emulator_artifacts / "cnn.int8.tflite"
    size = model.stat().st_size
    code, report = emulate(tmp_path, model, "--flash-budget", str(size))
    assert code == 0 and report["budget"]["flash"]["over"] == 0
    code, report = emulate(tmp_path, model, "--flash-budget", str(size - 1))
    assert code == 3 and report["budget"]["flash"]["over"] == 1


def test_explicit_budget_overrides_the_board(emulator_artifacts: Path, tmp_path: Path) -> None:
    code, report = emulate(
        tmp_path,
        emulator_artifacts / "cnn.int8.tflite",
        "--board",
        "stm32f030f4",
        "--flash-budget",
        "1MiB",
        "--ram-budget",
        "64KiB",
    )
    assert code == 0
    assert report["budget"]["flash"]["budget"] == 1 << 20 and report["budget"]["ram"]["budget"] == 64 << 10


def test_keras_model_has_no_ram_figure_to_judge(emulator_artifacts: Path, tmp_path: Path, capsys) -> None:
    code, report = emulate(tmp_path, emulator_artifacts / "cnn.h5", "--ram-budget", "1KiB")
    assert code == 0
    assert report["budget"]["ram"] == {"need": None, "budget": 1024, "over": None, "ok": None}
    assert "does not measure RAM" in capsys.readouterr().out


def test_over_budget_through_the_real_command(emulator_artifacts: Path, tmp_path: Path) -> None:
    model = tmp_path / "cnn.int8.tflite"
    model.write_bytes((emulator_artifacts / "cnn.int8.tflite").read_bytes())
    result = run_module("emulator", model, "--board", "stm32f030f4", "--limit", "10")
    lines = stderr_lines(result)
    assert result.returncode == 3, result.stderr
    assert len(lines) == 1 and lines[0].startswith("python -m emulator: error: over flash budget of board stm32f030f4")
    report = json.loads((tmp_path / "cnn.int8.tflite.emulate.json").read_text())
    assert report["budget"]["ok"] is False and report["images"] == 10
