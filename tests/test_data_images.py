"""Image folders, tar files and dataset specs as ``--data``: layout, modes, splits, order, the cache, refusals.

Every tree is written here (PNG and JPEG, grey and colour, odd sizes such as 13x7); the real
CIFAR-10 copy is measured in the README, never read by a test. Each test gets its own cache
folder through ``$BNN_DATA_CACHE``.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline.images
from pipeline.artifacts import sha256_file
from pipeline.data import load_dataset, portable_source
from pipeline.datacache import CACHE_ENV, cache_folder
from pipeline.errors import InputError
from pipeline.splits import split_share

W, H = 13, 7  # an odd size: 13 wide, 7 high


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def pixels(ident: int, channels: int = 1, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """A uint8 (H, W, C) image that carries ``ident`` in its first pixel (PNG keeps it exactly)."""
    rng = np.random.default_rng(ident)
    image = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image[0, 0, 0] = ident
    return image


def encode(image: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """``image`` (H, W, C) as PNG or JPEG bytes, optionally converted to Pillow ``mode`` first."""
    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    if mode is not None:
        pil = pil.convert(mode)
    buffer = io.BytesIO()
    pil.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_tree(root: Path, files: dict[str, bytes], folders: tuple[str, ...] = ()) -> Path:
    """Write ``files`` (relative path -> bytes) and empty ``folders`` under ``root``."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel in folders:
        (root / rel).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_tar(path: Path, files: dict[str, bytes], folders: tuple[str, ...] = ()) -> Path:
    """A tar (gzip for ``.gz``/``.tgz``) holding ``folders`` and ``files``, in that order."""
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tar:
        for rel in folders:
            info = tarfile.TarInfo(rel)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def split_tree(channels: int = 1, fmt: str = "PNG", per_class: tuple[int, int] = (6, 3), top: str = "") -> dict[str, bytes]:
    """``[top/]train/CLASS/NN.ext`` and ``[top/]test/CLASS/NN.ext`` for classes cat, dog, ant (ids unique)."""
    ext = "png" if fmt == "PNG" else "jpg"
    files = {}
    ident = 1
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls in ("cat", "dog", "ant"):
            for index in range(count):
                files[f"{top}{split}/{cls}/{index:02d}.{ext}"] = encode(pixels(ident, channels), fmt)
                ident += 1
    return files


