"""The front, the best trial and the three report files, on trials made up for the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.report import (
    accuracy_standard_error,
    best_trial,
    pareto_front,
    ranked_trials,
    render_markdown,
    render_plot,
    write_reports,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(number: int, accuracy: float, flash: int, ram: int, instructions: float, **extra: Any) -> dict[str, Any]:
    row = {
        "number": number,
        "state": "COMPLETE",
        "tag": f"arch{number}",
        "values": {"accuracy": accuracy, "flash_bytes": flash, "ram_bytes": ram, "instructions": instructions},
        "feasible": True,
        "pruned": None,
        "duplicate_of": None,
        "seconds": 60.0,
        "fail_reason": None,
    }
    row.update(extra)
    return row


ROWS = [
    _row(0, 0.980, 10_000, 1_000, 1e6),
    _row(1, 0.990, 14_000, 1_500, 1.2e6),  # more accurate, bigger: on the front
    _row(2, 0.985, 15_000, 1_600, 1.3e6),  # dominated by 1
    _row(3, 0.995, 17_000, 1_500, 1.0e6, feasible=False),  # best values but over budget: excluded
    _row(4, 0.990, 14_000, 1_500, 1.2e6, duplicate_of=1),  # a repeat of 1 counts once
    _row(5, 0.970, 9_000, 2_000, 0.9e6),  # least flash and instructions: on the front
    {**_row(6, 0.0, 0, 0, 0), "state": "PRUNED", "values": None, "pruned": "packed size over budget"},
]


def test_front_keeps_the_non_dominated_feasible_trials() -> None:
    assert pareto_front(ROWS) == [1, 0, 5]


def test_best_is_the_most_accurate_that_fits() -> None:
    assert best_trial(ROWS) == 1
    tie = [*ROWS, _row(7, 0.990, 13_000, 1_700, 1.5e6)]
    assert best_trial(tie) == 7  # same accuracy, less flash
    assert best_trial([ROWS[3], ROWS[6]]) is None


def test_ranked_trials_follow_the_best_trial_order() -> None:
    # feasible, distinct candidates only, most accurate first (ties: less flash)
    assert ranked_trials(ROWS, 2) == [1, 2]
    assert ranked_trials(ROWS, 10) == [1, 2, 0, 5]
    assert ranked_trials([ROWS[3], ROWS[6]], 3) == []


def test_the_final_step_keeps_the_most_accurate_retraining(monkeypatch: Any) -> None:
    import search.training
    from search.final import retrain_best
    from search.space import Arch, Conv
    from train.trainer import TrainResult

    archs = [Arch(Conv(channels, 3), ()) for channels in (8, 16, 24)]
    # per (channels, seed): validation accuracy per epoch and the epoch the training kept (None: the
    # last). The second-ranked trial wins with seed 6; the third ties it; (16, 5) kept its first
    # epoch, whose 0.979 counts, not the last epoch's 0.99.
    val = {
        (8, 5): ([0.5, 0.97], None),
        (8, 6): ([0.96], None),
        (16, 5): ([0.979, 0.99], 1),
        (16, 6): ([0.6, 0.98], 2),
        (24, 5): ([0.98], None),
        (24, 6): ([0.9], None),
    }

    seen: list[str] = []

    def fake_train(arch: Arch, recipe: Any, data: Any, *, seed: int, name: str, limit: int | None = None) -> TrainResult:
        seen.append(f"{arch.tag()}/{seed}")
        assert seed in (5, 6) and (name, limit) == ("bnn-x", None)
        history, kept_epoch = val[arch.stem.channels, seed]
        return TrainResult(None, {"val_accuracy": history}, 0.0, None, 1.0, 1.0, 0, 5000, kept_epoch=kept_epoch)

    monkeypatch.setattr(search.training, "train_candidate", fake_train)
    recipe = type("R", (), {"name": "fast", "epochs": 2})()
    lines: list[str] = []
    kept = retrain_best(
        [(4, archs[0], 0.99), (7, archs[1], 0.98), (9, archs[2], 0.97)],
        name="bnn-x",
        recipe=recipe,
        data=None,  # type: ignore[arg-type]
        limit=None,
        seeds=(5, 6),
        log=lines.append,
    )
    assert seen == [f"{a.tag()}/{seed}" for a in archs for seed in (5, 6)] and len(lines) == 12
    assert (kept.number, kept.arch, kept.seed) == (7, archs[1], 6) and kept.result.validation_accuracy == 0.98
    rows = [
        (row["trial"], row["seed"], row["final_validation_accuracy"], row["kept_epoch"], row["kept"]) for row in kept.candidates
    ]
    assert rows == [
        (4, 5, 0.97, None, False),
        (4, 6, 0.96, None, False),
        (7, 5, 0.979, 1, False),
        (7, 6, 0.98, 2, True),
        (9, 5, 0.98, None, False),
        (9, 6, 0.9, None, False),
    ]
    assert all(row["validation_images"] == 5000 for row in kept.candidates)


def test_reports_are_written(tmp_path: Path) -> None:
    report = {
        "study": "test",
        "board": {"name": "stm32f030f4", "core": "cortex-m0", "flash_bytes": 16384, "ram_bytes": 4096},
        "counts": {"COMPLETE": 6, "PRUNED": 1},
        "trial_seconds": 360.0,
        "front": pareto_front(ROWS),
        "best": best_trial(ROWS),
        "final": {"summary": ["a final line"]},
        "trials": ROWS,
        "max_instructions": None,
    }
    text = render_markdown(report)
    assert "Validation:" not in text  # the made-up trials do not say how many images they were measured on
    report["trials"] = [{**row, "measurements": {"val_images": 5000}} for row in ROWS]
    text = render_markdown(report)
    assert (
        "Validation: 5,000 held-back images per trial; one standard error at the best trial's 99.00 % is "
        "0.14 points, so trials less than about 0.28 points apart are not told apart." in text
    )
    assert "| 1 (best) | `arch1` | 99.00 % | 14,000 | 1,500 | 1.200 M |" in text
    assert "same candidate as trial 1" in text and "packed size over budget" in text and "does not fit the board" in text
    assert "- a final line" in text
    assert render_plot(report).startswith(PNG_MAGIC)
    paths = write_reports(tmp_path, report)
    assert [p.name for p in paths] == ["search.json", "search.md", "search.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_accuracy_standard_error_is_the_binomial_one() -> None:
    assert accuracy_standard_error(0.99, 5000) == pytest.approx(0.0014071, rel=1e-4)
    assert accuracy_standard_error(1.0, 10) == 0.0
    # four times the images, half the noise
    assert accuracy_standard_error(0.9, 400) == pytest.approx(2 * accuracy_standard_error(0.9, 1600))
    for accuracy, images in ((0.5, 0), (1.5, 10), (-0.1, 10)):
        with pytest.raises(ValueError, match="accuracy in"):
            accuracy_standard_error(accuracy, images)


def test_the_final_summary_gives_the_noise_of_its_validation_figures() -> None:
    from search.final import _noise_note

    rows = [
        {"trial": 1, "seed": 0, "final_validation_accuracy": 0.9938, "validation_images": 5000, "kept": True},
        {"trial": 1, "seed": 1, "final_validation_accuracy": 0.9930, "validation_images": 5000, "kept": False},
    ]
    assert _noise_note(rows) == " (one standard error of these figures: 0.11 points on 5,000 validation images)"
    assert _noise_note([{**row, "validation_images": None} for row in rows]) == ""  # reports of older versions
