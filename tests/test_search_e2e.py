"""A tiny search end to end: trials measured as firmware, the front, the final model, then the
same study resumed by two workers at once on its storage.

Tiny means: a space of small candidates, 300 training images (30 held back for validation),
one epoch, 10 images on QEMU. Both runs share one SQLite study, one after the other:

1. ``--trials 2`` with the final retraining of both (``--final-top 2``; ``--prebuild always``:
   every candidate's untrained firmware is built too): two trials, ``search.json``/``.md``/``.png``,
   ``NAME.h5`` + ``NAME.train.json`` + the final firmware of the one kept on validation;
2. the same command with ``--trials 4`` in two worker processes at once: the study continues
   (trials 0 and 1 untouched, never run again) and each worker completes trials of its own.

Every completed trial's packed-size estimate must equal what the bnn engine reported, for the
untrained model (before training, where built) and for the trained one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import mnist_dir, python_m, require_toolchain, run_module

pytestmark = [pytest.mark.slow, pytest.mark.toolchain]

TINY_SPACE = {
    "stem_channels": [8, 16, 24],
    "stem_kernels": [3],
    "stem_paddings": ["valid", "same"],
    "stem_pools": [True],
    "blocks": [1],
    "block_channels": [32, 64],
    "block_kernels": [3],
    "block_paddings": ["valid", "same"],
    "block_pools": [True],
    "dense_layers": [0],
    "dense_widths": [32],
    "scores_precisions": ["binary"],  # float scores: tests/test_search_estimate.py and the 64 KiB run
    "stem_precisions": ["binary", "int8"],
}


def _args(space: Path, out: Path, trials: int, *extra: str) -> list[Any]:
    return [
        "--board",
        "stm32f103c8",
        "--trials",
        str(trials),
        "--space",
        space,
        "--limit",
        "300",
        "--epochs",
        "1",
        "--qemu-images",
        "10",
        "--startup-trials",
        "10",
        "--optimize",  # every candidate and the final model with the engine's size code
        "size",
        "--out",
        out,
        "--data",
        mnist_dir(),
        *extra,
    ]


def _study(out: Path) -> Any:
    import optuna

    return optuna.load_study(study_name="stm32f103c8", storage=f"sqlite:///{out / 'search.db'}")


def _complete(out: Path) -> dict[int, Any]:
    from optuna.trial import TrialState

    return {t.number: t for t in _study(out).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the three searches once; return the folder and what each step left."""
    require_toolchain()
    root = tmp_path_factory.mktemp("search")
    space, out = root / "space.json", root / "out"
    space.write_text(json.dumps(TINY_SPACE))
    final = ["--final-limit", "300", "--final-set", "epochs=1", "--final-images", "20", "--final-top", "2"]
    first = run_module("search", *_args(space, out, 2, "--prebuild", "always", *final))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    after_first = {n: (t.values, t.datetime_start) for n, t in _complete(out).items()}
    # the sampler's seed mixes in the process id, so a draw may repeat a measured candidate: that
    # trial completes as a duplicate and does not count towards --trials
    measured_first = sorted(n for n, t in _complete(out).items() if "duplicate_of" not in t.user_attrs)
    report = json.loads((out / "search.json").read_text())

    command = [*python_m("search"), *map(str, _args(space, out, 4, "--no-final"))]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=1800) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return {
        "out": out,
        "first": first,
        "report": report,
        "after_first": after_first,
        "measured_first": measured_first,
        "final": _complete(out),
    }


def test_tiny_search_writes_the_front(search: dict[str, Any]) -> None:
    report, out = search["report"], search["out"]
    assert all(row["state"] == "COMPLETE" for row in report["trials"])
    measured = [row for row in report["trials"] if row["duplicate_of"] is None]
    assert [row["number"] for row in measured] == search["measured_first"] and len(measured) == 2
    assert report["board"]["name"] == "stm32f103c8"
    assert report["front"] and report["best"] in report["front"]
    for row in measured:
        assert row["state"] == "COMPLETE" and row["feasible"] is True
        measured = row["measurements"]
        assert set(row["values"]) == {"accuracy", "flash_bytes", "ram_bytes", "instructions"}
        assert 0.0 <= row["values"]["accuracy"] <= 1.0 and row["values"]["instructions"] > 10_000
        assert measured["val_images"] == 30 and measured["qemu_images"] == 10 and measured["qemu_agreement"] == 1.0
        # the firmware's classes are Keras' on the validation split, and its flash is the QEMU build's
        assert measured["keras_agreement"] == 1.0
        assert row["values"]["flash_bytes"] == measured["qemu_flash_bytes"]
        code = (out / measured["artifacts"] / "firmware" / "bnn_model.c").read_text()
        assert "bnn_xor_popcount_loop(a, b," in code and "carry-save" not in code  # --optimize size
    markdown = (out / "search.md").read_text()
    assert markdown.startswith("# Search `stm32f103c8`")
    assert "Validation: 30 held-back images per trial; one standard error" in markdown
    assert (out / "search.png").read_bytes().startswith(b"\x89PNG")
    assert "trial 0: packed size" in search["first"].stdout