def ident_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def one_line(excinfo: pytest.ExceptionInfo[InputError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text
    return text


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


def encode_back(data: bytes) -> np.ndarray:
    image = np.asarray(Image.open(io.BytesIO(data)))
    return image.reshape(*image.shape[:2], -1)


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


def png16(width: int, height: int, colour: bool) -> bytes:
    """A 16-bit PNG (grey or RGB), written chunk by chunk (Pillow reads RGB ones as 8-bit silently)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(width * (6 if colour else 2))
    header = struct.pack(">IIBBBBB", width, height, 16, 2 if colour else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


# --- splits and order -----------------------------------------------------------------------------


def class_tree(count: int, channels: int = 1, classes: tuple[str, ...] = ("cat", "dog")) -> dict[str, bytes]:
    """``CLASS/NNN.png`` for ``classes``, ``count`` images each, unique ids."""
    return {
        f"{cls}/{index:03d}.png": encode(pixels(1 + c * count + index, channels))
        for c, cls in enumerate(classes)
        for index in range(count)
    }


def write_spec(path: Path, spec: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


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


def test_second_load_reads_the_cache_and_decodes_nothing(tmp_path: Path, cache: Path, decodes: list[str]) -> None:
    archive = write_tar(tmp_path / "pets.tgz", split_tree(channels=3))
    first = load_dataset(archive)
    assert len(decodes) == 27
    entries = list(cache.iterdir())
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


def test_other_options_or_content_make_another_entry(tmp_path: Path, cache: Path, decodes: list[str]) -> None:
    write_tree(tmp_path / "photos", class_tree(20))
    a = write_spec(tmp_path / "a.json", {"images": "photos", "split": {"test_fraction": 0.2}})
    b = write_spec(tmp_path / "b.json", {"images": "photos", "split": {"test_fraction": 0.5}})
    load_dataset(a)
    load_dataset(b)
    assert len(decodes) == 80 and len(list(cache.iterdir())) == 2
    load_dataset(a)
    load_dataset(b)
    assert len(decodes) == 80
    (tmp_path / "photos" / "cat" / "000.png").write_bytes(encode(pixels(99)))  # same path, other bytes
    load_dataset(a)
    assert len(decodes) == 120 and len(list(cache.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_corrupt_cache_entry_is_rebuilt(tmp_path: Path, cache: Path, decodes: list[str], damage: str) -> None:
    root = write_tree(tmp_path / "pets", split_tree())
    first = load_dataset(root)
    (entry,) = cache.iterdir()
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


# --- refusals -------------------------------------------------------------------------------------


def _png(ident: int = 1, channels: int = 1, size: tuple[int, int] = (W, H)) -> bytes:
    return encode(pixels(ident, channels, size))


def _minimal(**extra: bytes) -> dict[str, bytes]:
    """train/a, train/b, test/a, test/b: one grey 13x7 PNG each."""
    names = [f"{split}/{cls}/0.png" for split in ("train", "test") for cls in "ab"]
    files = {name: _png(ident) for ident, name in enumerate(names)}
    files.update(extra)
    return files


TREE_REFUSALS = {
    # the odd image is in test/, decoded after every training image (the first decoded is the reference)
    "mixed sizes": (
        _minimal(**{"test/b/1.png": _png(5, size=(8, 8))}),
        r"mixed image sizes: .*train/./0.png is 13x7 \(width x height\) grey, .*test/b/1.png is 8x8",
    ),
    "mixed channels": (
        _minimal(**{"test/b/1.png": _png(5, channels=3)}),
        r"mixed image channel counts: .*train/./0.png is 13x7 \(width x height\) grey, .*test/b/1.png is 13x7 .* RGB",
    ),
    "corrupt image": (
        _minimal(**{"train/a/bad.png": b"\x89PNG\r\n\x1a\nnot really"}),
        r"train/a/bad.png: not a readable PNG or JPEG",
    ),
    "truncated png": (_minimal(**{"train/a/cut.png": _png(9)[:60]}), r"train/a/cut.png: not a readable PNG or JPEG"),
    "truncated jpeg": (
        _minimal(**{"test/a/cut.jpg": (lambda jpeg: jpeg[: len(jpeg) // 2])(encode(pixels(9, 1), "JPEG"))}),
        r"test/a/cut.jpg: not a readable PNG or JPEG",
    ),
    "not an image": (_minimal(**{"train/a/x.jpg": b"GIF89a......"}), r"train/a/x.jpg: not a readable PNG or JPEG"),
    "16-bit grey": (_minimal(**{"train/a/deep.png": png16(W, H, False)}), r"deep.png: a 16-bit PNG"),
    "16-bit rgb": (_minimal(**{"train/a/deep.png": png16(W, H, True)}), r"deep.png: a 16-bit PNG"),
    "class missing from test": (_minimal(**{"train/c/0.png": _png(7)}), r"class 'c' has a folder in train/ but none in test/"),
    "no test folder": ({"train/a/0.png": _png(), "train/b/0.png": _png(2)}, r"has train/ but no test/ folder"),
    "image outside classes": (_minimal(**{"train/loose.png": _png(7)}), r"train/loose.png: not inside a class folder"),
    "image outside splits": (_minimal(**{"extra/a/0.png": _png(7)}), r"extra/a/0.png: outside train/ and test/"),
    "one class": ({"train/a/0.png": _png(), "test/a/0.png": _png(2)}, r"only one class folder \(train/a/\)"),
    "no split rule": (class_tree(3), r"no train/ and test/ folders; split it with a dataset spec"),
    "no images": ({"a/readme.txt": b"hello", "b/notes.md": b"x"}, r"no images \(.png, .jpg or .jpeg files\)"),
}


@pytest.mark.parametrize("case", sorted(TREE_REFUSALS))
@pytest.mark.parametrize("container", ["folder", "tgz"])
def test_tree_refusals_are_one_line(tmp_path: Path, case: str, container: str) -> None:
    files, message = TREE_REFUSALS[case]
    source = write_tree(tmp_path / "t", files) if container == "folder" else write_tar(tmp_path / "t.tgz", files)
    with pytest.raises(InputError, match=message) as err:
        load_dataset(source)
    assert str(source) in one_line(err)


def test_an_empty_class_folder_is_refused(tmp_path: Path) -> None:
    for source in (
        write_tree(tmp_path / "t", _minimal(), folders=("test/c", "train/c")),
        write_tar(tmp_path / "t.tar", _minimal(), folders=("train/c", "test/c")),
    ):
        with pytest.raises(InputError, match=r"class folder (train|test)/c/ holds no image") as err:
            load_dataset(source)
        one_line(err)


def _tar_with(tmp_path: Path, member: tarfile.TarInfo) -> Path:
    path = write_tar(tmp_path / "evil.tar", _minimal())
    with tarfile.open(path, "a") as tar:
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_member("/etc/a.png"), "an absolute path or one with '..'"),
        (_member("train/../../a.png"), "an absolute path or one with '..'"),
        (_member("train/a/link.png", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
        (_member("train/a/hard.png", tarfile.LNKTYPE, "train/a/0.png"), "a link"),
        (_member("train/a/fifo.png", tarfile.FIFOTYPE), "a device or FIFO"),
        (_member("train/a/0.png"), "appears twice"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    path = _tar_with(tmp_path, member)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_dataset(path)
    assert f"{path} member " in one_line(err)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_and_corrupt_tars_are_refused(tmp_path: Path, cut: float) -> None:
    good = write_tar(tmp_path / "good.tgz", split_tree(channels=3))
    raw = good.read_bytes()
    truncated = tmp_path / "cut.tgz"
    truncated.write_bytes(raw[: int(len(raw) * cut)])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 40)
    for path, message in ((truncated, "corrupt or truncated tar archive"), (garbage, "not a tar archive")):
        with pytest.raises(InputError, match=message) as err:
            load_dataset(path)
        assert str(path) in one_line(err)


SPEC_REFUSALS = {
    "unknown key": (
        {"images": "photos", "split": {"test_fraction": 0.2}, "resize": 32},
        "unknown key 'resize'; valid keys: 'images', 'split'",
    ),
    "unknown split key": (
        {"images": "photos", "split": {"test_fraction": 0.2, "seed": 1}},
        "split: unknown key 'seed'; valid keys: 'test_fraction'",
    ),
    "missing split key": ({"images": "photos", "split": {}}, "split: missing key 'test_fraction'"),
    "no kind": ({"split": {"test_fraction": 0.2}}, "names exactly one source kind as a key, one of 'images'; found 'split'"),
    "bad fraction": ({"images": "photos", "split": {"test_fraction": 1.5}}, "test_fraction must be a number between 0 and 1"),
    "bool fraction": ({"images": "photos", "split": {"test_fraction": True}}, "test_fraction must be a number"),
    "split not an object": ({"images": "photos", "split": 0.2}, 'split: must be an object such as {"test_fraction": 0.2}'),
    "path not a string": ({"images": 3}, "images must be the path of a folder"),
    "missing path": ({"images": "nowhere"}, "images 'nowhere': no such file or folder"),
    "not an object": ([1, 2], "a dataset spec is a JSON object"),
    "split on a split tree": ({"images": "split", "split": {"test_fraction": 0.2}}, "so a split rule does not apply"),
    "class left without test images": ({"images": "photos", "split": {"test_fraction": 0.01}}, "falls in the test split"),
}


@pytest.mark.parametrize("case", sorted(SPEC_REFUSALS))
def test_spec_refusals_are_one_line(tmp_path: Path, case: str) -> None:
    spec, message = SPEC_REFUSALS[case]
    write_tree(tmp_path / "photos", class_tree(3))
    write_tree(tmp_path / "split", _minimal())
    path = write_spec(tmp_path / "spec.json", spec)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_dataset(path)
    assert str(path) in one_line(err)


def test_spec_files_that_are_not_json_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": "x",')
    with pytest.raises(InputError, match=r"not valid JSON \(line 1") as err:
        load_dataset(bad)
    one_line(err)
    twice = tmp_path / "twice.json"
    twice.write_text('{"images": "a", "images": "b"}')
    with pytest.raises(InputError, match="key 'images' appears twice") as err:
        load_dataset(twice)
    one_line(err)


def test_unreadable_image_in_a_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(tmp_path / "t", _minimal())
    read_bytes = Path.read_bytes

    def denied(path: Path) -> bytes:  # a permission error without depending on who runs the test
        if path.name == "0.png" and path.parent.name == "b":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(InputError, match=r"t/(train|test)/b/0.png: cannot read \(Permission denied\)") as err:
        load_dataset(root)
    one_line(err)


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
