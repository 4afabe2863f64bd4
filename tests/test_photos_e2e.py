"""Photos end to end, as a user runs them: a tar of JPEG folders -> train -> convert -> firmware -> QEMU Cortex-M7.

A colour BNN (the zoo's ``colour_bnn``: an 8-bit stem on the three channels, binary blocks,
8-bit scores) trains for one epoch on a few hundred 16x16 colour JPEGs the test writes itself,
converts to LCE, compiles with the bnn engine for the Cortex-M7, and its firmware under QEMU
must predict what the Keras ``.h5`` predicts on every test image.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import require_toolchain, run_module
from PIL import Image

CLASSES = ("red", "green", "blue")


def _photo(label: int, rng: np.random.Generator) -> bytes:
    """A 16x16 JPEG: noise, with a square of the class's colour somewhere."""
    image = rng.integers(0, 110, (16, 16, 3))
    y, x = rng.integers(0, 9, 2)
    image[y : y + 7, x : x + 7, label] += 140
    buffer = io.BytesIO()
    Image.fromarray(image.astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _photos_tar(path: Path, per_class: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in per_class.items():
            for label, name in enumerate(CLASSES):
                for index in range(count):
                    data = _photo(label, rng)
                    member = tarfile.TarInfo(f"photos/{split}/{name}/{index:04d}.jpg")
                    member.size = len(data)
                    tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.toolchain
def test_a_colour_bnn_from_a_tar_of_jpegs_to_cortex_m7_firmware(tmp_path: Path, data_cache: Path) -> None:
    require_toolchain()
    data = _photos_tar(tmp_path / "photos.tar.gz", {"train": 120, "test": 20})
    out = tmp_path / "out"
    recipe = ("--recipe", "photo", "--epochs", "1", "--set", "keep_best_epochs=0", "--set", "precision=float32")
    trained = run_module("train", "--model", "colour_bnn", "--data", data, *recipe, "--out", out, "--quiet")
    assert trained.returncode == 0, trained.stderr
    report = json.loads((out / "colour_bnn.train.json").read_text())
    assert report["data"]["example_shape"] == [16, 16, 3] and report["data"]["classes"] == sorted(CLASSES)

    converted = run_module("convert", out / "colour_bnn.h5", "--data", data, "--formats", "lce", "--check", "60")
    assert converted.returncode == 0, converted.stderr
    firmware = out / "firmware"
    generated = run_module("firmware_gen", "--target", "cortex-m7", "--model", out / "colour_bnn.lce.tflite", "--out", firmware)
    assert generated.returncode == 0, generated.stderr
    manifest = json.loads((firmware / "firmware.json").read_text())
    layers = manifest["report"]["layers"]
    assert layers[0]["kind"] == "PixelConv", "the 8-bit stem on three channels compiles as the integer pixel conv"
    assert all(layer["kind"] != "float" for layer in layers)

    emulated = run_module(
        "emulator", firmware, "--backend", "qemu", "--target", "cortex-m7", "--data", data, "--reference", out / "colour_bnn.h5"
    )
    assert emulated.returncode == 0, emulated.stderr
    result = json.loads(next(firmware.glob("*.qemu.emulate.json")).read_text())
    assert result["images"] == 60 and result["agreement"] == 1.0, result["agreement"]
    assert result["instructions_per_inference"] > 0 and result["ram_bytes"] > 0
