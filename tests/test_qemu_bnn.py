"""The bnn engine's C on every Cortex-M core under QEMU, against the same C built for the host.

A tiny trained BCNN (``tiny_models``, converted to LCE by ``emulator_artifacts``) is compiled
by ``firmware_gen.bnn`` and wrapped by ``firmware_gen.baremetal``; each core is built once. The references are the
same engine output built for the host by ``emulator.host.run_host`` (gcc, the compiler's
builtin popcount) and the LCE interpreter: scores must equal the host build's (integers, so
exactly), classes must agree with LCE on nearly every image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, require_toolchain

from emulator.qemu import run_harness
from firmware_gen.targets import CORES, get_core

pytestmark = pytest.mark.toolchain

FULL_CORES = ("cortex-m0", "cortex-m4")  # 500 images; the others run 50
FULL, SHORT = 500, 50


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_toolchain("gcc")


@pytest.fixture(scope="module")
def lce_bytes(emulator_artifacts: Path) -> bytes:
    return (emulator_artifacts / "bcnn.lce.tflite").read_bytes()


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory, lce_bytes: bytes) -> dict[str, Path]:
    """One generated firmware folder per core (engine files + bare-metal project)."""
    from convert.flatbuffer import read_model_bytes
    from firmware_gen import baremetal, bnn

    model = read_model_bytes(lce_bytes, "bcnn.lce.tflite")
    folders = {}
    root = tmp_path_factory.mktemp("bnn_firmware")
    for name in sorted(CORES):
        core = get_core(name)
        engine = bnn.generate(model, core, None)
        project = baremetal.generate(model, core, None, engine)
        folder = root / name
        folder.mkdir()
        for file_name, data in {**engine.files, **project.files}.items():
            (folder / file_name).write_bytes(data)
        folders[name] = list_firmware_files(folder)
    return folders


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return mnist.x_test[:FULL]


@pytest.fixture(scope="module")
def host_scores(firmware: dict[str, Path], images: np.ndarray) -> np.ndarray:
    """Scores of the cortex-m4 engine output built for the host (emulator.host, builtin popcount)."""
    from emulator.host import run_host

    run = run_host(firmware["cortex-m4"], images)
    return np.asarray(run.extra["scores"], dtype=np.int32)


@pytest.fixture(scope="module")
def lce_classes(lce_bytes: bytes, images: np.ndarray) -> np.ndarray:
    from pipeline.interpreters import run_lce

    return np.argmax(run_lce(lce_bytes, images), axis=1)


@pytest.mark.parametrize("core", sorted(CORES))
def test_core_agrees_with_the_host_build(
    core: str, firmware: dict[str, Path], images: np.ndarray, host_scores: np.ndarray, lce_classes: np.ndarray
) -> None:
    count = FULL if core in FULL_CORES else SHORT
    run = run_harness(firmware[core], images[:count], core=core)
    np.testing.assert_array_equal(run.results.scores, host_scores[:count])
    # Classes: the first maximal score, as the host's argmax.
    np.testing.assert_array_equal(run.results.predictions, np.argmax(host_scores[:count], axis=1))
    agreement = float((run.results.predictions == lce_classes[:count]).mean())
    assert agreement >= 0.99, f"{core}: agreement with the LCE interpreter {agreement:.4f}"
    detail = run.footprint.detail
    assert 0 < run.results.stack_peak_bytes <= detail["stack_bytes"], detail
    assert run.footprint.flash_bytes > detail["deployable_elf"]["text"] // 2
    print(
        f"{core}: {run.instructions.mean():,.0f} instructions/inference, flash {run.footprint.flash_bytes:,} B, "
        f"RAM {run.footprint.ram_bytes:,} B (stack {detail['stack_bytes']} B, measured {run.results.stack_peak_bytes} B)"
    )
