"""IDX parsing and every bad-input case of the MNIST loader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import IDX_FILES, load_mnist, parse_idx
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
