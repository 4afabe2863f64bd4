"""Every refusal of an image dataset, a tar of one or a dataset spec: one line, naming the file.

Trees are written by the test (:mod:`image_trees`), as folders and as ``.tgz`` files.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from image_trees import (
    H,
    W,
    class_tree,
    encode,
    minimal_tree,
    one_line,
    pixels,
    png,
    png16,
    split_tree,
    write_spec,
    write_tar,
    write_tree,
)

from pipeline.data import load_dataset
from pipeline.errors import InputError

pytestmark = pytest.mark.usefixtures("data_cache")  # a cache folder per test, never ~/.cache

TREE_REFUSALS = {
    # the odd image is in test/, decoded after every training image (the first decoded is the reference)
    "mixed sizes": (
        minimal_tree(**{"test/b/1.png": png(5, size=(8, 8))}),
        r"mixed image sizes: .*train/./0.png is 13x7 \(width x height\) grey, .*test/b/1.png is 8x8",
    ),
    "mixed channels": (
        minimal_tree(**{"test/b/1.png": png(5, channels=3)}),
        r"mixed image channel counts: .*train/./0.png is 13x7 \(width x height\) grey, .*test/b/1.png is 13x7 .* RGB",
    ),
    "corrupt image": (
        minimal_tree(**{"train/a/bad.png": b"\x89PNG\r\n\x1a\nnot really"}),
        r"train/a/bad.png: not a readable PNG or JPEG",
    ),
    "truncated png": (minimal_tree(**{"train/a/cut.png": png(9)[:60]}), r"train/a/cut.png: not a readable PNG or JPEG"),
    "truncated jpeg": (
        minimal_tree(**{"test/a/cut.jpg": (lambda jpeg: jpeg[: len(jpeg) // 2])(encode(pixels(9, 1), "JPEG"))}),
        r"test/a/cut.jpg: not a readable PNG or JPEG",
    ),
    "not an image": (minimal_tree(**{"train/a/x.jpg": b"GIF89a......"}), r"train/a/x.jpg: not a readable PNG or JPEG"),
    "16-bit grey": (minimal_tree(**{"train/a/deep.png": png16(W, H, False)}), r"deep.png: a 16-bit PNG"),
    "16-bit rgb": (minimal_tree(**{"train/a/deep.png": png16(W, H, True)}), r"deep.png: a 16-bit PNG"),
    "class missing from test": (minimal_tree(**{"train/c/0.png": png(7)}), r"class 'c' has a folder in train/ but none in test/"),
    "no test folder": ({"train/a/0.png": png(), "train/b/0.png": png(2)}, r"has train/ but no test/ folder"),
    "image outside classes": (minimal_tree(**{"train/loose.png": png(7)}), r"train/loose.png: not inside a class folder"),
    "image outside splits": (minimal_tree(**{"extra/a/0.png": png(7)}), r"extra/a/0.png: outside train/ and test/"),
    "one class": ({"train/a/0.png": png(), "test/a/0.png": png(2)}, r"only one class folder \(train/a/\)"),
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
        write_tree(tmp_path / "t", minimal_tree(), folders=("test/c", "train/c")),
        write_tar(tmp_path / "t.tar", minimal_tree(), folders=("train/c", "test/c")),
    ):
        with pytest.raises(InputError, match=r"class folder (train|test)/c/ holds no image") as err:
            load_dataset(source)
        one_line(err)


def _tar_with(tmp_path: Path, member: tarfile.TarInfo) -> Path:
    path = write_tar(tmp_path / "evil.tar", minimal_tree())
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
    "no kind": (
        {"split": {"test_fraction": 0.2}},
        "names exactly one source kind as a key, one of 'audio', 'images'; found 'split'",
    ),
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
    write_tree(tmp_path / "split", minimal_tree())
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
    root = write_tree(tmp_path / "t", minimal_tree())
    read_bytes = Path.read_bytes

    def denied(path: Path) -> bytes:  # a permission error without depending on who runs the test
        if path.name == "0.png" and path.parent.name == "b":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(InputError, match=r"t/(train|test)/b/0.png: cannot read \(Permission denied\)") as err:
        load_dataset(root)
    one_line(err)
