"""Sizes a file declares are checked before anything is allocated or decompressed (issue 35).

Each hostile input here is small on disk and declares far more than it is: an ``.h5`` weight of
75,000,000 x 10 float32 with no data (9.5 GB in ``convert`` and the emulator before), weights
stored compressed, partly, in another file or read twice.

The refusals run in a child process whose address space is capped a little above what it has
mapped after its imports (:data:`HEADROOM`): a regression that allocates what the file declares
fails with an out-of-memory line instead of filling the machine, and these tests allocate
little either way. Each test failed before: an out-of-memory line under the cap (a swap storm
without it), a different refusal that first read everything, or no refusal at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.limits import MAX_H5_WEIGHT_BYTES

REPO = Path(__file__).resolve().parent.parent
HEADROOM = 128 << 20
"""Bytes the child may map beyond what it has mapped once its modules are imported."""

_CHILD = """
import json, resource, sys
from contextlib import redirect_stderr
from importlib import import_module
from io import StringIO

runs = json.loads(sys.argv[1])
for module in json.loads(sys.argv[2]):
    import_module(module)
mains = {module: import_module(module).main for module, _ in runs}
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_AS)[1]))
results = []
for module, argv in runs:
    err = StringIO()
    with redirect_stderr(err):
        try:
            code = mains[module](argv)
        except SystemExit as stop:
            code = stop.code
    results.append({"code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def capped(runs: list[tuple[str, list[str]]], preload: tuple[str, ...] = ()) -> list[tuple[int, list[str]]]:
    """``MODULE.main(ARGV)`` for each run, in one child capped at :data:`HEADROOM` over its imports.

    Returns:
        (exit status, non-empty stderr lines) per run.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1", "OPENBLAS_NUM_THREADS": "1"}
    argv = [json.dumps([[module, [str(a) for a in args]] for module, args in runs]), json.dumps(list(preload)), str(HEADROOM)]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    return [(int(r["code"] or 0), [line for line in r["stderr"].splitlines() if line.strip()]) for r in results]


def one_line(result: tuple[int, list[str]], prog: str, *words: str) -> None:
    """Exit 2 and exactly one stderr line from ``prog`` holding every one of ``words``."""
    code, lines = result
    assert code == 2 and len(lines) == 1, result
    assert lines[0].startswith(f"python -m {prog}: error: "), lines
    assert all(word in lines[0] for word in words), (words, lines)


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


# --- Keras .h5 -------------------------------------------------------------------------------

KERNEL = "model_weights/dense/dense/kernel:0"


@pytest.fixture(scope="module")
def keras_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Keras model (Flatten, Dense 10) saved as .h5, for the edits below."""
    import tensorflow as tf

    path = tmp_path_factory.mktemp("h5") / "good.h5"
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(10)])
    model.save(path, save_format="h5")
    return path


def edited(source: Path, target: Path, edit) -> Path:
    """A copy of ``source`` with ``edit(h5py.File)`` applied."""
    import h5py

    target.write_bytes(source.read_bytes())
    with h5py.File(target, "a") as handle:
        edit(handle)
    return target


def fill_value_weight(handle) -> None:
    """The kernel replaced by a dataset declaring 75,000,000 x 10 float32 and storing nothing (HDF5's fill value)."""
    del handle[KERNEL]
    handle.create_dataset(KERNEL, shape=(75_000_000, 10), dtype="float32")


def small_npz(path: Path, count: int = 20) -> Path:
    np.savez(path, x_test=np.zeros((count, 28, 28), np.uint8), y_test=np.arange(count) % 10)
    return path


def test_an_h5_declaring_a_3_gb_weight_is_refused_by_every_stage_before_keras_reads_it(keras_h5: Path, tmp_path: Path):
    """convert, the emulator (--reference's loader) and train's --teacher and --init: one line naming the file and dataset."""
    bad = edited(keras_h5, tmp_path / "bad.h5", fill_value_weight)
    assert bad.stat().st_size < 100_000
    data = small_npz(tmp_path / "small.npz")
    before = tree(tmp_path)
    results = capped(
        [
            ("convert.cli", [bad, "--data", data, "--check", "10"]),
            ("emulator.cli", [bad, "--data", data]),
            ("train.cli", ["--model", "mlp", "--data", data, "--out", tmp_path / "out", "--teacher", bad]),
            ("train.cli", ["--model", "mlp", "--data", data, "--out", tmp_path / "out", "--init", bad]),
        ],
        preload=("tensorflow", "larq", "convert.cli", "emulator.cli", "train.cli"),
    )
    words = (str(bad), f"dataset {KERNEL} declares 75000000x10 float32: 3,000,000,000 bytes", f"{MAX_H5_WEIGHT_BYTES:,} bytes")
    for prog, result in zip(("convert", "emulator", "train", "train"), results, strict=True):
        one_line(result, prog, *words)
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("fill value", "declares 75000000x10 float32"),
        ("weight partly stored", "declares 784x10 float32: 31,360 bytes (30.6 KiB) but the file stores 4,000 bytes"),
        ("compressed weight", "stored through HDF5 filters (deflate)"),
        ("link to another file", "links to another file (/elsewhere/weights.h5:/kernel)"),
        ("weight named twice", f"dataset {KERNEL} is read twice"),
        ("name with a line break", "dataset 'model_weights/a\\nb' declares 10 float32"),
    ],
)
def test_h5_weights_must_be_stored_in_the_file_uncompressed_and_read_once(keras_h5: Path, tmp_path: Path, case: str, words: str):
    """Without any of these Keras would read (or fill) more than the file holds; h5py only is used."""
    from pipeline.errors import InputError
    from pipeline.keras_files import check_h5_file

    def partly(handle) -> None:
        values = handle[KERNEL][()]
        del handle[KERNEL]
        handle.create_dataset(KERNEL, shape=(784, 10), chunks=(100, 10), dtype="float32")[:100] = values[:100]

    def compressed(handle) -> None:
        values = handle[KERNEL][()]
        del handle[KERNEL]
        handle.create_dataset(KERNEL, data=values, compression="gzip")

    def external(handle) -> None:
        import h5py

        del handle[KERNEL]
        handle[KERNEL] = h5py.ExternalLink("/elsewhere/weights.h5", "/kernel")

    def twice(handle) -> None:
        names = [b"dense/kernel:0", b"dense/kernel:0", b"dense/bias:0"]
        handle["model_weights/dense"].attrs["weight_names"] = np.array(names, dtype=object)

    edits = {
        "fill value": fill_value_weight,
        "weight partly stored": partly,
        "compressed weight": compressed,
        "link to another file": external,
        "weight named twice": twice,
        "name with a line break": lambda handle: handle.create_dataset("model_weights/a\nb", shape=(10,), dtype="float32"),
    }
    check_h5_file(keras_h5)  # the model as Keras saved it passes
    bad = edited(keras_h5, tmp_path / "bad.h5", edits[case])
    with pytest.raises(InputError) as err:
        check_h5_file(bad)
    assert str(err.value).startswith(f"{bad}: ") and words in str(err.value) and "\n" not in str(err.value), str(err.value)