def test_estimate_equals_the_engine_for_every_trial(search: dict[str, Any]) -> None:
    trials = search["final"]
    assert _distinct(trials) >= 4
    for number in search["after_first"]:
        assert "untrained_firmware" in trials[number].user_attrs, "--prebuild always builds every candidate"
    for trial in trials.values():
        attrs = trial.user_attrs
        if "untrained_firmware" in attrs:
            assert attrs["untrained_firmware"]["estimate_check"] == [], (trial.number, attrs["untrained_firmware"])
        assert attrs["estimate_check"] == [], (trial.number, attrs["estimate_check"])
        estimate = attrs["estimate"]
        wide = 8 * estimate["classes"] * (int(attrs["score_int64"]) - int(estimate["wide_scores"]))
        assert attrs["model_data_bytes"] == estimate["model_data_bytes"] + wide
        assert attrs["arena_bytes"] == estimate["arena_bytes"]


def test_final_model_is_a_normal_pipeline_model(search: dict[str, Any]) -> None:
    out, final = search["out"], search["report"]["final"]
    train = json.loads((out / "bnn-stm32f103c8.train.json").read_text())
    # both trials were retrained; the one kept is the more accurate on the validation split
    retrained = final["retrained"]
    assert sorted(row["trial"] for row in retrained) == search["measured_first"] and sum(row["kept"] for row in retrained) == 1
    kept = next(row for row in retrained if row["kept"])
    assert kept["final_validation_accuracy"] == max(row["final_validation_accuracy"] for row in retrained)
    assert train["model"] == "bnn-stm32f103c8" and train["search"]["trial"] == kept["trial"]
    assert "among 2 final trainings" in final["summary"][0]  # the first line of search.md's "Final model"
    assert all(row["validation_images"] == 30 for row in retrained)
    assert "validation images)" in final["summary"][0]
    assert train["test_images"] == 10_000 and train["recipe"]["epochs"] == 1
    assert final["host_agreement_with_keras"] == 1.0 and final["qemu_agreement_with_keras"] == 1.0
    assert final["qemu_images"] == 20 and final["fits"] is True and final["estimate_check"] == []
    firmware = json.loads((out / final["firmware"] / "firmware.json").read_text())
    assert final["optimize"] == "size" and firmware["report"]["optimize"] == "size"
    assert "size-optimized engine code" in final["summary"][-1]
    converted = run_module("convert", out / "bnn-stm32f103c8.h5", "--formats", "lce", "--check", "50", "--data", mnist_dir())
    assert converted.returncode == 0, converted.stderr


def _distinct(trials: dict[int, Any]) -> int:
    """Completed trials that measured a new candidate (a repeat of a measured one does not count)."""
    return sum(1 for trial in trials.values() if "duplicate_of" not in trial.user_attrs)


def test_a_resumed_study_keeps_its_trials(search: dict[str, Any]) -> None:
    first, trials = search["after_first"], search["final"]
    assert len(search["measured_first"]) == 2 and sorted(first)[0] == 0
    for number, (values, started) in first.items():
        assert (trials[number].values, trials[number].datetime_start) == (values, started), "a completed trial was run again"
    assert _distinct(trials) >= 4 and min(set(trials) - set(first)) > max(first)


def test_two_workers_complete_distinct_trials(search: dict[str, Any]) -> None:
    trials, first = search["final"], search["after_first"]
    workers: dict[str, set[int]] = {}
    for number, trial in trials.items():
        if number not in first:
            workers.setdefault(trial.user_attrs["worker"], set()).add(number)
    assert len(workers) == 2 and all(workers.values()), workers


def _bar_images(count: int, seed: int, classes: int = 3) -> tuple[Any, Any]:
    """20x24 uint8 images of class c: a bright 3-pixel bar across rows 5c..5c+2, plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=count)
    images = rng.integers(0, 60, size=(count, 20, 24)).astype(np.uint8)
    for index, label in enumerate(labels):
        images[index, 5 * label + 2 : 5 * label + 5, 2:22] = 230
    return images, labels


def _colour(images: Any, labels: Any) -> Any:
    """The bars in colour: each class's bar in its own channel, the others dimmed (20x24x3)."""
    import numpy as np

    colour = np.repeat(images[..., None], 3, axis=3) // 2
    colour[np.arange(len(images)), :, :, labels % 3] = images
    return colour


