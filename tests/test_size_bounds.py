"""Sizes a file declares are checked before anything is allocated or decompressed (issue 35).

Each hostile input here is small on disk and declares, or decompresses to, far more than it is:
an ``.h5`` weight of 75,000,000 x 10 float32 with no data (9.5 GB in ``convert`` and the
emulator before), a gzip IDX declaring a million images beside a label file of 200 (3.8 M took
6.4 GB before), gzip streams that decompress past their header's count, ``.npz`` members whose
headers declare more than the limit or than the labels, a ``train.json`` history past any recipe.

The refusals run in a child process whose address space is capped a little above what it has
mapped after its imports (:data:`HEADROOM`): a regression that allocates what the file declares
fails with an out-of-memory line instead of filling the machine, and these tests allocate
little either way. Each test failed before: an out-of-memory line under the cap (a swap storm
without it), a different refusal that first read everything, or no refusal at all.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.limits import MAX_DATASET_BYTES, MAX_EPOCHS, MAX_H5_WEIGHT_BYTES

REPO = Path(__file__).resolve().parent.parent
HEADROOM = 128 << 20
"""Bytes the child may map beyond what it has mapped once its modules are imported."""
OVER_LIMIT = MAX_DATASET_BYTES // 784 + 1
"""A count of 784-byte examples (28x28 uint8) whose bytes pass :data:`~pipeline.limits.MAX_DATASET_BYTES`."""

_CHILD = """
import json, resource, sys
from contextlib import redirect_stderr
from importlib import import_module
from io import StringIO

runs = json.loads(sys.argv[1])
for module in json.loads(sys.argv[2]):
    import_module(module)


def load(argv):  # the dataset loader alone, at the same edge as every command
    from pipeline.data import load_dataset
    from pipeline.errors import run_cli

    return run_cli("python -m load_dataset", lambda args: load_dataset(args[0]) and 0, argv)


mains = {module: load if module == "load_dataset" else import_module(module).main for module, _ in runs}
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

    ``MODULE`` ``load_dataset`` runs :func:`pipeline.data.load_dataset` on ``ARGV[0]`` behind
    :func:`pipeline.errors.run_cli` (prog ``python -m load_dataset``), without TensorFlow.

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


def zeros_gzip(count: int) -> bytes:
    """A gzip stream of ``count`` MiB of zeros, about 1 KB per MiB (members of one compressed MiB, repeated)."""
    return gzip.compress(bytes(1 << 20), mtime=0) * count


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


# --- Keras .h5 -------------------------------------------------------------------------------

KERNEL = "model_weights/dense/dense/kernel:0"


