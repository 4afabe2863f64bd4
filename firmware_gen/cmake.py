"""CMake packaging of the generated C: a static library a user adds with two lines.

Both engines get a ``CMakeLists.txt`` and an arm-none-eabi toolchain file
(:data:`TOOLCHAIN_NAME`) carrying the core's flags from :mod:`firmware_gen.targets`, the same
flags the generated Makefiles use:

* bnn: target ``bnn_model``, the deployable part only (the engine's ``.c`` files); the QEMU
  harness files beside it stay out of the library;
* tflm: target named after the model (:func:`tflm_target`: ``cnn.int8`` -> ``cnn_int8``),
  ``main.cc`` built with ``TFLM_APP_NO_MAIN`` plus ``model_data.c``, linked to TFLite-Micro
  (``tflm::microlite``) from the ``TFLM_DIR`` cache variable.

A user project then needs ``add_subdirectory(FOLDER NAME)`` and
``target_link_libraries(APP PRIVATE NAME)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convert.flatbuffer import Model
from firmware_gen.render import banner_context, c_identifier, render
from firmware_gen.targets import Board, Core

__all__ = ["TOOLCHAIN_NAME", "BNN_TARGET", "DEFAULT_OPT", "toolchain_file", "bnn_files", "tflm_target", "tflm_files"]

TOOLCHAIN_NAME = "arm-none-eabi.cmake"
BNN_TARGET = "bnn_model"
DEFAULT_OPT = "-Os"
"""Optimisation of the bnn library when the engine's report names none (the bare-metal project's default)."""


def _banner(model: Model, engine: str, core: Core, board: Board | None) -> dict[str, Any]:
    return {**banner_context(model, f"{engine} engine", core, board), "toolchain_name": TOOLCHAIN_NAME}


def toolchain_file(core: Core, engine: str, model: Model, board: Board | None = None) -> bytes:
    """The arm-none-eabi toolchain file for ``core``.

    Args:
        core: the target core (its ``gcc_flags`` become ``CMAKE_<LANG>_FLAGS_INIT``).
        engine: ``bnn`` or ``tflm`` (named in the banner).
        model: the parsed flatbuffer (banner).
        board: the board or ``None`` (banner).

    Returns:
        The file's bytes.
    """
    return render("cmake/arm-none-eabi.cmake.j2", **_banner(model, engine, core, board)).encode("utf-8")


def bnn_files(core: Core, model: Model, board: Board | None, engine_sources: list[str], opt: str) -> dict[str, bytes]:
    """``CMakeLists.txt`` (target :data:`BNN_TARGET`) and the toolchain file of a bnn firmware folder.

    Args:
        core: the target core.
        model: the parsed flatbuffer (banner).
        board: the board or ``None`` (banner).
        engine_sources: the deployable ``.c`` files (``bnn_model.c``).
        opt: the optimisation flag the engine's figures were measured with (``-Os``).

    Raises:
        ValueError: no engine source.
    """
    if not engine_sources:
        raise ValueError("the bnn engine produced no C source for the CMake library")
    text = render("cmake/bnn_CMakeLists.txt.j2", engine_sources=engine_sources, opt=opt, **_banner(model, "bnn", core, board))
    return {"CMakeLists.txt": text.encode("utf-8"), TOOLCHAIN_NAME: toolchain_file(core, "bnn", model, board)}


def tflm_target(model_file_name: str) -> str:
    """The CMake target of a tflm folder: the model's file name without ``.tflite``, as a C identifier."""
    return c_identifier(model_file_name.removesuffix(".tflite"))


def tflm_files(
    core: Core, model: Model, board: Board | None, tflm_arch: str, extra_sources: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """``CMakeLists.txt`` (target :func:`tflm_target`) and the toolchain file of a tflm firmware folder.

    Args:
        core: the target core.
        model: the parsed flatbuffer (banner, target name).
        board: the board or ``None`` (banner).
        tflm_arch: ``TARGET_ARCH`` of TFLite-Micro's cortex_m_generic target for the core.
        extra_sources: more C files of the library (an audio model's front end and clip API).
    """
    target = tflm_target(Path(model.path).name)
    text = render(
        "cmake/tflm_CMakeLists.txt.j2",
        target=target,
        tflm_arch=tflm_arch,
        extra_sources=list(extra_sources),
        **_banner(model, "tflm", core, board),
    )
    return {"CMakeLists.txt": text.encode("utf-8"), TOOLCHAIN_NAME: toolchain_file(core, "tflm", model, board)}
