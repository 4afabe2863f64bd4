"""firmware_gen.tflm_build without compiling: pins, archive checks, tree layout (archives and git), kernel selection, CLI.

Fake vendor folders and local git repositories stand in for the real sources, so the archive
checks, the patching, the git fetch path (file:// repositories, the same commands as for GitHub)
and the cache reuse run in a second; tests/test_tflm_real.py builds the real thing.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from firmware_gen.targets import CORES
from firmware_gen.tflm import TFLM_OPS
from firmware_gen.tflm_build.kernels import ResolverEntry, resolver_table, select_kernel_sources
from firmware_gen.tflm_build.library import KERNEL_SETS, LibrarySpec, object_path
from firmware_gen.tflm_build.pins import DOWNLOADS, PINS, Pin, tflm_short
from firmware_gen.tflm_build.sources import (
    STAMP,
    archive_commit,
    prepare_tree,
    read_sha256sums,
    verify_vendor,
)
from firmware_gen.tflm_build.target import TFLM_ARCH, device_header
from pipeline.errors import CheckError, InputError
from tests.conftest import run_module, stderr_lines

PATCH = """--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello
+hello patched
"""
FAKE_TREE = {"tensorflow/lite/micro/tools/make/Makefile": "all:\n", "patches/dep.patch": PATCH}
FAKE_DEP = {"hello.txt": "hello\n", "BUILD": "bazel\n", "sub/BUILD.bazel": "bazel\n", "sub/keep.h": "int x;\n"}


def _pins(tflm_rev: str, dep_rev: str, tflm_repo: str = "", dep_repo: str = "") -> tuple[Pin, ...]:
    return (
        Pin("tflite-micro", tflm_repo, tflm_rev, tflm_rev, f"tflite-micro-{tflm_rev[:8]}.tar.xz", ""),
        Pin("dep", dep_repo, dep_rev, "v1", "dep-1.tar.xz", f"{DOWNLOADS}/dep", patch="patches/dep.patch", drop_build_files=True),
    )


def _archive(path: Path, top: str, files: dict[str, str], commit: str | None) -> None:
    with tarfile.open(path, "w:xz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit} if commit else {}) as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _vendor(folder: Path, pins: tuple[Pin, ...], commits: dict[str, str | None] | None = None) -> Path:
    folder.mkdir()
    contents = {"tflite-micro": FAKE_TREE, "dep": FAKE_DEP}
    lines = []
    for entry in pins:
        commit = (commits or {}).get(entry.name, entry.revision)
        _archive(folder / entry.archive, entry.top_folder, contents[entry.name], commit)
        lines.append(f"{hashlib.sha256((folder / entry.archive).read_bytes()).hexdigest()}  {entry.archive}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return folder


def _check_tree(tree: Path) -> None:
    dep = tree / DOWNLOADS / "dep"
    assert (dep / "hello.txt").read_text() == "hello patched\n"
    assert not (dep / "BUILD").exists() and not (dep / "sub/BUILD.bazel").exists() and (dep / "sub/keep.h").is_file()
    assert (tree / DOWNLOADS / "pigweed").is_dir() and not any((tree / DOWNLOADS / "pigweed").iterdir())
    assert (tree / "tensorflow/lite/micro/tools/make/Makefile").is_file() and (tree / STAMP).is_file()


def test_pins_are_full_commits_in_distinct_places():
    assert all(re.fullmatch(r"[0-9a-f]{40}", entry.revision) for entry in PINS)
    assert len({entry.dest for entry in PINS}) == len(PINS) and [e.dest for e in PINS].count("") == 1
    assert tflm_short() == "tflite-micro-90b983c2"
    assert all(entry.repository.startswith("https://github.com/") for entry in PINS)


def test_sha256sums_parsing(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'a' * 64}  one.tar.xz\n\n{'B' * 64} *two.tar.xz\n")
    assert read_sha256sums(sums) == {"one.tar.xz": "a" * 64, "two.tar.xz": "b" * 64}
    sums.write_text("not a checksum line\n")
    with pytest.raises(InputError, match="SHA256SUMS:1: not a sha256sum line"):
        read_sha256sums(sums)


def test_vendor_archives_are_checked_by_sum_and_commit(tmp_path):
    pins = _pins("1" * 40, "2" * 40)
    vendor = _vendor(tmp_path / "vendor", pins)
    assert archive_commit(vendor / pins[1].archive) == "2" * 40
    assert set(verify_vendor(vendor, pins)) == {entry.archive for entry in pins}
    wrong_commit = _vendor(tmp_path / "other", pins, {"dep": "3" * 40})
    with pytest.raises(CheckError, match="holds commit 3{40}, the pinned dep revision is 2{40}"):
        verify_vendor(wrong_commit, pins)
    (vendor / pins[1].archive).write_bytes(b"tampered")
    with pytest.raises(CheckError, match="differs from SHA256SUMS"):
        verify_vendor(vendor, pins)
    (vendor / pins[1].archive).unlink()
    with pytest.raises(InputError, match="missing from the vendor folder"):
        verify_vendor(vendor, pins)


def test_tree_from_archives_is_laid_out_patched_and_reused(tmp_path):
    pins = _pins("1" * 40, "2" * 40)
    vendor = _vendor(tmp_path / "vendor", pins)
    lines: list[str] = []
    tree = prepare_tree(tmp_path / "cache", source="vendor", vendor=vendor, pins=pins, log=lines.append)
    _check_tree(tree.path)
    assert tree.source == "vendor" and not tree.reused and tree.path.name.startswith("tflite-micro-11111111-")
    assert sorted(p.name for p in (tmp_path / "cache/src").iterdir()) == [".lock", tree.path.name]  # no leftovers
    again = prepare_tree(tmp_path / "cache", source="vendor", vendor=vendor, pins=pins, log=lines.append)
    assert again.reused and again.path == tree.path and again.identity == tree.identity


def _git(*args: str, cwd: Path) -> str:
    env_args = ["-c", "user.email=test@example.com", "-c", "user.name=test"]
    return subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _repo(folder: Path, files: dict[str, str]) -> str:
    folder.mkdir(parents=True)
    _git("init", "-q", cwd=folder)
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    _git("add", ".", cwd=folder)
    _git("commit", "-qm", "pinned", cwd=folder)
    pinned = _git("rev-parse", "HEAD", cwd=folder)
    (folder / "later.txt").write_text("a later commit the pin must not pick up\n")
    _git("add", ".", cwd=folder)
    _git("commit", "-qm", "later", cwd=folder)
    return pinned


def test_tree_from_git_fetches_the_pinned_commits(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    tflm_rev = _repo(tmp_path / "repos/tflm", FAKE_TREE)
    dep_rev = _repo(tmp_path / "repos/dep", FAKE_DEP)
    pins = _pins(tflm_rev, dep_rev, (tmp_path / "repos/tflm").as_uri(), (tmp_path / "repos/dep").as_uri())
    tree = prepare_tree(tmp_path / "cache", source="git", pins=pins, log=lambda _: None)
    _check_tree(tree.path)
    assert tree.source == "git" and not (tree.path / "later.txt").exists() and not (tree.path / ".git").exists()
    missing = _pins(tflm_rev, "9" * 40, pins[0].repository, pins[1].repository)
    with pytest.raises(CheckError, match="dep 999999999999 from .*: git fetch failed"):
        prepare_tree(tmp_path / "cache2", source="git", pins=missing, log=lambda _: None)
    assert [p.name for p in (tmp_path / "cache2/src").iterdir()] == [".lock"]  # the partial tree is gone


def test_user_tree_is_used_in_place(tmp_path):
    with pytest.raises(InputError, match="not a TFLite-Micro tree"):
        prepare_tree(tmp_path / "cache", tflm_dir=tmp_path)
    (tmp_path / "tflm/tensorflow/lite/micro/tools/make").mkdir(parents=True)
    (tmp_path / "tflm/tensorflow/lite/micro/tools/make/Makefile").write_text("all:\n")
    tree = prepare_tree(tmp_path / "cache", tflm_dir=tmp_path / "tflm")
    assert tree.source == "tflm-dir" and tree.path == (tmp_path / "tflm").resolve()
    with pytest.raises(InputError, match="no vendor folder"):
        prepare_tree(tmp_path / "cache", source="vendor")


HEADER = """
  TfLiteStatus AddCustom(const char* name, const TFLMRegistration* registration) {
    if (registrations_len_ >= tOpCount) {
      return kTfLiteError;
    }
    return kTfLiteOk;
  }

  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D()) {
    return AddBuiltin(BuiltinOperator_CONV_2D, registration, ParseConv2D);
  }

  TfLiteStatus AddEthosU() {
    TFLMRegistration* registration = tflite::Register_ETHOSU();
    return AddCustom(tflite::GetString_ETHOSU(), registration);
  }

  TfLiteStatus AddSoftmax(
      const TFLMRegistration& registration = Register_SOFTMAX()) {
    return AddBuiltin(BuiltinOperator_SOFTMAX, registration, ParseSoftmax);
  }
