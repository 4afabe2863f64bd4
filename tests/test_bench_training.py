"""``python -m bench.training``: the summary and report from given runs, bad input, one tiny run.

The benchmark's figures come from full trainings (minutes each); here the arithmetic is checked
on made-up rows and the command once end to end on a 300-image slice.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_module, stderr_lines

from bench.training import RSS_BAR, render, summarize


def _row(recipe: str, seed: int, accuracy: float, seconds: float, rss: int = 900_000_000) -> dict:
    return {
        "recipe": recipe,
        "seed": seed,
        "test_accuracy": accuracy,
        "train_seconds": seconds,
        "train_cpu_seconds": 1.5 * seconds,
        "command_seconds": seconds + 20,
        "command_cpu_seconds": 1.5 * seconds + 15,
        "peak_rss_bytes": rss,
        "epochs": 20,
        "teacher_test_accuracy": None,
        "load_average": {"start": [1.0, 1.0, 1.0], "end": [2.0, 1.5, 1.0]},
    }


def test_summary_checks_each_seed_and_takes_the_ratio_of_means():
    runs = [_row("fast", 0, 0.9912, 200.0), _row("fast", 1, 0.9904, 220.0), _row("fast", 2, 0.9899, 240.0, rss=RSS_BAR + 1)]
    runs += [_row("best", 0, 0.9910, 880.0)]
    summary = summarize(runs, "fast")
    fast = summary["recipes"]["fast"]
    assert fast["seeds"] == [0, 1, 2] and fast["min_accuracy"] == 0.9899
    assert fast["mean_accuracy"] == pytest.approx((0.9912 + 0.9904 + 0.9899) / 3)
    assert fast["time_to_bar_seconds"] == [200.0, 220.0, None]  # seed 2 never reached 99.0 %
    assert fast["peak_rss_bytes"] == RSS_BAR + 1
    acceptance = summary["acceptance"]
    assert acceptance["every_seed_at_bar"] is False
    assert acceptance["every_training_within_seconds"] is True
    assert acceptance["peak_rss_within_bar"] is False
    assert acceptance["best_over_default_train_time"] == 4.0  # 880 / mean(200, 220, 240)


def test_summary_without_best_has_no_ratio():
    summary = summarize([_row("fast", 0, 0.992, 310.0)], "fast")
    assert summary["acceptance"]["best_over_default_train_time"] is None
    assert summary["acceptance"]["every_training_within_seconds"] is False


def test_report_names_every_run_and_each_verdict():
    runs = [_row("fast", 0, 0.9912, 200.0), _row("best", 0, 0.9910, 880.0)]
    results = {
        "command": ["python", "-m", "bench.training"],
        "machine": {
            "git": {"commit": "abc", "dirty": False},
            "date": "2026-01-01T00:00:00+00:00",
            "cpu": "a CPU",
            "cpu_count": 2,
            "packages": {"tensorflow": "2.16.2", "larq": "0.14.0"},
        },
        "default_recipe": "fast",
        "limit": None,
        "runs": runs,
        "summary": summarize(runs, "fast"),
    }
    text = render(results)
    assert "| `fast` | 0 | 99.12 % | 200.0 s | 300.0 s | 220.0 s / 315.0 s | 900 MB | 1.0 -> 2.0 |" in text
    assert "`best` takes 4.4x the default recipe's training time" in text
    assert "Every seed of `fast` at >= 99.0 %: yes" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "nope"], "--recipe 'nope': no such recipe"),
        (["--seeds", "a,b"], "expected comma-separated integer seeds"),
        (["--seeds", ""], "--seeds: at least one seed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_module("bench.training", *args, "--out", tmp_path / "out")
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_one_tiny_run_end_to_end(tmp_path, mnist_path):
    out = tmp_path / "out"
    result = run_module(
        "bench.training", "--recipe", "seed", "--seeds", "1", "--best-seeds", "", "--limit", "300",
        "--data", mnist_path, "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "training.json").read_text())
    (run,) = results["runs"]
    assert (run["recipe"], run["seed"], run["epochs"]) == ("seed", 1, 6)
    assert 0 < run["train_seconds"] <= run["command_seconds"] and run["peak_rss_bytes"] > 100_000_000
    assert results["limit"] == 300 and results["summary"]["acceptance"]["best_over_default_train_time"] is None
    assert "a quick look, not the benchmark" in (out / "TRAINING.md").read_text()
