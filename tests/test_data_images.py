"""Image folders, tar files and dataset specs as ``--data``: layouts, modes, splits, order, the cache.

Every tree is written by the test (:mod:`image_trees`); the real CIFAR-10 copy is measured in the
README, never read by a test. Refusals: tests/test_data_image_refusals.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from image_trees import (
    H,
    W,
    class_tree,
    encode,
    encode_back,
    ident_of,
    one_line,
    pixels,
    split_tree,
    write_spec,
    write_tar,
    write_tree,
)
from PIL import Image

import pipeline.images
from pipeline.artifacts import sha256_file
from pipeline.data import load_dataset, portable_source
from pipeline.datacache import CACHE_ENV, cache_folder
from pipeline.errors import InputError
from pipeline.splits import split_share

pytestmark = pytest.mark.usefixtures("data_cache")  # a cache folder per test, never ~/.cache


# --- layouts -------------------------------------------------------------------------------------


def test_folder_with_train_and_test_folders(tmp_path: Path) -> None:
    files = split_tree()
    root = write_tree(tmp_path / "pets", files)
    data = load_dataset(root)
    assert data.classes == ("ant", "cat", "dog") and data.num_classes == 3
    assert data.x_train.shape == (18, H, W, 1) and data.x_test.shape == (9, H, W, 1) and data.dtype == np.uint8
    assert data.example_shape == (H, W, 1) and data.y_train.dtype == np.uint8
    # the test split class by class, each class by name; every image exactly as written
    expected_test = [rel for cls in ("ant", "cat", "dog") for rel in sorted(files) if rel.startswith(f"test/{cls}/")]
    for image, label, rel in zip(data.x_test, data.y_test, expected_test, strict=True):
        assert np.array_equal(image, np.asarray(Image.open(io.BytesIO(files[rel])))[:, :, None])
        assert data.classes[label] == rel.split("/")[1]
    # training images and labels belong together
    by_ident = {ident_of(encode_back(files[rel])): rel for rel in files}
    for image, label in zip(data.x_train, data.y_train, strict=True):
        assert by_ident[ident_of(image)].split("/")[1] == data.classes[label]
    assert list(data.sha256) == ["pets/"] and len(data.sha256["pets/"]) == 64
    assert data.describe()["classes"] == ["ant", "cat", "dog"]
    assert data.source == str(root)


@pytest.mark.parametrize("name", ["pets.tar.gz", "pets.tgz", "pets.tar"])
def test_tar_under_one_top_folder_matches_the_folder(tmp_path: Path, name: str) -> None:
    files = split_tree(channels=3, top="pets/")
    archive = write_tar(tmp_path / name, files, folders=("pets", "pets/train", "pets/test"))
    folder = write_tree(tmp_path / "unpacked", files)
    from_tar, from_folder = load_dataset(archive), load_dataset(folder)
    assert from_tar.example_shape == (H, W, 3) and from_tar.classes == ("ant", "cat", "dog")
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(from_tar, key), getattr(from_folder, key))
    assert from_tar.sha256 == {name: sha256_file(archive)}


def test_jpeg_grey_and_rgb_decode_as_pillow_does(tmp_path: Path) -> None:
    for channels in (1, 3):
        files = split_tree(channels=channels, fmt="JPEG", per_class=(2, 1))
        data = load_dataset(write_tree(tmp_path / f"jpeg{channels}", files))
        assert data.example_shape == (H, W, channels)
        first_test = sorted(rel for rel in files if rel.startswith("test/ant/"))[0]
        assert np.array_equal(data.x_test[0], encode_back(files[first_test]))


def test_a_bare_folder_needs_sub_folders_else_idx_is_expected(tmp_path: Path) -> None:
    flat = write_tree(tmp_path / "flat", {"a.png": encode(pixels(1))})
    with pytest.raises(InputError, match="missing .*; expected the four MNIST IDX files, mnist.npz, or images") as err:
        load_dataset(flat)
    one_line(err)


# --- modes ---------------------------------------------------------------------------------------


def _mode_tree(tmp_path: Path, data: bytes) -> np.ndarray:
    files = {f"{split}/{cls}/0.png": data for split in ("train", "test") for cls in ("a", "b")}
    return load_dataset(write_tree(tmp_path / "modes", files)).x_test[0]


@pytest.mark.parametrize(
    ("mode", "channels"),
    [("RGBA", 4), ("LA", 4), ("P", 3), ("1", 1), ("L", 1), ("RGB", 3)],
)
def test_modes_and_channels(tmp_path: Path, mode: str, channels: int) -> None:
    source = pixels(7, 3)
    image = _mode_tree(tmp_path, encode(source, mode=mode))
    assert image.shape == (H, W, channels) and image.dtype == np.uint8
    if mode == "1":
        assert set(np.unique(image)) <= {0, 255}
    if mode == "RGBA":
        assert np.array_equal(image[:, :, :3], source) and (image[:, :, 3] == 255).all()


def test_a_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    assert _mode_tree(tmp_path, encode(pixels(4, 3), "JPEG", mode="CMYK")).shape == (H, W, 3)


def test_a_palette_with_transparency_keeps_alpha(tmp_path: Path) -> None:
    pil = Image.fromarray(pixels(3, 3)).convert("P")
    buffer = io.BytesIO()
    pil.save(buffer, "PNG", transparency=0)
    assert _mode_tree(tmp_path, buffer.getvalue()).shape == (H, W, 4)


# --- splits and order -----------------------------------------------------------------------------


def test_split_rule_is_stable_per_class_and_relative_to_the_spec(tmp_path: Path) -> None:
    files = class_tree(40)
    write_tree(tmp_path / "data" / "photos", files)
    spec = write_spec(tmp_path / "data" / "pets.json", {"images": "photos", "split": {"test_fraction": 0.25}})
    data = load_dataset(spec)
    ids = {ident_of(encode_back(data_)): rel for rel, data_ in files.items()}
    test = {ids[ident_of(image)] for image in data.x_test}
    train = {ids[ident_of(image)] for image in data.x_train}
    assert test == {rel for rel in files if split_share(rel) < 0.25} and train == set(files) - test
    assert set(data.y_test.tolist()) == {0, 1} and set(data.y_train.tolist()) == {0, 1}
    assert list(data.sha256) == ["pets.json", "photos/"] and data.source == str(spec)
    assert portable_source(data.source, tmp_path) == "data/pets.json"
    # adding files moves no other file from one split to the other
    more = {f"cat/new{index}.png": encode(pixels(200 + index)) for index in range(10)}
    write_tree(tmp_path / "data" / "photos", more)
    grown = load_dataset(spec)
    ids.update({ident_of(encode_back(value)): rel for rel, value in more.items()})
    assert {ids[ident_of(image)] for image in grown.x_test} - set(more) == test
    assert len(grown.x_train) + len(grown.x_test) == 90


def test_training_order_mixes_classes_and_does_not_depend_on_other_files(tmp_path: Path) -> None:
    files = split_tree(per_class=(30, 2))
    data = load_dataset(write_tree(tmp_path / "pets", files))
    labels = data.y_train.tolist()
    assert labels != sorted(labels)
    # the trainer's validation split is the last 10 %: it holds more than one class
    assert len(set(labels[-len(labels) // 10 :])) > 1
    ids = [ident_of(image) for image in data.x_train]
    (tmp_path / "pets" / "train" / "cat" / "05.png").unlink()
    removed = ident_of(encode_back(files["train/cat/05.png"]))
    fewer = [ident_of(image) for image in load_dataset(tmp_path / "pets").x_train]
    assert fewer == [i for i in ids if i != removed]


# --- the cache ------------------------------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the images decoded (every call of :func:`pipeline.images.decode_image`)."""
    seen: list[str] = []
    original = pipeline.images.decode_image

    def counting(data: bytes, name: str) -> np.ndarray:
        seen.append(name)
        return original(data, name)

    monkeypatch.setattr(pipeline.images, "decode_image", counting)
    return seen


