"""``python -m study``: the quick run writes every file of its folder; bad input; the measuring and reuse helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import run_module, stderr_lines

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Three of the six models keep the test short while covering every deployment path: logreg
# (tflm, int8), bc_mlp (binary weights, real activations: the bnn engine's decision, then tflm,
# float) and bcnn (the bnn engine).
QUICK_MODELS = ("logreg", "bc_mlp", "bcnn")
EDA_FILES = {"eda_samples.png", "eda_tsne.png", "confusion_kmeans.png", "kmeans_confused_pairs.png"}


@pytest.mark.slow
def test_quick_run_writes_every_file_then_reuses(tmp_path: Path, mnist_path: Path) -> None:
    out, artifacts = tmp_path / "out", tmp_path / "artifacts"
    args = ["--quick", "--models", ",".join(QUICK_MODELS), "--out", out, "--artifacts", artifacts, "--data", mnist_path]
    result = run_module("study", *args)
    assert result.returncode == 0, result.stderr
    expected = EDA_FILES | {"RESULTS.md", "results.json", "accuracy_vs_size.png"}
    expected |= {f"confusion_{name}.png" for name in QUICK_MODELS}
    assert {path.name for path in out.iterdir()} == expected
    for name in expected - {"RESULTS.md", "results.json"}:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    results = json.loads((out / "results.json").read_text())
    assert results["model_order"] == list(QUICK_MODELS) and set(results["models"]) == set(QUICK_MODELS)
    assert results["run"]["quick"] is True and results["test_images"] == 200
    assert results["baseline"]["peak_rss_bytes"] > 100 * 2**20
    for model in results["models"].values():
        assert 0.0 <= model["test_accuracy"] <= 1.0
        assert model["memory"]["peak_rss_bytes"] > results["baseline"]["peak_rss_bytes"] // 2
        tensors = model["memory"]["tensors"]
        assert tensors["weights"] >= 4 * model["trainable_params"] and tensors["gradients"] == tensors["trainable_weights"]
        assert tensors["optimizer_state"] >= 2 * tensors["trainable_weights"]  # Adam's two moments
        assert model["bytes"]["h5"] > 0 and model["bytes"]["float"] > 0 and model["bytes"]["lce"] > 0
        assert model["deploy"]["engine"] in ("bnn", "tflm") and model["deploy"]["images"] == 200
        assert model["deploy"]["latency_us_median"] > 0 and sum(map(sum, model["confusion_matrix"])) == 200
        assert model["train"]["reused"] is False
    assert results["models"]["logreg"]["deploy"]["format"] == "int8"
    assert results["models"]["bcnn"]["deploy"]["engine"] == "bnn"
    assert results["models"]["bcnn"]["deploy"]["agreement_keras"] == 1.0
    bc_mlp = results["models"]["bc_mlp"]
    assert bc_mlp["bytes"]["int8"] is None and bc_mlp["binary_weights"] == 784 * 128 + 128 * 128 + 128 * 10
    # the bnn engine deploys it, or its own one-line refusal is recorded
    assert bc_mlp["deploy"]["engine"] == "bnn" or bc_mlp["deploy"]["refusals"]["bnn"].startswith("python -m firmware_gen: error:")
    markdown = (out / "RESULTS.md").read_text()
    for claim in results["claims"]:
        assert claim["claim"] in markdown
    assert "Quick run" in markdown and all(f"`{name}`" in markdown for name in QUICK_MODELS)
    assert not list(tmp_path.glob(".*")) and not list(artifacts.glob(".*tmp*"))

    again = run_module("study", "--quick", "--models", "logreg", "--out", out, "--artifacts", artifacts, "--data", mnist_path)
    assert again.returncode == 0, again.stderr
    assert "logreg: reusing" in again.stdout and "logreg: training" not in again.stdout
    assert {path.name for path in out.iterdir()} == EDA_FILES | {
        "RESULTS.md",
        "results.json",
        "accuracy_vs_size.png",
        "confusion_logreg.png",
    }
    assert json.loads((out / "results.json").read_text())["models"]["logreg"]["train"]["reused"] is True


def _one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("python -m study: error:"), lines
    return lines[0]


def test_bad_models(tmp_path: Path) -> None:
    line = _one_line_exit_2(run_module("study", "--out", tmp_path / "out", "--models", "mlp,resnet"))
    assert "logreg,mlp,bc_mlp,cnn,bc_cnn,bcnn" in line
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("keep")
    assert "is not a folder" in _one_line_exit_2(run_module("study", "--out", target, "--quick"))
    assert target.read_text() == "keep"


def test_refuses_to_replace_an_unrelated_folder(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert "refusing to replace" in _one_line_exit_2(run_module("study", "--out", folder, "--quick"))
    assert (folder / "notes.txt").read_text() == "mine"


def test_write_folder_replaces_a_study_folder_whole(tmp_path: Path) -> None:
    from pipeline.errors import InputError
    from study.cli import write_folder

    out = tmp_path / "results"
    write_folder(out, {"results.json": b"{}", "old.png": b"x"})
    write_folder(out, {"results.json": b"{}\n", "RESULTS.md": b"# r\n"})
    assert sorted(path.name for path in out.iterdir()) == ["RESULTS.md", "results.json"]
    assert [path.name for path in tmp_path.iterdir()] == ["results"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a").write_text("a")
    with pytest.raises(InputError, match="refusing"):
        write_folder(tmp_path / "other", {"results.json": b"{}"})


def test_run_measured_reports_the_child_peak_rss_and_status() -> None:
    from study.training import run_measured

    # The child holds its 300 MiB for half a second: the peak is polled every 50 ms. Run from
    # pytest (a process of 1 GB and more by now), it also checks that the parent's size does not
    # leak into the child's figure (Linux's ru_maxrss would report the parent's RSS).
    allocate = "import time, numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum() > 0); time.sleep(0.5)"
    run = run_measured([sys.executable, "-c", allocate])
    assert run.status == 0 and run.stdout.strip() == "True"
    assert 300 * 2**20 <= run.peak_rss_bytes < 1024 * 2**20
    assert run.cpu_seconds > 0 and run.wall_seconds >= run.cpu_seconds / 4
    failed = run_measured([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert failed.status == 1 and "boom" in failed.stderr


def test_run_measured_excludes_the_parent_memory() -> None:
    """A child started while this process holds 400 MiB reports its own peak, not this process's."""
    import numpy as np

    from study.training import run_measured

    held = np.ones(400 * 2**20 // 8)  # touched: resident in this process
    run = run_measured([sys.executable, "-c", "pass"])
    assert held.sum() > 0 and run.status == 0
    assert run.peak_rss_bytes < 100 * 2**20  # a bare interpreter is ~10-20 MiB


def test_reuse_mismatch(tmp_path: Path) -> None:
    from pipeline.artifacts import sha256_file
    from study.training import reuse_mismatch

    h5 = tmp_path / "m.h5"
    recipe = {"name": "study", "lr": 0.001}
    expected = {"model": "mlp", "recipe": recipe, "seed": 0, "limit": None, "params": 5, "data": {"a": "1"}}
    report = {**{key: value for key, value in expected.items() if key != "data"}, "data": {"sha256": {"a": "1"}}}
    assert reuse_mismatch(expected, report, {}, h5) == "no .h5"
    h5.write_bytes(b"weights")
    record = {"h5_sha256": sha256_file(h5)}
    assert reuse_mismatch(expected, report, record, h5) is None
    assert reuse_mismatch(expected, None, record, h5) == "no readable train report"
    assert "study record" in reuse_mismatch(expected, report, None, h5)
    assert reuse_mismatch(expected, {**report, "recipe": {"name": "study", "lr": 0.002}}, record, h5) == "its recipe differs"
    assert reuse_mismatch(expected, {**report, "limit": 600}, record, h5) == "its limit differs"
    assert reuse_mismatch(expected, {**report, "data": {"sha256": {"a": "2"}}}, record, h5) == "trained on other MNIST files"
    h5.write_bytes(b"other weights")
    assert "changed" in reuse_mismatch(expected, report, record, h5)


def test_claims_say_what_was_not_measured() -> None:
    from study.report import CLAIMS, claims

    rows = claims({"models": {}, "kmeans": None})
    assert [row["id"] for row in rows] == [claim["id"] for claim in CLAIMS]
    assert all(row["measured"].startswith("not measured") for row in rows)
