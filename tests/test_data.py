"""IDX parsing, .npz datasets of any shape, and every bad-input case of the dataset loader."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import IDX_FILES, load_dataset, load_mnist, parse_idx
from pipeline.errors import InputError


def idx_images(images: np.ndarray) -> bytes:
    """IDX bytes for uint8 images (N, H, W)."""
    return struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """IDX bytes for uint8 labels (N,)."""
    return struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_dataset(folder: Path, n_train: int = 30, n_test: int = 20, *, gz: bool = True, seed: int = 0) -> Path:
    """A synthetic dataset in MNIST's IDX layout (gzip or raw)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "train_images": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train_labels": idx_labels(rng.integers(0, 10, n_train)),
        "test_images": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "test_labels": idx_labels(rng.integers(0, 10, n_test)),
    }
    for key, data in content.items():
        name = IDX_FILES[key]
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return folder


def test_real_mnist_shapes_and_counts(mnist) -> None:
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    counts = np.bincount(mnist.y_test, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert len(mnist.sha256) == 4 and all(len(v) == 64 for v in mnist.sha256.values())


@pytest.mark.parametrize("gz", [True, False])
def test_synthetic_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    folder = write_dataset(tmp_path / "data", gz=gz)
    data = load_mnist(folder)
    assert data.x_train.shape == (30, 28, 28) and data.y_test.shape == (20,)
    raw = (
        gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
        if gz
        else (folder / "t10k-images-idx3-ubyte").read_bytes()
    )
    assert data.x_test.tobytes() == raw[16:]


def test_npz_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    data = load_mnist(tmp_path / "mnist.npz")
    assert np.array_equal(data.x_test, arrays["x_test"]) and data.y_train.dtype == np.uint8
    assert load_mnist(tmp_path).x_train.shape == (5, 28, 28)


def test_env_var_is_second_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_dataset(tmp_path / "env")
    monkeypatch.setenv("MNIST_DIR", str(folder))
    assert load_mnist().x_train.shape == (30, 28, 28)


def test_bad_magic() -> None:
    data = struct.pack(">IIII", 0x804, 1, 28, 28) + bytes(784)
    with pytest.raises(InputError, match="bad IDX magic 0x00000804"):
        parse_idx(data, expect_magic=0x803, name="x")


def test_wrong_dimensions() -> None:
    data = struct.pack(">IIII", 0x803, 1, 32, 32) + bytes(1024)
    with pytest.raises(InputError, match="32x32, expected 28x28"):
        parse_idx(data, expect_magic=0x803, name="x")


@pytest.mark.parametrize("cut", [0, 3, 10, 100, 783])
def test_truncated(cut: int) -> None:
    full = struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(2 * 784)
    with pytest.raises(InputError, match="truncated"):
        parse_idx(full[: 16 + cut] if cut > 15 else full[:cut], expect_magic=0x803, name="x")


def test_oversized_payload() -> None:
    data = struct.pack(">II", 0x801, 2) + bytes(3)
    with pytest.raises(InputError, match="oversized"):
        parse_idx(data, expect_magic=0x801, name="labels")


def test_count_mismatch(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "d")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(np.zeros(29)), mtime=0))
    with pytest.raises(InputError, match="30 images but 29 labels"):
        load_mnist(folder)


def test_label_out_of_range(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "d")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(np.full(20, 12)), mtime=0))
    with pytest.raises(InputError, match="label 12 out of range"):
        load_mnist(folder)


def test_truncated_gzip(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "d")
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        load_mnist(folder)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "d")
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(InputError, match="missing train-images-idx3-ubyte"):
        load_mnist(folder)
    with pytest.raises(InputError, match="no such file or folder"):
        load_mnist(tmp_path / "nope")


def write_npz(path: Path, **arrays: object) -> Path:
    """An .npz dataset with exactly ``arrays``."""
    np.savez(path, **arrays)
    return path


def test_npz_of_any_shape_records_shape_dtype_and_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = write_npz(
        tmp_path / "kws.npz",
        x_train=rng.normal(size=(8, 49, 10, 1)),  # float64: converted to float32
        y_train=np.arange(8) % 12,
        x_test=rng.normal(size=(5, 49, 10, 1)).astype(np.float16),  # float16 too
        y_test=np.array([[0], [11], [3], [3], [7]]),  # (N, 1) labels, as Keras' CIFAR-10 has them
    )
    data = load_dataset(path)
    assert data.example_shape == (49, 10, 1) and data.dtype == np.float32 and data.num_classes == 12
    assert data.x_train.dtype == np.float32 and data.y_test.tolist() == [0, 11, 3, 3, 7]
    assert data.describe() == {"example_shape": [49, 10, 1], "dtype": "float32", "num_classes": 12}
    cifar = write_npz(
        tmp_path / "cifar.npz",
        x_test=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        y_test=np.array([0, 1, 2, 3]),
        num_classes=np.int64(10),
    )
    data = load_dataset(cifar)
    assert data.example_shape == (32, 32, 3) and data.dtype == np.uint8 and data.num_classes == 10
    assert data.x_train.shape == (0, 32, 32, 3) and data.y_train.shape == (0,)  # no training split
    assert list(data.sha256) == ["cifar.npz"]


