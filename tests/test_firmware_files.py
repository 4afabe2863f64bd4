"""A firmware folder is code: every backend that builds one first checks its files against ``firmware.json``.

Issue 35: a folder edited after generation (a changed source, an added ``GNUmakefile`` or
``bnn_*.c``, a removed file) was built and run as it stood. Now the host, QEMU, TFLite-Micro and
clip backends refuse such a folder in one line naming the first differing file, before anything
is compiled or ``make`` runs; ``--allow-modified`` builds it anyway. What the emulator and a
build write into the folder (``*.emulate.json``, ``build/``, ``firmware.elf``) is not counted,
and the folders the search writes pass.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from pipeline.artifacts import sha256_bytes
from pipeline.errors import InputError


def write_folder(folder: Path, files: dict[str, bytes], manifest: dict | None = None) -> Path:
    """``files`` and a ``firmware.json`` listing them (path, bytes, sha256) as ``python -m firmware_gen`` writes it."""
    listing = [{"path": rel, "bytes": len(data), "sha256": sha256_bytes(data)} for rel, data in sorted(files.items())]
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    (folder / "firmware.json").write_text(json.dumps({"engine": "bnn", "files": listing, **(manifest or {})}))
    return folder


FILES = {"Makefile": b"all:\n\ttrue\n", "bnn_model.c": b"int x;\n", "bnn_model.h": b"#define Y 1\n", "qemu/harness.c": b"/**/\n"}


def test_the_check_names_the_first_difference(tmp_path: Path) -> None:
    from emulator.firmware_files import check_firmware_files, firmware_files_problem

    folder = write_folder(tmp_path / "fw", FILES)
    assert firmware_files_problem(folder) is None
    # What the emulator and a build write into the folder is not counted.
    (folder / "fw.host.emulate.json").write_text("{}")
    (folder / "build").mkdir()
    (folder / "build" / "bnn_model.o").write_bytes(b"\0")
    (folder / "qemu" / "build").mkdir()
    for name in ("firmware.elf", "images.bin", "results.bin", "qemu/results.bin"):
        (folder / name).write_bytes(b"\0")
    assert firmware_files_problem(folder) is None

    def refused(words: str) -> None:
        with pytest.raises(InputError) as caught:
            check_firmware_files(folder)
        line = str(caught.value)
        assert "\n" not in line and words in line and "--allow-modified" in line and "runs its code" in line, line
        check_firmware_files(folder, allow_modified=True)

    source = folder / "bnn_model.c"
    source.write_bytes(b"int y;\n")  # same size, other bytes
    refused(f"{source}: changed since it was generated")
    source.write_bytes(FILES["bnn_model.c"])
    for extra in ("GNUmakefile", "bnn_evil.c", "qemu/stdint.h", "sub/x.mk"):
        (folder / extra).parent.mkdir(exist_ok=True)
        (folder / extra).write_text("all:\n\ttouch pwned\n")
        refused(f"{folder / extra}: not a file")
        (folder / extra).unlink()
    (folder / "qemu" / "harness.c").unlink()
    refused(f"{folder / 'qemu' / 'harness.c'}: missing")
    (folder / "qemu" / "harness.c").symlink_to(folder / "bnn_model.h")
    refused("a symbolic link")
    (folder / "qemu" / "harness.c").unlink()
    (folder / "qemu" / "harness.c").write_bytes(FILES["qemu/harness.c"])
    assert firmware_files_problem(folder) is None


@pytest.mark.parametrize(
    "manifest, words",
    [
        (None, "no firmware.json"),
        ({"engine": "bnn"}, "no list of files with sha256s"),
        ({"files": [{"path": "Makefile", "bytes": 1}]}, "no list of files with sha256s"),
        ({"files": [{"path": "../Makefile", "bytes": 0, "sha256": "0" * 64}]}, "not a path inside the folder"),
        ({"files": [{"path": "/etc/passwd", "bytes": 0, "sha256": "0" * 64}]}, "not a path inside the folder"),
    ],
)
def test_a_folder_without_a_file_list_is_refused(tmp_path: Path, manifest: dict | None, words: str) -> None:
    from emulator.firmware_files import check_firmware_files

    (tmp_path / "Makefile").write_text("all:\n")
    if manifest is not None:
        (tmp_path / "firmware.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=words):
        check_firmware_files(tmp_path)


def test_the_search_folders_pass(tmp_path: Path) -> None:
    """search.measure writes its own firmware.json (another schema, the same file list): it passes the check."""
    from emulator.firmware_files import firmware_files_problem
    from firmware_gen.targets import get_core
    from search.measure import Compiled, write_firmware

    compiled = Compiled(b"lce", {"bnn_model.c": b"int x;\n", "Makefile": b"all:\n"}, {"flash_bytes": 1})
    folder = write_firmware(compiled, tmp_path / "firmware", get_core("cortex-m4"), None)
    assert firmware_files_problem(folder) is None


def _boom(*args, **kwargs):
    raise AssertionError(f"something ran before the folder was checked: {args[0] if args else kwargs}")


def _clip_folder(folder: Path) -> Path:
    """A bnn firmware with the audio front end, as far as the clip runners look before they build."""
    from pipeline.frontend import FrontendConfig

    config = FrontendConfig()
    files = {
        name: b"/* */\n"
        for name in ("harness.c", "harness_platform.h", "harness_host.c", "bnn_clip.h", "bnn_model.c", "bnn_frontend.c")
    }
    files["Makefile"] = b"ENGINE_SRCS := bnn_model.c\nFRONTEND_SRCS := bnn_frontend.c\nall:\n\ttouch pwned\n"
    frontend = {"config": config.to_json(), "config_sha256": config.sha256(), "prefix": "bnn"}
    return write_folder(folder, files, {"report": {"frontend": frontend}})


def _runs(tmp_path: Path):
    """(folder, edited file, call) of every backend that builds a folder."""
    from emulator import clips, host, qemu, qemu_tflm

    images = np.zeros((1, 28, 28), np.uint8)
    bnn = {
        "bnn_model.h": b"#include <stdint.h>\nint bnn_predict(const uint8_t p[784], int32_t s[10]);\n",
        "bnn_model.c": b'#include "bnn_model.h"\nint bnn_predict(const uint8_t p[784], int32_t s[10]) { return 0; }\n',
        "Makefile": b"ENGINE_SRCS := bnn_model.c\nall:\n\ttouch pwned\n",
        "harness.c": b"/* */\n",
        "link.ld": b"/* */\n",
    }
    tflm = {"main.cc": b"/* */\n", "qemu/Makefile": b"all:\n\ttouch pwned\n", "tflm_model.h": b"/* */\n"}
    spec = types.SimpleNamespace(core="cortex-m4", kernels="cmsis_nn")
    library = types.SimpleNamespace(spec=spec, tree=tmp_path, path=tmp_path)
    clip = np.zeros((1, 16000), np.int16)
    return {
        "host": ("bnn", bnn, "bnn_model.c", lambda f, **kw: host.run_host(f, images, **kw)),
        "qemu": ("bnn", bnn, "Makefile", lambda f, **kw: qemu.run_qemu(f, images, core="cortex-m4", **kw)),
        "qemu-tflm": (
            "tflm",
            tflm,
            "qemu/Makefile",
            lambda f, **kw: qemu_tflm.run_tflm_harness(f, images, core="cortex-m4", library=library, **kw),
        ),
        "clips-host": ("clip", None, "bnn_model.c", lambda f, **kw: clips.run_host(f, clip, **kw)),
        "clips-qemu": ("clip", None, "Makefile", lambda f, **kw: clips.run_qemu(f, clip, core="cortex-m4", **kw)),
    }


@pytest.mark.parametrize("backend", ["host", "qemu", "qemu-tflm", "clips-host", "clips-qemu"])
def test_every_backend_checks_before_it_builds(tmp_path: Path, monkeypatch, backend: str) -> None:
    kind, files, edited, run = _runs(tmp_path)[backend]
    folder = _clip_folder(tmp_path / "fw") if kind == "clip" else write_folder(tmp_path / "fw", files)
    (folder / edited).write_bytes((folder / edited).read_bytes() + b"\n/* edited */\n")
    monkeypatch.setattr(subprocess, "run", _boom)
    monkeypatch.setattr(subprocess, "Popen", _boom)
    monkeypatch.setattr("shutil.which", lambda name, *a, **kw: f"/usr/bin/{name}")
    with pytest.raises(InputError) as caught:
        run(folder)
    assert f"{folder / edited}: changed since it was generated" in str(caught.value) and "--allow-modified" in str(caught.value)
    with pytest.raises(AssertionError, match="something ran"):  # allowed: it goes on to build
        run(folder, allow_modified=True)
    assert not (folder / "pwned").exists() and not (folder / "qemu" / "pwned").exists()


def _write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 0x803, len(images), 28, 28)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.astype(np.uint8).tobytes()))
    label_header = struct.pack(">II", 0x801, len(labels))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(label_header + labels.astype(np.uint8).tobytes()))


def test_the_emulator_refuses_an_edited_firmware_in_one_line(tmp_path: Path, mini_flatbuffers, capfd) -> None:
    """python -m emulator FW --backend host: exit 2 and one line naming the edited file; --allow-modified builds it."""
    from conftest import require_tools

    from emulator.cli import main as emulate
    from firmware_gen.cli import main as firmware_gen

    require_tools("gcc", hint="the host backend needs gcc")
    folder = tmp_path / "fw"
    model = mini_flatbuffers["bcnn.lce"]
    assert firmware_gen(["--target", "cortex-m4", "--engine", "bnn", "--model", str(model), "--out", str(folder)]) == 0
    data = tmp_path / "data"
    rng = np.random.default_rng(35)
    for prefix, count in (("t10k", 20), ("train", 100)):
        _write_idx(data, rng.integers(0, 256, (count, 28, 28)), np.arange(count) % 10, prefix)
    source = folder / "bnn_model.c"
    source.write_text(source.read_text() + "\n/* edited after generation */\n")
    args = [str(folder), "--backend", "host", "--data", str(data), "--limit", "20", "--json", str(tmp_path / "out.json")]
    capfd.readouterr()
    assert emulate(args) == 2
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{source}: changed since it was generated" in lines[0], lines
    assert "runs its code" in lines[0] and "--allow-modified" in lines[0], lines
    assert not (tmp_path / "out.json").exists()
    assert emulate([*args, "--allow-modified"]) == 0
    assert json.loads((tmp_path / "out.json").read_text())["agreement"] == 1.0
