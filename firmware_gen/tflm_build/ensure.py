"""One call for the rest of the project: a TFLite-Micro library for a core, from wherever the sources are."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from firmware_gen.tflm_build.library import Library, LibrarySpec, build_library, default_cache
from firmware_gen.tflm_build.sources import default_vendor, prepare_tree

__all__ = ["ensure_library", "sources_available"]


def sources_available() -> bool:
    """Whether a build can start without network: ``$TFLM_DIR`` is set or the vendor folder exists."""
    return bool(os.environ.get("TFLM_DIR")) or default_vendor() is not None


def ensure_library(
    core: str,
    kernels: str = "cmsis_nn",
    ops: Iterable[str] | None = None,
    *,
    build_type: str = "default",
    source: str = "auto",
    tflm_dir: Path | None = None,
    vendor: Path | None = None,
    cache: Path | None = None,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
) -> Library:
    """Prepare the TFLite-Micro tree and build (or reuse) the library for ``core``.

    Args:
        core: core name (``cortex-m4``).
        kernels: ``reference`` or ``cmsis_nn``.
        ops: builtin ops to include (``None``: the whole library).
        build_type: TFLite-Micro's ``BUILD_TYPE``.
        source: ``auto``, ``tflm-dir``, ``vendor`` or ``git`` (see :mod:`firmware_gen.tflm_build.sources`).
        tflm_dir: a TFLite-Micro checkout (default ``$TFLM_DIR``).
        vendor: the vendor folder (default ``$TFLM_VENDOR``, else ``../shared/vendor``).
        cache: the cache folder (default ``$TFLM_CACHE``, else ``build/tflm``).
        jobs: parallel compile jobs.
        log: progress printer.

    Returns:
        The :class:`~firmware_gen.tflm_build.library.Library`.

    Raises:
        InputError: bad arguments, missing sources or tools.
        CheckError: a checksum, a commit, a patch or the build failed.
    """
    env_dir = os.environ.get("TFLM_DIR")
    tflm_dir = tflm_dir or (Path(env_dir) if env_dir else None)
    vendor = vendor or default_vendor()
    cache = cache or default_cache()
    tree = prepare_tree(cache, source=source, tflm_dir=tflm_dir, vendor=vendor, log=log)
    spec = LibrarySpec(core, kernels, None if ops is None else tuple(ops), build_type)
    return build_library(spec, tree, cache=cache, jobs=jobs, log=log)
