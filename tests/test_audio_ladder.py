"""The audio verification ladder on a trained keyword model: from raw samples to a class, through every rung.

The narrow kws_bnn of the ``kws_audio`` fixture (trained two epochs on ``tests/audio_data.py``'s
tones and chirps, written as WAV files and read through the ``audio`` dataset kind, converted with
the front end embedded) is compiled by ``python -m firmware_gen``
for Cortex-M0 and Cortex-M4. Rungs:

1. Keras and the LCE interpreter on Python's features (``x_test``) give the same classes;
2. the firmware's C built for the host, fed the raw clips (``raw_test``) in odd chunks, makes
   Python's features byte for byte, Keras's class on every clip, and the exact int32 scores of the
   network alone (``--no-frontend``) fed Python's features;
3. the firmware under QEMU on Cortex-M0 (micro:bit) and Cortex-M4 (mps2-an386), fed the same way,
   gives the same, with the instructions split into front end and network and the same flash and
   RAM ``firmware.json`` recorded at generation;
4. ``python -m emulator`` climbs the rungs from the command line (the JSON's audio entries), and
   refuses a dataset whose front end is not the firmware's, or that has no raw clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from audio_data import CONFIG, write_spec
from conftest import require_toolchain, run_module, stderr_lines

from emulator.backends import keras_scores
from emulator.clips import run_host, run_qemu
from pipeline.frontend import FrontendConfig
from pipeline.interpreters import run_lce

pytestmark = [pytest.mark.toolchain, pytest.mark.slow]

CORES = ("cortex-m0", "cortex-m4")
ODD_CHUNKS = (1, 7, 256, 33, 2, 100)


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_toolchain("gcc")


@pytest.fixture(scope="module")
def firmware(kws_audio: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder per core with the front end, and ``network``: the Cortex-M4 network alone."""
    root = tmp_path_factory.mktemp("kws_firmware")
    folders = {}
    for name, extra in ((CORES[0], []), (CORES[1], []), ("network", ["--no-frontend"])):
        core = CORES[1] if name == "network" else name
        result = run_module("firmware_gen", "--target", core, "--model", kws_audio["lce"], "--out", root / name, *extra)
        assert result.returncode == 0, result.stderr
        folders[name] = root / name
    return folders


@pytest.fixture(scope="module")
def keras_classes(kws_audio: dict) -> np.ndarray:
    dataset = kws_audio["dataset"]
    scores, _ = keras_scores(kws_audio["h5"], dataset.x_test, classes=dataset.num_classes)
    return np.argmax(scores, axis=1)


@pytest.fixture(scope="module")
def network_scores(kws_audio: dict, firmware: dict[str, Path]) -> np.ndarray:
    from emulator.host import run_host as run_network

    return np.asarray(run_network(firmware["network"], kws_audio["dataset"].x_test).extra["scores"])


def assert_features(got: np.ndarray, want: np.ndarray, what: str) -> None:
    want = want.reshape(got.shape)
    if not np.array_equal(got, want):
        clip, frame, band = np.argwhere(got != want)[0]
        where = f"{what}: clip {clip} frame {frame} band {band}"
        pytest.fail(f"{where}: C {got[clip, frame, band]}, Python {want[clip, frame, band]}")


def test_keras_and_lce_agree_on_pythons_features(kws_audio: dict, keras_classes: np.ndarray) -> None:
    dataset = kws_audio["dataset"]
    lce = np.argmax(run_lce(kws_audio["lce"].read_bytes(), dataset.x_test), axis=1)
    np.testing.assert_array_equal(lce, keras_classes)
    assert np.mean(keras_classes == dataset.y_test) >= 0.6  # trained (chance is 0.25): the ladder compares a model that learned


def test_host_build_from_raw_samples(
    kws_audio: dict, firmware: dict[str, Path], keras_classes: np.ndarray, network_scores: np.ndarray
) -> None:
    dataset = kws_audio["dataset"]
    for folder in (firmware[CORES[0]], firmware[CORES[1]]):
        run = run_host(folder, dataset.raw_test, chunks=ODD_CHUNKS)
        assert_features(run.results.features, dataset.x_test, f"host build of {folder.name}")
        np.testing.assert_array_equal(run.results.predictions, keras_classes)
        np.testing.assert_array_equal(run.results.scores, network_scores)


