"""Shared fixtures: the MNIST location, small data slices and tiny trained zoo models.

Tiny models are trained once per test session on a 2,000-image slice for one epoch (a few
seconds each) and saved as .h5 into a session folder; tests must not depend on a long run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
TINY_TRAIN_IMAGES = 2000

# Running pytest directly (not through make) still finds the shared MNIST copy, in-process
# CLIs included.
if not os.environ.get("MNIST_DIR") and SHARED_MNIST.is_dir():
    os.environ["MNIST_DIR"] = str(SHARED_MNIST)


def mnist_dir() -> Path:
    """The folder with the four MNIST IDX files ($MNIST_DIR, else ../shared/data/mnist)."""
    env = os.environ.get("MNIST_DIR")
    path = Path(env) if env else SHARED_MNIST
    if not (path / "t10k-labels-idx1-ubyte.gz").exists() and not (path / "t10k-labels-idx1-ubyte").exists():
        pytest.fail(f"MNIST not found at {path}: set MNIST_DIR to the folder with the IDX files")
    return path


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """Path of the MNIST folder."""
    return mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_path: Path):
    """The full dataset as uint8 arrays (loads in about a second)."""
    from pipeline.data import load_dataset

    return load_dataset(mnist_path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, mnist_path: Path) -> dict[str, Path]:
    """Zoo models trained for one epoch on 2,000 images: name -> .h5 path (one folder).

    Trained through ``python -m train`` itself, so the CLI and the .h5 format are exercised.
    """
    out = tmp_path_factory.mktemp("tiny_models")
    paths = {}
    for name in ("bcnn", "cnn", "mlp"):
        subprocess.run(
            [
                *python_m("train"),
                "--model",
                name,
                "--epochs",
                "1",
                "--limit",
                str(TINY_TRAIN_IMAGES),
                "--seed",
                "1",
                "--data",
                str(mnist_path),
                "--out",
                str(out),
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
        paths[name] = out / f"{name}.h5"
    return paths


@pytest.fixture
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decoded-dataset cache folder of the test's own (``$BNN_DATA_CACHE``): no test writes ~/.cache."""
    from pipeline.datacache import CACHE_ENV

    folder = tmp_path / "data-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def list_firmware_files(folder: Path) -> Path:
    """Record every file of a folder a test assembled from engine output in its ``firmware.json`` (made if
    absent) as ``python -m firmware_gen`` does (``files``: path, bytes, sha256), so the backends'
    check (:mod:`emulator.firmware_files`) takes it as generated. Returns ``folder``."""
    import json

    from pipeline.artifacts import sha256_file

    manifest_path = folder / "firmware.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p != manifest_path)
    manifest["files"] = [
        {"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths
    ]
    manifest_path.write_text(json.dumps(manifest))
    return folder


def require_tools(*tools: str, hint: str = "install it") -> None:
    """Fail (under ``CI=true``) or skip unless every program in ``tools`` is on ``PATH``.

    Tests that need outside tools must run in CI, never skip there: a missing tool is a
    failure with the install hint.
    """
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        _fail_in_ci_else_skip(f"missing {', '.join(missing)}: {hint}")


def _fail_in_ci_else_skip(message: str) -> None:
    """What a test does without something outside the repository: fail under ``CI=true``, else skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_tflm_sources() -> None:
    """Fail (under ``CI=true``) or skip unless TFLite-Micro's sources can be found to build offline."""
    from firmware_gen.tflm_build import sources_available

    if not sources_available():
        _fail_in_ci_else_skip(
            "TFLite-Micro sources not found: ../shared/vendor (or $TFLM_VENDOR, $TFLM_DIR) is needed to build offline"
        )


def require_toolchain(*extra: str) -> None:
    """:func:`require_tools` for the Arm toolchain, QEMU and ``extra`` (the on-target tests)."""
    from emulator.qemu import TOOLS

    require_tools(*TOOLS, *extra, hint="install with `make toolchain` (gcc-arm-none-eabi, qemu-system-arm)")


def require_cmake() -> str:
    """Path of ``cmake`` (:func:`require_tools`: fails under ``CI=true``, skips otherwise)."""
    require_tools("cmake", hint="install with `make toolchain` (Debian package cmake)")
    return str(shutil.which("cmake"))


def require_chromium() -> str:
    """Path of headless Chromium (:func:`require_tools`: fails under ``CI=true``, skips otherwise).

    ``make toolchain`` installs Debian's ``chromium`` when running as root, like the Arm
    toolchain; the browser tests follow the toolchain tests' rule.
    """
    from chromium import find_chromium

    path = find_chromium()
    if path is None:
        require_tools("chromium", hint="install with `make toolchain` (Debian package chromium)")
    return str(path)


def python_m(module: str) -> list[str]:
    """Command prefix that runs ``python -m MODULE`` with this interpreter."""
    import sys

    return [sys.executable, "-m", module]


def run_module(module: str, *args: str | os.PathLike[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m MODULE ARGS`` and capture text output (never raises on exit status)."""
    return subprocess.run([*python_m(module), *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Non-empty stderr lines of a finished command."""
    return [line for line in result.stderr.splitlines() if line.strip()]


class _TinyFlatbuffers(dict):
    """name -> {"float"|"int8"|"lce": flatbuffer Path, "report": NAME.convert.json Path}.

    Each tiny model is converted by ``python -m convert`` on first access, once per session.
    """

    def __init__(self, models: dict[str, Path], out: Path, data: Path) -> None:
        super().__init__()
        self._models, self._out, self._data = models, out, data

    def __missing__(self, name: str) -> dict[str, Path]:
        import json

        result = run_module(
            "convert",
            self._models[name],
            "--out",
            self._out,
            "--data",
            self._data,
            "--check",
            "200",
            "--calibration",
            "100",
        )
        if result.returncode != 0:
            pytest.fail(f"python -m convert {name} failed ({result.returncode}): {result.stderr[-2000:]}")
        report_path = self._out / f"{name}.convert.json"
        report = json.loads(report_path.read_text())
        paths = {fmt: Path(entry["path"]) for fmt, entry in report["formats"].items() if not entry.get("skipped")}
        paths["report"] = report_path
        self[name] = paths
        return paths


@pytest.fixture(scope="session")
def tiny_flatbuffers(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], mnist_path: Path
) -> dict[str, dict[str, Path]]:
    """The tiny models converted by ``python -m convert --check 200 --calibration 100``, lazily.

    ``tiny_flatbuffers["cnn"]["int8"]`` is the tiny cnn's ``cnn.int8.tflite``; keys per model:
    ``float``, ``lce``, ``int8`` (not for bcnn: binary models skip it) and ``report``.
    """
    return _TinyFlatbuffers(tiny_models, tmp_path_factory.mktemp("tiny_flatbuffers"), mnist_path)


@pytest.fixture(scope="session")
def mini_flatbuffers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three small real flatbuffers with fixed weights (:func:`fuzzing.build_seeds`), as files.

    ``bcnn.lce`` (an LCE binary CNN the bnn engine compiles), ``cnn`` (float) and ``cnn.int8``:
    a few KiB each, converted in-process once per session; the fuzz and bad-input tests mutate them.
    """
    from fuzzing import build_seeds

    out = tmp_path_factory.mktemp("mini_flatbuffers")
    paths = {}
    for name, data in build_seeds().items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="session")
def tiny_cnn_tflite(emulator_artifacts: Path) -> dict[str, Path]:
    """The tiny cnn as float and int8 flatbuffers: ``{"float": ..., "int8": ...}``.

    The files of :func:`emulator_artifacts` (converted once per session).
    """
    return {"float": emulator_artifacts / "cnn.tflite", "int8": emulator_artifacts / "cnn.int8.tflite"}


@pytest.fixture(scope="session")
def emulator_artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], mnist) -> Path:
    """One folder with the tiny models and their flatbuffers, as ``python -m convert`` lays them out.

    ``bcnn.h5`` + ``bcnn.lce.tflite``; ``cnn.h5`` + ``cnn.tflite`` + ``cnn.int8.tflite``;
    ``mlp.h5`` + ``mlp.tflite`` + ``mlp.int8.tflite`` (int8 calibrated on 200 training images).
    Converted in-process with :mod:`convert.converter`; no ``NAME.convert.json`` (no input range).
    """
    from convert.converter import to_lce, to_tflite_float, to_tflite_int8
    from convert.keras_io import load_keras_model

    out = tmp_path_factory.mktemp("emulator_artifacts")
    for name, h5 in tiny_models.items():
        shutil.copy(h5, out / f"{name}.h5")
        model = load_keras_model(h5)
        if name == "bcnn":
            (out / "bcnn.lce.tflite").write_bytes(to_lce(model))
            continue
        (out / f"{name}.tflite").write_bytes(to_tflite_float(model))
        (out / f"{name}.int8.tflite").write_bytes(to_tflite_int8(model, mnist.x_train[:200]))
    return out


@pytest.fixture(scope="session")
def kws_audio(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic keyword task of ``tests/audio_data.py`` as WAV files, a model trained on it, and its flatbuffers.

    Keys: ``data`` (the dataset spec, ``--data`` for every stage: the ``audio`` kind), ``dataset``
    (the :class:`~pipeline.dataset.Dataset` it loads: features, raw clips, front end), ``h5`` (a
    narrow ``kws_bnn`` trained for two epochs, about 30 s on two shared cores), ``lce`` and
    ``float`` (``python -m convert --data``: the front end embedded) and ``report``
    (``kws.convert.json``). The decode cache of the whole session is a folder of its own.
    """
    from audio_data import train_kws_bnn, write_audio_source

    from pipeline.data import load_dataset
    from pipeline.datacache import CACHE_ENV

    out = tmp_path_factory.mktemp("kws_audio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(out / "data-cache"))
        spec = write_audio_source(out / "source")
        dataset = load_dataset(spec)
        model = train_kws_bnn(dataset)
        model.save(out / "kws.h5", save_format="h5", include_optimizer=False)
        result = run_module("convert", out / "kws.h5", "--data", spec, "--check", str(len(dataset.y_test)))
        if result.returncode != 0:
            pytest.fail(f"python -m convert on the keyword model exited {result.returncode}: {result.stderr[-2000:]}")
        yield {
            "data": spec,
            "dataset": dataset,
            "h5": out / "kws.h5",
            "lce": out / "kws.lce.tflite",
            "float": out / "kws.tflite",
            "report": out / "kws.convert.json",
        }
