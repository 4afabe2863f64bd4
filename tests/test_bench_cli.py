"""python -m bench: bad usage in one line, and a tiny end-to-end run (no timing is asserted)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import require_toolchain, run_module, stderr_lines

from firmware_gen.tflm_build import sources_available


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "--limit: must be a positive integer"),
        (["--cores", "cortex-m9"], "unknown target 'cortex-m9'"),
        (["--core-images", "x"], "--core-images: must be a positive integer"),
        (["--bogus"], "unrecognized arguments"),
        (["--tflm-kernels", "helium"], "expected kernel sets from reference, cmsis_nn"),
        (["--tflm-cores", "cortex-m9"], "unknown target 'cortex-m9'"),
        (["--train-recipe", "fastest"], "argument --train-recipe: invalid choice: 'fastest'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, message):
    result = run_module("bench", *args)
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("python -m bench: error:") and message in lines[0]


def test_reuse_needs_the_models(tmp_path, mnist_path):
    result = run_module("bench", "--reuse", "--artifacts", tmp_path / "none", "--data", mnist_path, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert stderr_lines(result) == [f"python -m bench: error: --reuse: {tmp_path / 'none'} is not a folder with trained models"]
    (tmp_path / "empty").mkdir()
    result = run_module("bench", "--reuse", "--artifacts", tmp_path / "empty", "--data", mnist_path, "--out", tmp_path / "out")
    assert result.returncode == 2 and "bcnn.h5 does not exist" in stderr_lines(result)[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.toolchain
def test_tiny_run_writes_consistent_results(tmp_path, tiny_models, mnist_path):
    require_toolchain("gcc")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    for h5 in tiny_models.values():
        shutil.copy(h5, artifacts / h5.name)
    out = tmp_path / "out"
    args = ["--reuse", "--artifacts", artifacts, "--data", mnist_path, "--limit", "20", "--out", out]
    # TFLite-Micro on QEMU's Cortex-M4 with CMSIS-NN (the library test_tflm_real.py builds, cached),
    # when its sources are here; the float cnn with reference kernels would only add time.
    tflm = sources_available()
    tflm_args = (
        ["--tflm-cores", "cortex-m4", "--tflm-kernels", "cmsis_nn", "--tflm-images", "8"] if tflm else ["--tflm-cores", "none"]
    )
    result = run_module("bench", *args, "--cores", "cortex-m4", "--core-images", "10", *tflm_args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["RESULTS.md", "accuracy_vs_flash.png", "results.json"]
    results = json.loads((out / "results.json").read_text())
    assert results["images"] == 20 and results["qemu_images"] == 20 and results["core_images"] == 10
    assert len(results["machine"]["git"]["commit"]) == 40 and results["machine"]["cpu"]
    runs = {(row["model"], row["engine"]): row for row in results["runs"]}
    for model in ("bcnn", "cnn", "mlp"):
        keras = runs[model, "keras"]
        assert keras["images"] == 20 and keras["agreement_keras"] == 1.0
        assert keras["accuracy"] * 20 == pytest.approx(round(keras["accuracy"] * 20))
        assert runs[model, "lce"]["agreement_keras"] >= 0.95 and runs[model, "lce"]["latency_us_median"] > 0
    for engine in ("tflite", "tflite-int8", "tflm", "tflm-int8"):
        assert runs["cnn", engine]["images"] == 20 and runs["cnn", engine]["latency_vs_c"] > 0
    assert runs["cnn", "tflm-int8"]["ram_source"] == "tflm-arena" and runs["cnn", "tflm-int8"]["ram_bytes"] > 1000
    assert runs["bcnn", "tflite-int8"]["accuracy"] is None  # convert skips int8 for binary models
    assert "SIGN" in runs["bcnn", "tflm"]["note"]  # TFLite-Micro has no SIGN kernel
    host, qemu = runs["bcnn", "bnn-host"], runs["bcnn", "bnn-qemu"]
    assert host["accuracy"] == qemu["accuracy"]
    for engine in ("lce", "tflite", "tflm"):  # every row's ratio is its own latency over the generated C's
        row = runs["cnn" if engine != "lce" else "bcnn", engine]
        assert row["latency_vs_c"] == pytest.approx(row["latency_us_median"] / host["latency_us_median"], rel=1e-6)
    portable = runs["bcnn", "bnn-host-portable"]
    assert portable["accuracy"] == host["accuracy"] and "-O2" in portable["note"]
    assert qemu["instructions_per_inference"] > 10_000 and qemu["model_bytes"] < qemu["firmware_flash_bytes"]
    (core,) = results["cores"]
    assert core["core"] == "cortex-m4" and core["images"] == 10 and core["agreement_host"] == 1.0
    assert results["models"]["bcnn"]["converted_this_run"] is True and results["models"]["bcnn"]["trained_this_run"] is False
    acc = results["acceptance"]
    assert acc["c_vs_lce"]["ratio"] == pytest.approx(runs["bcnn", "lce"]["latency_us_median"] / host["latency_us_median"])
    assert acc["model_data"]["cnn_int8_flatbuffer_bytes"] == runs["cnn", "tflite-int8"]["model_bytes"]
    markdown = (out / "RESULTS.md").read_text()
    assert f"{acc['model_data']['cnn_int8_flatbuffer_bytes']:,} B / {qemu['model_bytes']:,} B" in markdown
    assert (out / "accuracy_vs_flash.png").read_bytes()[:4] == b"\x89PNG"
    if tflm:
        oncore = results["oncore"]
        assert {(e["model"], e["format"]) for e in oncore} == {
            ("cnn", "int8"),
            ("cnn", "float"),
            ("mlp", "int8"),
            ("mlp", "float"),
        }
        assert all(e["ran"] and e["images"] == 8 and e["agreement_tflm_python"] == 1.0 for e in oncore)
        assert acc["tflm_agreement"]["ok"] is True and acc["bnn_vs_tflm"]["ratios"]["flash"] > 1
        assert runs["cnn", "tflm-qemu-int8-cmsis_nn"]["firmware_flash_bytes"] > runs["cnn", "tflite-int8"]["model_bytes"]
        assert "## On the core: bnn engine and TFLite-Micro under QEMU" in markdown
    else:
        assert results["oncore"] == [] and "## On the core" not in markdown
    # Everything is now in place: a second run reuses the conversions.
    again = run_module("bench", *args, "--cores", "cortex-m4", "--core-images", "5", "--tflm-cores", "none")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["models"]["bcnn"]["converted_this_run"] is False