@pytest.mark.parametrize("core", CORES)
def test_qemu_firmware_from_raw_samples(
    kws_audio: dict, firmware: dict[str, Path], keras_classes: np.ndarray, network_scores: np.ndarray, core: str
) -> None:
    dataset = kws_audio["dataset"]
    run = run_qemu(firmware[core], dataset.raw_test, core=core, chunks=(128,))
    assert_features(run.results.features, dataset.x_test, f"QEMU {core}")
    np.testing.assert_array_equal(run.results.predictions, keras_classes)
    np.testing.assert_array_equal(run.results.scores, network_scores)
    split = {part: float(values.mean()) for part, values in run.instructions.items()}
    assert split["frontend"] > 100_000 and split["network"] > 100_000
    assert split["total"] == pytest.approx(split["frontend"] + split["network"])
    assert run.results.pushes.tolist() == [CONFIG.clip_samples // 128] * len(dataset.raw_test)
    report = json.loads((firmware[core] / "firmware.json").read_text())["report"]
    for link, entry in run.links.items():
        recorded = report["frontend" if link == "frontend" else link]
        assert (entry["flash_bytes"], entry["ram_bytes"]) == (recorded["flash_bytes"], recorded["ram_bytes"]), link
    assert 0 < run.results.stack_peak_bytes <= report["deployable"]["stack_bytes"]


def _emulate(*args: object) -> tuple[int, list[str]]:
    result = run_module("emulator", *args)
    return result.returncode, stderr_lines(result)


def test_emulator_climbs_the_audio_rungs(kws_audio: dict, firmware: dict[str, Path]) -> None:
    dataset, data = kws_audio["dataset"], kws_audio["data"]
    folder = firmware[CORES[0]]
    argv = [folder, "--backend", "qemu", "--target", CORES[0], "--data", data, "--reference", kws_audio["h5"]]
    status, errors = _emulate(*argv, "--board", "stm32f030f4", "--chunks", "100,7")
    assert status == 0, errors
    report = json.loads((folder / f"{folder.name}.qemu.emulate.json").read_text())
    count = len(dataset.y_test)
    assert report["fed"] == "raw" and report["images"] == count and report["agreement"] == 1.0
    assert report["reference"]["backend"] == "keras"
    entry = report["frontend"]
    assert entry["config_sha256"] == CONFIG.sha256() and entry["features_equal"] == count and entry["chunks"] == [100, 7]
    split = report["instructions_per_clip"]
    assert split["total"] == pytest.approx(split["frontend"] + split["network"]) == report["instructions_per_inference"]
    assert set(report["flash_ram"]) == {"deployable", "network", "frontend"}
    assert (report["flash_bytes"], report["ram_bytes"]) == (
        report["flash_ram"]["deployable"]["flash_bytes"],
        report["flash_ram"]["deployable"]["ram_bytes"],
    )
    assert report["budget"]["ok"] and report["budget"]["ram"]["need"] == report["ram_bytes"]
    assert "features" not in report["extra"] and len(report["extra"]["scores"]) == count

    status, errors = _emulate(folder, "--data", data)  # the host build, the LCE reference
    host = json.loads((folder / f"{folder.name}.host.emulate.json").read_text())
    assert status == 0 and host["agreement"] == 1.0 and host["reference"]["backend"] == "lce", errors
    assert host["frontend"]["features_equal"] == count and host["instructions_per_clip"]["total"] is None

    def sizes(links: dict) -> dict:
        return {name: (part["flash_bytes"], part["ram_bytes"]) for name, part in links.items()}

    assert sizes(host["flash_ram"]) == sizes(report["flash_ram"])  # firmware.json's, measured at generation

    status, errors = _emulate(kws_audio["lce"], "--data", data, "--json", folder / "lce.json")
    lce = json.loads((folder / "lce.json").read_text())
    assert status == 0 and lce["fed"] == "features" and lce["frontend"]["config_sha256"] == CONFIG.sha256(), errors


def test_emulator_refuses_data_from_another_front_end(kws_audio: dict, firmware: dict[str, Path], tmp_path: Path) -> None:
    from test_convert_frontend import features_npz

    other = write_spec(Path(kws_audio["data"]).parent / "other.json", FrontendConfig(**{**CONFIG.to_json(), "log_offset": 9}))
    npz = features_npz(kws_audio["dataset"], tmp_path / "features.npz")
    folder = firmware[CORES[1]]
    for argv, message in (
        ([folder, "--data", other], "differ in log_offset"),
        ([folder, "--backend", "qemu", "--target", CORES[1], "--data", other], "is not the firmware's"),
        ([folder, "--data", npz], "has no raw clips"),
        ([kws_audio["lce"], "--data", other], "is not the one"),
        ([firmware["network"], "--data", other], "is not the one"),
    ):
        status, errors = _emulate(*argv)
        assert status == 2 and len(errors) == 1 and message in errors[0], (argv, errors)
    assert not list(folder.glob("*.emulate.json"))


def test_features_that_differ_from_pythons_fail_the_run(kws_audio: dict, firmware: dict[str, Path], tmp_path: Path) -> None:
    """The first audio rung is a gate: a front end whose C was edited (one step per octave less) is caught."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(firmware[CORES[0]], folder)
    source = folder / "bnn_frontend.c"
    text, line = source.read_text(), f"#define FE_LOG_SCALE {CONFIG.log_scale}\n"
    assert line in text
    source.write_text(text.replace(line, f"#define FE_LOG_SCALE {CONFIG.log_scale - 1}\n"))
    status, errors = _emulate(folder, "--data", kws_audio["data"], "--min-agreement", "0", "--allow-modified")
    count = len(kws_audio["dataset"].y_test)
    assert status == 1 and len(errors) == 1 and "features differ from Python's on" in errors[0], errors
    report = json.loads((folder / "edited.host.emulate.json").read_text())
    assert report["frontend"]["features_equal"] < count and report["frontend"]["features_differ"]