"""


def test_resolver_table_reads_builtin_methods_only():
    table = resolver_table(HEADER)
    assert table == {
        "CONV_2D": ResolverEntry("AddConv2D", "Register_CONV_2D"),
        "SOFTMAX": ResolverEntry("AddSoftmax", "Register_SOFTMAX"),
    }
    with pytest.raises(CheckError, match="both AddSoftmax and AddSoftmax register SOFTMAX"):
        resolver_table(HEADER + HEADER[HEADER.index("  TfLiteStatus AddSoftmax") :])
    with pytest.raises(CheckError, match="no Add\\* method"):
        resolver_table("class Nothing {};")


SOURCES = {
    "k/add.cc": "TFLMRegistration Register_ADD() { return {}; }\n",
    "k/conv.cc": '#include "tensorflow/lite/micro/kernels/conv.h"\n#include "tensorflow/lite/micro/kernels/kernel_util.h"\n'
    "TFLMRegistration Register_CONV_2D() { return {}; }\n",
    "k/conv_common.cc": '#include "tensorflow/lite/micro/kernels/conv.h"\n',
    "k/kernel_util.cc": "int util;\n",
    "k/cmsis_nn/softmax.cc": '#include "tensorflow/lite/micro/kernels/softmax.h"\nTFLMRegistration Register_SOFTMAX() {\n}\n',
    "k/softmax_common.cc": '#include "tensorflow/lite/micro/kernels/kernel_util.h"\n',
    "k/unused.cc": '#include "tensorflow/lite/micro/kernels/add.h"\n',
}


def test_kernel_sources_are_the_registrations_closed_over_kernel_headers():
    table = {
        "ADD": ResolverEntry("AddAdd", "Register_ADD"),
        "CONV_2D": ResolverEntry("AddConv2D", "Register_CONV_2D"),
        "SOFTMAX": ResolverEntry("AddSoftmax", "Register_SOFTMAX"),
        "MEAN": ResolverEntry("AddMean", "Register_MEAN"),
    }
    chosen = select_kernel_sources(SOURCES, SOURCES.__getitem__, ["SOFTMAX", "CONV_2D"], table)
    assert chosen == ["k/conv.cc", "k/conv_common.cc", "k/kernel_util.cc", "k/cmsis_nn/softmax.cc", "k/softmax_common.cc"]
    assert select_kernel_sources(SOURCES, SOURCES.__getitem__, ["ADD"], table) == ["k/add.cc"]
    with pytest.raises(InputError, match="no builtin op\\(s\\) SIGN"):
        select_kernel_sources(SOURCES, SOURCES.__getitem__, ["SIGN"], table)
    with pytest.raises(CheckError, match="no kernel source defines Register_MEAN"):
        select_kernel_sources(SOURCES, SOURCES.__getitem__, ["MEAN"], table)


def test_library_spec_and_object_names():
    spec = LibrarySpec("cortex-m", "reference", ("SOFTMAX", "CONV_2D", "SOFTMAX")).checked()
    assert spec == LibrarySpec("cortex-m4", "reference", ("CONV_2D", "SOFTMAX"), "default")
    for bad, message in (
        (LibrarySpec("cortex-m9"), "unknown target"),
        (LibrarySpec("cortex-m4", "helium"), "unknown kernel set"),
        (LibrarySpec("cortex-m4", build_type="fast"), "unknown build type"),
        (LibrarySpec("cortex-m4", ops=()), "empty op list"),
    ):
        with pytest.raises(InputError, match=message):
            bad.checked()
    assert object_path("/g/obj/kernels/", "tensorflow/x/conv.cc") == "/g/obj/kernels/tensorflow/x/conv.o"
    assert object_path("/g/", "a/b.S") == "/g/a/b.o" and object_path("/g/", "c.c") == "/g/c.o"
    assert set(KERNEL_SETS) == {"reference", "cmsis_nn"} and set(TFLM_ARCH) == set(CORES)


@pytest.mark.parametrize("core", list(CORES))
def test_device_header_names_the_core(core):
    rel, text = device_header(CORES[core])
    name = rel.split("/")[1]
    assert rel == f"Device/{name}/Include/{name}.h" and name.startswith("ARMCM")
    assert f'#include "core_c{name[4:].lower()}.h"' in text
    assert f"#define __FPU_PRESENT {int(CORES[core].has_fpu)}U" in text


def test_engine_table_has_unique_methods():
    assert len(set(TFLM_OPS.values())) == len(TFLM_OPS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernels", "helium", "--core", "cortex-m4"], "argument --kernels: invalid choice"),
        (["--kernels", "reference"], "--core is required"),
        (["--core", "cortex-m9"], "unknown target 'cortex-m9'"),
        (["--core", "cortex-m4", "--ops", ","], "--ops ',': name at least one builtin op"),
        (["--check-vendor", "--vendor", "/nonexistent/vendor"], "cannot read /nonexistent/vendor/SHA256SUMS"),
    ],
)
def test_cli_bad_usage_is_one_line(args, message):
    result = run_module("firmware_gen.tflm_build", *args)
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("python -m firmware_gen.tflm_build: error:") and message in lines[0]
