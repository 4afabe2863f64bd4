"""pipeline.isolation: native interpreters on untrusted flatbuffers in a child; a crash is one line, never a dead tool.

The mutants here were found by the fuzz campaign (tests/fuzzing.py) and are rebuilt by name:
an int8 model whose SOFTMAX has ``beta`` 0 loads in TFLite but aborts TFLite-Micro (SIGABRT),
and an int8 model whose input is declared with 8 channels in front of a 1-channel convolution
makes TFLite, LCE and TFLite-Micro divide by zero (SIGFPE). Before issue 19, firmware_gen
(measuring the arena) and the emulator ran them in-process and died by that signal.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_module, stderr_lines
from fuzzing import edit_model

from pipeline.errors import InputError
from pipeline.isolation import Worker, run_checked, run_isolated, tflm_allocations, validate


def _softmax_beta_zero(model) -> None:
    graph = model.subgraphs[0]
    softmax = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode == 25)
    softmax.builtinOptions.beta = 0.0


def _eight_channel_input(model) -> None:
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = np.array([1, 28, 28, 8], np.int32)


@pytest.fixture(scope="module")
def crashers(mini_flatbuffers, tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("crashers")
    paths = {}
    for name, edit in (("tflm_abort", _softmax_beta_zero), ("divide_by_zero", _eight_channel_input)):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(edit_model(mini_flatbuffers["cnn.int8"].read_bytes(), edit))
    return paths


def test_a_crash_is_one_line_naming_the_signal_and_the_child_comes_back(crashers, mini_flatbuffers) -> None:
    data = crashers["tflm_abort"].read_bytes()
    with Worker() as worker:
        assert validate("tflite", data, "m.tflite", worker=worker)["output_shape"] == [1, 10]  # TFLite runs it
        with pytest.raises(InputError, match=r"^m\.tflite: TFLite-Micro crashed on this model \(SIGABRT\)") as caught:
            tflm_allocations(data, "m.tflite", worker=worker)
        assert "\n" not in str(caught.value)
        for kind in ("tflite", "lce", "tflm"):
            with pytest.raises(InputError, match=r"crashed on this model \(SIGFPE\)"):
                validate(kind, crashers["divide_by_zero"].read_bytes(), "m.tflite", worker=worker)
        assert worker.crashes == 4
        good = validate("tflm", mini_flatbuffers["cnn.int8"].read_bytes(), "cnn.int8.tflite", worker=worker)
        assert good["input_dtype"] == "int8" and good["output_shape"] == [1, 10]


def test_a_hang_is_stopped_and_reported() -> None:
    with Worker(timeout=0.05) as worker:  # far less than the child needs to start: it counts as hung
        with pytest.raises(InputError, match="did not finish within 0.05 s"):
            validate("tflm", b"TFL3" * 4, "slow.tflite", worker=worker)
        assert worker.hangs == 1


def test_child_scores_equal_the_in_process_ones(mini_flatbuffers) -> None:
    from pipeline.interpreters import run_lce, run_tflite, run_tflm

    images = np.random.default_rng(3).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    int8 = mini_flatbuffers["cnn.int8"].read_bytes()
    np.testing.assert_array_equal(run_isolated("tflm", int8, images, "cnn.int8.tflite"), run_tflm(int8, images))
    lce = mini_flatbuffers["bcnn.lce"].read_bytes()
    np.testing.assert_array_equal(run_checked("lce", lce, images, "bcnn.lce.tflite"), run_lce(lce, images))
    flt = mini_flatbuffers["cnn"].read_bytes()
    np.testing.assert_array_equal(run_isolated("tflite", flt, images, "cnn.tflite"), run_tflite(flt, images, delegates=False))


def test_native_log_lines_stay_off_the_terminal(mini_flatbuffers, capfd) -> None:
    """TFLite-Micro prints its allocation report and its refusals on fd 2: they go to the child's log."""
    capfd.readouterr()
    report = tflm_allocations(mini_flatbuffers["cnn.int8"].read_bytes(), "cnn.int8.tflite")
    with pytest.raises(InputError, match="Failed to get registration"):
        tflm_allocations(mini_flatbuffers["bcnn.lce"].read_bytes(), "bcnn.lce.tflite")
    assert "Arena allocation total" in report
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_firmware_gen_survives_a_tflm_abort(crashers, tmp_path) -> None:
    """Through the real command line (a separate process, as a user runs it): exit 2 and one line, not SIGABRT."""
    out = tmp_path / "fw"
    args = ["--target", "cortex-m4", "--engine", "tflm", "--model", crashers["tflm_abort"], "--out", out]
    result = run_module("firmware_gen", *args)
    lines = stderr_lines(result)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and "TFLite-Micro crashed on this model (SIGABRT)" in lines[0], lines
    assert not out.exists()


def test_emulator_survives_a_tflm_abort(crashers, tmp_path, mnist_path) -> None:
    """TFLite runs the model; TFLite-Micro's crash becomes a note (its RAM from the planner), not a dead process."""
    import json
    import shutil

    model = tmp_path / "abort.int8.tflite"
    shutil.copy(crashers["tflm_abort"], model)
    result = run_module("emulator", model, "--limit", "20", "--data", mnist_path)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert stderr_lines(result) == []
    report = json.loads((tmp_path / "abort.int8.tflite.emulate.json").read_text())
    assert report["tflm"]["skipped"] and "SIGABRT" in report["tflm"]["note"]
    assert report["ram_source"] == "planner" and "SIGABRT" in report["ram_note"]
    assert "tflite-micro" in result.stdout and "SIGABRT" in result.stdout
