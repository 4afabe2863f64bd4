"""No command loses an input: outputs never overlap inputs, and a set of outputs is all or nothing.

Each case here lost data before issue 35: ``firmware_gen --model FW/m.lce.tflite --out FW``
deleted the model with the folder it replaced; ``convert DIR/bcnn.tflite`` (an HDF5 file named
``.tflite``) wrote its float flatbuffer over its own source; a folder at one of ``convert``'s
output paths stopped it after another output had been replaced; an ``--out`` symlink left a
``.NAME.XXXX.old`` link beside it.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import h5py
import pytest

from pipeline import artifacts
from pipeline.artifacts import check_inputs_kept, replace_files, replace_folder
from pipeline.errors import InputError


def _run(module: str, argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """(exit status, non-empty stderr lines) of ``python -m MODULE ARGV`` run in this process."""
    capfd.readouterr()
    try:
        code = importlib.import_module(module).main(argv)
    except SystemExit as stop:
        code = stop.code
    return int(code or 0), [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def _hdf5(path: Path) -> bytes:
    """An HDF5 file at ``path`` (enough for the commands' early checks); returns its bytes."""
    with h5py.File(path, "w") as handle:
        handle.attrs["note"] = "the only copy"
    return path.read_bytes()


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model.h5"
    _hdf5(source)
    (tmp_path / "link.h5").symlink_to(source)
    os.link(source, tmp_path / "hard.h5")
    for output in (source, tmp_path / "link.h5", tmp_path / "hard.h5", tmp_path / "sub" / ".." / "model.h5"):
        with pytest.raises(InputError, match="it is the input"):
            check_inputs_kept([source], files=[output])
    check_inputs_kept([source, None], files=[tmp_path / "model.tflite"])  # a sibling is fine


def test_a_folder_that_holds_an_input_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "fw"
    (folder / "deep").mkdir(parents=True)
    model = folder / "deep" / "m.tflite"
    model.write_bytes(b"x")
    (tmp_path / "alias").symlink_to(folder)
    for out in (folder, tmp_path / "alias", tmp_path / "fw" / "deep"):
        with pytest.raises(InputError, match="holds the input"):
            check_inputs_kept([model], folders=[out])
    check_inputs_kept([model], folders=[tmp_path / "fw2"])  # a name that only starts the same is fine


def test_replace_files_writes_nothing_when_a_folder_stands_at_an_output(tmp_path: Path) -> None:
    (tmp_path / "a.tflite").write_bytes(b"old a")
    (tmp_path / "b.tflite").mkdir()
    with pytest.raises(InputError, match="a folder stands there"):
        replace_files({tmp_path / "a.tflite": b"new a", tmp_path / "b.tflite": b"new b"})
    assert (tmp_path / "a.tflite").read_bytes() == b"old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite", "b.tflite"]


def test_replace_files_puts_every_file_back_when_a_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {tmp_path / name: f"new {name}".encode() for name in ("a.tflite", "b.tflite", "c.json")}
    (tmp_path / "a.tflite").write_bytes(b"old a")
    (tmp_path / "c.json").write_bytes(b"old c")
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == tmp_path / "c.json" and ".tmp" in Path(src).name:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError):
        replace_files(files)
    assert (tmp_path / "a.tflite").read_bytes() == b"old a"
    assert not (tmp_path / "b.tflite").exists()
    assert (tmp_path / "c.json").read_bytes() == b"old c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tflite", "c.json"], "temporary files left behind"
    monkeypatch.setattr(artifacts.os, "replace", real_replace)
    replace_files(files)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {p.name: data for p, data in files.items()}


def test_replace_folder_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    (target / "firmware.json").write_text("{}")
    (target / "stale.c").write_text("old")
    link = tmp_path / "out"
    link.symlink_to(target)
    replace_folder(link, {"firmware.json": b"{}", "model.c": b"new"}, marker="firmware.json", owner="firmware_gen")
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert sorted(p.name for p in target.iterdir()) == ["firmware.json", "model.c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"], "a .NAME.XXXX.old entry was left"


def test_firmware_gen_keeps_a_model_inside_its_out_folder(mini_flatbuffers, tmp_path: Path, capfd) -> None:
    folder = tmp_path / "fw"
    argv = ["--target", "cortex-m4", "--out", str(folder)]
    assert _run("firmware_gen.cli", ["--model", str(mini_flatbuffers["bcnn.lce"]), *argv], capfd)[0] == 0
    model = folder / "model.lce.tflite"
    shutil.copyfile(mini_flatbuffers["bcnn.lce"], model)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, lines = _run("firmware_gen.cli", ["--model", str(model), *argv], capfd)
    assert code == 2 and len(lines) == 1 and "holds the input" in lines[0], lines
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_convert_keeps_a_source_named_like_its_output(tmp_path: Path, capfd) -> None:
    source = tmp_path / "bcnn.tflite"  # an HDF5 model under a flatbuffer's name
    data = _hdf5(source)
    code, lines = _run("convert.cli", [str(source), "--formats", "float,lce"], capfd)
    assert code == 2 and len(lines) == 1 and "it is the input" in lines[0], lines
    assert source.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["bcnn.tflite"]


def test_convert_refuses_a_folder_at_an_output_before_writing(tmp_path: Path, capfd) -> None:
    source = tmp_path / "m.h5"
    _hdf5(source)
    (tmp_path / "m.lce.tflite").mkdir()
    (tmp_path / "m.tflite").write_bytes(b"previous float model")
    code, lines = _run("convert.cli", [str(source), "--formats", "float,lce"], capfd)
    assert code == 2 and len(lines) == 1 and "a folder stands there" in lines[0], lines
    assert (tmp_path / "m.tflite").read_bytes() == b"previous float model"


def test_train_keeps_a_teacher_it_would_overwrite(tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch) -> None:
    teacher = tmp_path / "colour_bnn.h5"
    data = _hdf5(teacher)

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the outputs were checked")

    monkeypatch.setattr("train.trainer.fit", no_training)
    code, lines = _run("train.cli", ["--model", "colour_bnn", "--teacher", str(teacher), "--out", str(tmp_path)], capfd)
    assert code == 2 and len(lines) == 1 and "it is the input" in lines[0], lines
    assert teacher.read_bytes() == data