@pytest.fixture(scope="module")
def keras_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Keras model (Flatten, Dense 10) saved as .h5, for the edits below.

    The dense layer is named: Keras numbers unnamed layers per process (``dense_3`` after other tests
    in the same worker), and the edits address ``dense`` by name."""
    import tensorflow as tf

    path = tmp_path_factory.mktemp("h5") / "good.h5"
    model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(28, 28)), tf.keras.layers.Dense(10, name="dense")])
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


# --- IDX -------------------------------------------------------------------------------------


def idx_folder(folder: Path, train_images: bytes, train_labels: bytes) -> Path:
    """An IDX folder with the given (gzip) train files and a small valid test split."""
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(train_images)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(train_labels)
    test_images = struct.pack(">IIII", 0x803, 4, 28, 28) + bytes(4 * 784)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(test_images, mtime=0))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, 4) + bytes(4), mtime=0))
    return folder


def labels_gz(count: int) -> bytes:
    return gzip.compress(struct.pack(">II", 0x801, count) + bytes(count), mtime=0)


def test_idx_image_count_is_checked_against_the_labels_before_the_images_are_read(tmp_path: Path):
    """A 1 MB gzip whose header declares 1,000,000 images (748 MiB of zeros follow) beside 200 labels."""
    images = gzip.compress(struct.pack(">IIII", 0x803, 1_000_000, 28, 28), mtime=0) + zeros_gzip(748)
    folder = idx_folder(tmp_path / "mismatch", images, labels_gz(200))
    assert (folder / "train-images-idx3-ubyte.gz").stat().st_size < 2_000_000
    runs = [("train.cli", ["--model", "mlp", "--data", folder, "--out", tmp_path / "out"]), ("load_dataset", [folder])]
    train, loader = capped(runs, preload=("tensorflow", "larq", "train.cli"))
    for prog, result in (("train", train), ("load_dataset", loader)):
        one_line(result, prog, f"{folder}: train: 1000000 images but 200 labels", "train-labels-idx1-ubyte.gz")
    assert not (tmp_path / "out").exists()


def test_idx_headers_declaring_more_than_the_limit_are_refused_before_reading(tmp_path: Path):
    images = gzip.compress(struct.pack(">IIII", 0x803, OVER_LIMIT, 28, 28), mtime=0)
    folder = idx_folder(tmp_path / "huge", images, gzip.compress(struct.pack(">II", 0x801, OVER_LIMIT), mtime=0))
    (result,) = capped([("load_dataset", [folder])], preload=("pipeline.data",))
    words = f"{folder / 'train-images-idx3-ubyte.gz'}: its header declares {OVER_LIMIT}x28x28 uint8"
    one_line(result, "load_dataset", words, f"{MAX_DATASET_BYTES:,} bytes (1.0 GiB) a dataset may hold")


def test_an_idx_gzip_is_never_decompressed_past_what_its_header_declares(tmp_path: Path):
    """Two images declared, then 1 GiB of zeros in the same gzip stream (about 1 MB on disk)."""
    images = gzip.compress(struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(2 * 784), mtime=0) + zeros_gzip(1024)
    folder = idx_folder(tmp_path / "trailing", images, labels_gz(2))
    (result,) = capped([("load_dataset", [folder])], preload=("pipeline.data",))
    one_line(
        result, "load_dataset", "train-images-idx3-ubyte.gz: oversized IDX file: header promises 1568 bytes of data, found more"
    )


# --- .npz ------------------------------------------------------------------------------------


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


NPZ_CASES = {
    "x_test longer than y_test (784 MB declared)": (
        {"x_test.npy": npy_header((1_000_000, 784)), "y_test.npy": npy(np.zeros(200, np.uint8))},
        "test: 1000000 examples but 200 labels",
    ),
    "784 x 10^12 elements": (
        {"x_test.npy": npy_header((10**12, 784)), "y_test.npy": npy(np.zeros(3, np.uint8))},
        "x_test declares shape (1000000000000, 784) uint8",
    ),
    "over the limit, counts agreeing": (
        {
            "x_test.npy": npy_header((MAX_DATASET_BYTES // 784 + 1, 784)),
            "y_test.npy": npy_header((MAX_DATASET_BYTES // 784 + 1,)),
        },
        "a dataset may hold",
    ),
    "a 4 GB header": (
        {"x_test.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 4_000_000_000), "y_test.npy": npy(np.zeros(2, np.uint8))},
        "x_test's .npy header declares 4,000,000,000 bytes",
    ),
    "data past the header's": (
        {"x_test.npy": npy(np.zeros((2, 3), np.uint8)) + bytes(10), "y_test.npy": npy(np.zeros(2, np.uint8))},
        "oversized member x_test.npy: its header declares 6 bytes of data, the archive holds 16",
    ),
    "data short of the header's": (
        {"x_test.npy": npy_header((2, 3)) + bytes(2), "y_test.npy": npy(np.zeros(2, np.uint8))},
        "truncated member x_test.npy: its header declares 6 bytes of data, the archive holds 2",
    ),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz_headers_are_checked_before_any_array_is_read(tmp_path: Path, case: str):
    members, words = NPZ_CASES[case]
    path = npz(tmp_path / "d.npz", members)
    (result,) = capped([("load_dataset", [path])], preload=("pipeline.data",))
    one_line(result, "load_dataset", f"{path}: ", words)


# --- the model report --------------------------------------------------------------------------


def test_model_report_refuses_a_history_longer_than_any_recipe(tmp_path: Path, capsys):
    """2 M values made a 232 MB page; a history of MAX_EPOCHS + 1 is refused, naming the file and the key."""
    from emulator.model_report.cli import main

    folder = tmp_path / "art"
    folder.mkdir()
    history = {"accuracy": [0.5, 0.6], "loss": [0.25] * (MAX_EPOCHS + 1)}
    (folder / "bcnn.train.json").write_text(json.dumps({"model": "bcnn", "history": history}))
    assert main([str(folder)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{folder / 'bcnn.train.json'}: history.loss holds 10,001 values" in lines[0], lines
    assert not (folder / "bcnn.report.html").exists()
    history["loss"] = history["loss"][:MAX_EPOCHS]
    (folder / "bcnn.train.json").write_text(json.dumps({"model": "bcnn", "history": history}))
    assert main([str(folder)]) == 0 and (folder / "bcnn.report.html").is_file()
