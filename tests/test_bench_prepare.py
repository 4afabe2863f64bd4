"""bench.prepare's reuse rules and bench.machine's readings, on small files (no training)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import bench.prepare
from bench.machine import cpu_model, git_commit, machine_info
from bench.prepare import conversion_mismatch, flatbuffer_path, prepare_model, read_json, train_recipe, training_mismatch
from pipeline.artifacts import sha256_bytes, sha256_file
from pipeline.errors import InputError

DATA = {"t10k-images-idx3-ubyte.gz": "aa", "train-images-idx3-ubyte.gz": "bb"}
REPO = Path(__file__).resolve().parent.parent


def _train_report(**changes) -> dict:
    report = {"model": "bcnn", "limit": None, "params": 93790, "data": {"sha256": dict(DATA)}, "recipe": {"name": "seed"}}
    report.update(changes)
    return report


def test_training_mismatch_accepts_a_full_training_of_the_zoo_model_on_the_same_data():
    assert training_mismatch("bcnn", _train_report(), DATA, 93790) is None
    assert training_mismatch("bcnn", _train_report(recipe={"name": "best"}), DATA, 93790) is None  # any recipe
    assert training_mismatch("bcnn", _train_report(), DATA, 93790, "seed") is None
    assert training_mismatch("bcnn", _train_report(), DATA, 93790, "fast") == "trained with the seed recipe, not fast"
    assert "no readable" in training_mismatch("bcnn", None, DATA, 93790)
    assert "model 'cnn'" in training_mismatch("bcnn", _train_report(model="cnn"), DATA, 93790)
    assert "first 2000 images" in training_mismatch("bcnn", _train_report(limit=2000), DATA, 93790)
    assert "parameters" in training_mismatch("bcnn", _train_report(params=1), DATA, 93790)
    other = {**DATA, "train-images-idx3-ubyte.gz": "cc"}
    assert "other MNIST" in training_mismatch("bcnn", _train_report(), other, 93790)


def _converted(folder: Path, h5_sha: str) -> dict:
    flat = folder / "m.tflite"
    flat.write_bytes(b"float model")
    lce = folder / "m.lce.tflite"
    lce.write_bytes(b"lce model")
    report = {
        "source": {"path": "m.h5", "sha256": h5_sha},
        "formats": {
            # paths as convert records them: relative to wherever it ran
            "float": {"path": "somewhere/m.tflite", "sha256": sha256_bytes(b"float model")},
            "int8": {"skipped": True, "reason": "binary"},
            "lce": {"path": "somewhere/m.lce.tflite", "sha256": sha256_bytes(b"lce model")},
        },
    }
    (folder / "m.convert.json").write_text(json.dumps(report))
    return report


def test_conversion_mismatch_checks_the_source_and_every_flatbuffer(tmp_path):
    report = _converted(tmp_path, "h5sha")
    assert conversion_mismatch("h5sha", report, tmp_path) is None
    assert flatbuffer_path(tmp_path, report["formats"]["lce"]) == tmp_path / "m.lce.tflite"
    assert "another .h5" in conversion_mismatch("othersha", report, tmp_path)
    assert "no readable" in conversion_mismatch("h5sha", None, tmp_path)
    (tmp_path / "m.lce.tflite").write_bytes(b"changed")
    assert "changed since" in conversion_mismatch("h5sha", report, tmp_path)
    (tmp_path / "m.tflite").unlink()
    assert "missing" in conversion_mismatch("h5sha", report, tmp_path)
    without_lce = {"source": report["source"], "formats": {"float": report["formats"]["float"]}}
    assert "lacks" in conversion_mismatch("h5sha", without_lce, tmp_path)


def test_the_bench_trains_each_model_with_its_default_recipe_unless_asked():
    assert train_recipe("bcnn") == "fast"  # >= 99.0 %, not the seed study's 6 epochs
    assert (train_recipe("cnn"), train_recipe("mlp")) == ("seed", "seed")
    assert train_recipe("bcnn", "seed") == "seed"


def test_a_model_left_by_another_recipe_is_trained_again_with_the_default(tmp_path, monkeypatch):
    """artifacts/bcnn.h5 from the seed recipe (make demo RECIPE=seed): the bench trains fast, unless asked for seed."""
    (tmp_path / "bcnn.h5").write_bytes(b"a seed-recipe model")
    (tmp_path / "bcnn.train.json").write_text(json.dumps(_train_report()))
    h5_sha = sha256_file(tmp_path / "bcnn.h5")
    report = _converted(tmp_path, h5_sha)
    report["formats"] = {"float": report["formats"]["float"], "lce": report["formats"]["lce"]}
    (tmp_path / "bcnn.convert.json").write_text(json.dumps(report))
    commands: list[list[str]] = []

    def fake_train(command, what, log):
        commands.append(command)
        (tmp_path / "bcnn.train.json").write_text(json.dumps(_train_report(recipe={"name": "fast"})))

    monkeypatch.setattr(bench.prepare, "_run", fake_train)
    monkeypatch.setattr(bench.prepare, "_zoo_params", lambda name: 93790)
    lines: list[str] = []
    kwargs = {"data_sha256": DATA, "data_dir": None, "reuse": False, "check_images": 10, "log": lines.append}
    asked = prepare_model("bcnn", tmp_path, recipe="seed", **kwargs)
    assert commands == [] and not asked.trained and asked.recipe == "seed"
    assert lines[0] == f"bcnn: reusing {tmp_path / 'bcnn.h5'} (seed recipe)"
    lines.clear()
    default = prepare_model("bcnn", tmp_path, **kwargs)
    (command,) = commands
    assert command[command.index("--recipe") + 1] == "fast" and command[command.index("--model") + 1] == "bcnn"
    assert lines[0] == "bcnn: training with the fast recipe (trained with the seed recipe, not fast)"
    assert default.trained and default.recipe == "fast" and default.summary()["recipe"] == "fast"


def test_read_json_and_reuse_without_a_model(tmp_path):
    assert read_json(tmp_path / "none.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_json(tmp_path / "list.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert read_json(tmp_path / "bad.json") is None
    with pytest.raises(InputError, match="--reuse"):
        prepare_model("bcnn", tmp_path, data_sha256=DATA, data_dir=None, reuse=True, check_images=10, log=lambda _: None)


def test_machine_readings():
    text = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 2.0GHz\nmodel name\t: other\n"
    assert cpu_model(text) == "Some CPU @ 2.0GHz"
    git = git_commit(REPO)
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and isinstance(git["dirty"], bool)
    info = machine_info(REPO)
    assert info["git"]["commit"] == git["commit"] and info["cpu_count"] >= 1
    assert info["packages"]["tensorflow"] and info["python"].count(".") == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", info["date"])
    assert json.loads(json.dumps(info, allow_nan=False)) == info  # JSON-ready as it is: no tuple, path or NaN