def test_second_load_reads_the_cache_and_decodes_nothing(tmp_path: Path, data_cache: Path, decodes: list[str]) -> None:
    archive = write_tar(tmp_path / "pets.tgz", split_tree(channels=3))
    first = load_dataset(archive)
    assert len(decodes) == 27
    entries = list(data_cache.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("images-") and entries[0].suffix == ".npz"
    second = load_dataset(archive)
    assert len(decodes) == 27  # nothing decoded again
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(first, key), getattr(second, key))
        assert getattr(first, key).dtype == getattr(second, key).dtype
    assert (first.classes, first.sha256, first.num_classes) == (second.classes, second.sha256, second.num_classes)
    # the cache is an uncompressed .npz (stored members), and no temporary file is left
    with zipfile.ZipFile(entries[0]) as npz:
        assert {info.compress_type for info in npz.infolist()} == {zipfile.ZIP_STORED}


def test_other_options_or_content_make_another_entry(tmp_path: Path, data_cache: Path, decodes: list[str]) -> None:
    write_tree(tmp_path / "photos", class_tree(20))
    a = write_spec(tmp_path / "a.json", {"images": "photos", "split": {"test_fraction": 0.2}})
    b = write_spec(tmp_path / "b.json", {"images": "photos", "split": {"test_fraction": 0.5}})
    load_dataset(a)
    load_dataset(b)
    assert len(decodes) == 80 and len(list(data_cache.iterdir())) == 2
    load_dataset(a)
    load_dataset(b)
    assert len(decodes) == 80
    (tmp_path / "photos" / "cat" / "000.png").write_bytes(encode(pixels(99)))  # same path, other bytes
    load_dataset(a)
    assert len(decodes) == 120 and len(list(data_cache.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_corrupt_cache_entry_is_rebuilt(tmp_path: Path, data_cache: Path, decodes: list[str], damage: str) -> None:
    root = write_tree(tmp_path / "pets", split_tree())
    first = load_dataset(root)
    (entry,) = data_cache.iterdir()
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not an npz")
    else:  # rewrite one array with other values, zip intact: only the checksum can tell
        with np.load(entry) as npz:
            arrays = dict(npz)
        arrays["x_test"] = arrays["x_test"].copy()
        arrays["x_test"][0, 0, 0, 0] ^= 0xFF
        with open(entry, "wb") as handle:
            np.savez(handle, **arrays)
    again = load_dataset(root)
    assert len(decodes) == 54  # decoded twice
    assert np.array_equal(again.x_test, first.x_test)
    assert np.array_equal(load_dataset(root).x_test, first.x_test) and len(decodes) == 54  # the rebuilt entry is sound


def test_cache_folder_default_and_an_unwritable_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "bnn-mcu" / "datasets"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    data = load_dataset(write_tree(tmp_path / "pets", split_tree()))
    assert data.x_test.shape == (9, H, W, 1)
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: could not write the data cache") and "\n" not in err and CACHE_ENV in err


# --- end to end -----------------------------------------------------------------------------------


def test_emulator_runs_a_keras_model_on_a_folder_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tensorflow as tf  # legacy Keras: importing pipeline (above) set it up

    from emulator.cli import main

    root = write_tree(tmp_path / "pets", split_tree(channels=3))
    model = tf.keras.Sequential(
        [tf.keras.Input((H, W, 3)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, activation="softmax")]
    )
    h5 = tmp_path / "pets.h5"
    model.save(h5, save_format="h5")
    assert main([str(h5), "--data", str(root), "--backend", "keras"]) == 0
    report = json.loads((tmp_path / "pets.keras.emulate.json").read_text())
    assert report["images"] == 9 and report["data"]["classes"] == ["ant", "cat", "dog"]
    assert list(report["data"]["sha256"]) == ["pets/"] and report["input_shape"] == [H, W, 3]
    (root / "test" / "cat" / "00.png").write_bytes(b"broken")
    assert main([str(h5), "--data", str(root), "--backend", "keras"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test/cat/00.png: not a readable PNG or JPEG image" in err[0]