def test_idx_dataset_describes_itself_as_mnist(tmp_path: Path) -> None:
    data = load_dataset(write_dataset(tmp_path / "d"))
    assert data.example_shape == (28, 28) and data.dtype == np.uint8 and data.num_classes == 10


def _corrupt_member(path: Path) -> Path:
    """Flip bytes inside the stored data of the first member (the zip directory stays intact)."""
    raw = bytearray(path.read_bytes())
    raw[200:210] = bytes(b ^ 0xFF for b in raw[200:210])
    path.write_bytes(bytes(raw))
    return path


NPZ_REFUSALS = {
    "missing y_test": ({"x_test": np.zeros((2, 3), np.uint8)}, "missing y_test"),
    "x_train without y_train": (
        {"x_test": np.zeros((2, 3), np.uint8), "y_test": np.zeros(2, int), "x_train": np.zeros((2, 3), np.uint8)},
        "x_train without its pair",
    ),
    "int32 examples": ({"x_test": np.zeros((2, 3), np.int32), "y_test": np.zeros(2, int)}, "dtype int32; expected uint8"),
    "scalar examples": ({"x_test": np.zeros(3, np.uint8), "y_test": np.zeros(3, int)}, "must be (N, ...)"),
    "float labels": ({"x_test": np.zeros((2, 3), np.uint8), "y_test": np.zeros(2)}, "integer class labels"),
    "negative label": ({"x_test": np.zeros((2, 3), np.uint8), "y_test": np.array([0, -1])}, "negative label (-1)"),
    "label beyond num_classes": (
        {"x_test": np.zeros((2, 3), np.uint8), "y_test": np.array([0, 5]), "num_classes": 3},
        "label 5 out of range 0..2",
    ),
    "length mismatch": ({"x_test": np.zeros((2, 3), np.uint8), "y_test": np.zeros(3, int)}, "2 examples but 3 labels"),
    "shape mismatch": (
        {
            "x_test": np.zeros((2, 3), np.uint8),
            "y_test": np.zeros(2, int),
            "x_train": np.zeros((2, 4), np.uint8),
            "y_train": np.zeros(2, int),
        },
        "x_train examples are uint8 4 but x_test's are uint8 3",
    ),
    "empty test set": ({"x_test": np.zeros((0, 49, 10), np.float32), "y_test": np.zeros(0, int)}, "test set is empty"),
    "NaN": ({"x_test": np.full((2, 3), np.nan, np.float32), "y_test": np.zeros(2, int)}, "NaN or infinite"),
    "bad num_classes": ({"x_test": np.zeros((2, 3), np.uint8), "y_test": np.zeros(2, int), "num_classes": 1.5}, "num_classes"),
}


@pytest.mark.parametrize("case", sorted(NPZ_REFUSALS))
def test_npz_refusals_are_one_line(tmp_path: Path, case: str) -> None:
    arrays, message = NPZ_REFUSALS[case]
    path = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_dataset(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_empty_idx_test_set_is_one_line(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "d", n_test=0)
    with pytest.raises(InputError, match="the test set is empty"):
        load_dataset(folder)


def test_corrupt_npz_files_are_one_line(tmp_path: Path) -> None:
    good = write_npz(tmp_path / "good.npz", x_test=np.arange(600, dtype=np.uint8).reshape(2, 300), y_test=np.zeros(2, int))
    cases = {
        "not a zip": (b"PK\x03\x04 not really a zip", "not a readable .npz archive"),
        "empty": (b"", "not a readable .npz archive"),
        "truncated": (good.read_bytes()[:300], "not a readable .npz archive"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        with pytest.raises(InputError, match=message):
            load_dataset(path)
    with pytest.raises(InputError, match="corrupt .npz file"):
        load_dataset(_corrupt_member(write_npz(tmp_path / "crc.npz", x_test=np.zeros((2, 300), np.uint8), y_test=[0, 1])))
    np.save(tmp_path / "one.npy", np.zeros((2, 3)))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(InputError, match="a single .npy array"):
        load_dataset(tmp_path / "one.npz")