def test_a_search_on_other_images(tmp_path: Path) -> None:
    """An .npz of 20x24 colour images with 3 classes: the candidates, their estimate and the final
    model follow the dataset's size, channels and class count, not MNIST's (8-bit stem on the three
    channels, 8-bit class scores)."""
    import numpy as np

    require_toolchain()
    (x_train, y_train), (x_test, y_test) = _bar_images(400, 0), _bar_images(40, 1)
    data = tmp_path / "bars.npz"
    np.savez(
        data, x_train=_colour(x_train, y_train), y_train=y_train, x_test=_colour(x_test, y_test), y_test=y_test, num_classes=3
    )
    space, out = tmp_path / "space.json", tmp_path / "out"
    narrow = {"stem_channels": [8], "block_channels": [16], "stem_precisions": ["int8"], "scores_precisions": ["int8"]}
    space.write_text(json.dumps({**TINY_SPACE, **narrow}))
    args = ["--board", "stm32f103c8", "--trials", "1", "--space", space, "--epochs", "1", "--qemu-images", "5", "--out", out]
    final = ["--final-set", "epochs=1", "--final-images", "10", "--name", "bars"]
    result = run_module("search", *args, *final, "--data", data)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trial = json.loads((out / "search.json").read_text())["trials"][0]
    assert trial["arch"]["input_size"] == [20, 24] and trial["arch"]["classes"] == 3 and trial["tag"].endswith(" 3/i8")
    assert trial["arch"]["input_channels"] == 3
    assert trial["arch"]["stem"]["precision"] == "int8" and trial["arch"]["scores"] == "int8"
    assert trial["measurements"]["estimate_check"] == []
    from convert.keras_io import load_keras_model

    model = load_keras_model(out / "bars.h5")
    assert tuple(model.input_shape) == (None, 20, 24, 3) and tuple(model.output_shape) == (None, 3)
    report = json.loads((out / "search.json").read_text())["final"]
    assert report["host_agreement_with_keras"] == 1.0 and report["qemu_agreement_with_keras"] == 1.0
    assert report["estimate_check"] == []


def test_a_search_on_audio_features_counts_the_front_end(tmp_path: Path, data_cache: Path) -> None:
    """An audio dataset (WAV files, the audio spec): the candidates take the front end's features, their
    flash and RAM are the whole firmware's (front end and clip API included), and the final model's
    firmware goes from raw samples to the class Keras predicts on QEMU's Cortex-M0."""
    from audio_data import write_audio_source

    require_toolchain()
    spec = write_audio_source(tmp_path / "source")
    space, out = tmp_path / "space.json", tmp_path / "out"
    narrow = {"stem_channels": [8], "block_channels": [16], "stem_precisions": ["int8"], "scores_precisions": ["int8"]}
    space.write_text(json.dumps({**TINY_SPACE, **narrow}))
    args = ["--board", "stm32f030f4", "--trials", "1", "--space", space, "--epochs", "1", "--qemu-images", "5", "--out", out]
    final = ["--final-set", "epochs=1", "--final-images", "10", "--name", "kws"]
    result = run_module("search", *args, *final, "--data", spec)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "search.json").read_text())
    trial = report["trials"][0]
    assert trial["arch"]["input_size"] == [31, 16] and trial["arch"]["input_channels"] == 1
    final_report = report["final"]
    assert (
        final_report["firmware"] == "firmware/kws-cortex-m0"
        and final_report["network_firmware"] == "firmware/kws-cortex-m0-network"
    )
    whole = json.loads((out / final_report["firmware"] / "firmware.json").read_text())["report"]
    network = json.loads((out / final_report["network_firmware"] / "firmware.json").read_text())["report"]
    assert final_report["flash_bytes"] == whole["flash_bytes"] > network["flash_bytes"], "the front end's flash is counted"
    assert final_report["ram_bytes"] == whole["ram_bytes"] > network["ram_bytes"]
    qemu_network = trial["measurements"]["qemu_flash_bytes"]  # the network's firmware, run on features
    assert trial["values"]["flash_bytes"] > qemu_network, "a trial's flash is the whole firmware's, not the network's"
    emulated = run_module(
        "emulator",
        out / final_report["firmware"],
        "--backend",
        "qemu",
        "--target",
        "cortex-m0",
        "--data",
        spec,
        "--reference",
        out / "kws.h5",
    )
    assert emulated.returncode == 0, emulated.stderr
    ladder = json.loads(next((out / final_report["firmware"]).glob("*.qemu.emulate.json")).read_text())
    assert ladder["agreement"] == 1.0 and ladder["fed"] == "raw" and ladder["frontend"]["features_equal"]
