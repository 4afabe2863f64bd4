"""``python -m search``: bad input is one line and exit 2; candidates that cannot fit are pruned before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import mnist_dir, require_toolchain, run_module, stderr_lines


def _one_line_exit_2(result, expect: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and expect in lines[0], lines


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--board", "stm32f999"], "unknown board 'stm32f999'"),
        (["--board", "stm32f030f4", "--trials", "0"], "--trials: must be a positive integer"),
        (["--board", "stm32f030f4", "--recipe", "fastest"], "--recipe 'fastest': no such recipe"),
        (["--board", "stm32f030f4", "--set", "epochs=many"], "epochs takes an integer"),
        (["--board", "stm32f030f4", "--final-set", "colour=blue"], "unknown recipe field 'colour'"),
        (["--board", "stm32f030f4", "--limit", "50"], "--limit 50 is too small"),
        (["--board", "stm32f030f4", "--space", "/nonexistent/space.json"], "--space /nonexistent/space.json"),
        (["--board", "stm32f030f4", "--sampler", "grid"], "invalid choice: 'grid'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], expect: str) -> None:
    out = tmp_path / "out"
    _one_line_exit_2(run_module("search", *args, "--out", out), expect)
    assert not out.exists()


@pytest.mark.parametrize(
    ("shape", "dtype", "expect"),
    [
        ((49, 10, 1), "float32", "the examples are float32 (49, 10, 1)"),
        ((16, 16, 3, 2), "uint8", "the examples are uint8 (16, 16, 3, 2)"),
    ],
)
def test_examples_the_candidates_cannot_take(tmp_path: Path, shape: tuple[int, ...], dtype: str, expect: str) -> None:
    import numpy as np

    require_toolchain()
    data = tmp_path / "other.npz"
    x = np.zeros((20, *shape), dtype=dtype)
    np.savez(data, x_train=x, y_train=np.arange(20) % 2, x_test=x, y_test=np.arange(20) % 2)
    out = tmp_path / "out"
    result = run_module("search", "--board", "stm32f030f4", "--data", data, "--out", out)
    _one_line_exit_2(result, expect)
    assert "the search takes 8-bit images or features" in result.stderr and not out.exists()


def test_bad_storage_url(tmp_path: Path) -> None:
    require_toolchain()
    result = run_module("search", "--board", "stm32f030f4", "--storage", "nosuchdb://x", "--out", tmp_path, "--data", mnist_dir())
    _one_line_exit_2(result, "--storage nosuchdb://x: cannot open the study storage")


def test_oversized_candidates_are_pruned_before_training(tmp_path: Path) -> None:
    """A space whose every candidate is too big for the board: each trial is pruned on its packed
    size (no model is built or trained), then the search gives up with one line."""
    require_toolchain()
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"stem_channels": [64], "blocks": [2], "block_channels": [128], "block_paddings": ["same"]}))
    out = tmp_path / "out"
    result = run_module(
        "search", "--board", "stm32f030f4", "--space", space, "--max-pruned", "3", "--out", out, "--data", mnist_dir()
    )
    _one_line_exit_2(result, "gave up after 3 pruned candidates")
    assert result.stdout.count("pruned: packed size over budget") == 3
    assert "trained" not in result.stdout and "untrained firmware" not in result.stdout
    assert not (out / "trials").exists()


def test_a_study_refuses_other_settings(tmp_path: Path) -> None:
    require_toolchain()
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"stem_channels": [64], "blocks": [2], "block_channels": [128], "block_paddings": ["same"]}))
    common = ["--board", "stm32f030f4", "--space", space, "--max-pruned", "1", "--out", tmp_path / "out", "--data", mnist_dir()]
    first = run_module("search", *common)
    assert "gave up after 1 pruned candidates" in first.stderr
    again = run_module("search", *common, "--epochs", "2")
    _one_line_exit_2(again, "study 'stm32f030f4' was started with other settings (recipe differ)")


def test_a_study_of_an_older_version_resumes(tmp_path: Path) -> None:
    """A study stored before a recipe field existed resumes: the field means its default then."""
    import optuna

    from search.study import CONFIG_KEY

    require_toolchain()
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"stem_channels": [64], "blocks": [2], "block_channels": [128], "block_paddings": ["same"]}))
    out = tmp_path / "out"
    common = ["--board", "stm32f030f4", "--space", space, "--max-pruned", "1", "--out", out, "--data", mnist_dir()]
    assert "gave up after 1 pruned candidates" in run_module("search", *common).stderr
    study = optuna.load_study(study_name="stm32f030f4", storage=f"sqlite:///{out / 'search.db'}")
    config = study.user_attrs[CONFIG_KEY]
    del config["recipe"]["keep_best_epochs"]  # as a study of the version before that field stored it
    del config["optimize"]  # the version before --optimize compiled every candidate for speed
    study.set_user_attr(CONFIG_KEY, config)
    _one_line_exit_2(run_module("search", *common, "--max-pruned", "2"), "gave up after 2 pruned candidates")
    _one_line_exit_2(run_module("search", *common, "--optimize", "size"), "was started with other settings (optimize differ)")
    config["recipe"]["lr"] = 0.5  # a real difference is still refused
    study.set_user_attr(CONFIG_KEY, config)
    _one_line_exit_2(run_module("search", *common), "was started with other settings (recipe differ)")


def test_brute_sampler_draws_every_candidate_of_a_small_space_once() -> None:
    """``--sampler brute``: the 36 candidates of the 16 KiB size space, each once, then the study
    stops by itself (where TPE soon proposes measured candidates again)."""
    import optuna

    from search.space import load_space, sample_arch
    from search.study import make_sampler, run_worker

    space = load_space(str(Path(__file__).resolve().parents[1] / "search" / "spaces" / "stm32f030f4-size.json"))
    study = optuna.create_study(directions=["maximize", "minimize", "minimize", "minimize"])
    study.sampler = make_sampler("brute", startup_trials=4, seed=3)
    tags: list[str] = []

    def objective(trial) -> tuple[float, float, float, float]:
        tags.append(sample_arch(trial, space).tag())
        if "b128k3v+p b128k3v+p" in tags[-1]:
            raise optuna.TrialPruned()  # pruned candidates are drawn once too
        return 0.99, float(len(tags)), 1.0, 1.0

    counts = run_worker(study, objective, trials=1000, max_pruned=1000, log=lambda line: None)
    assert len(tags) == len(set(tags)) == 3 * 3 * 4  # block channels 3 x 3, no dense or 3 widths
    assert counts == {"COMPLETE": 32, "PRUNED": 4}
