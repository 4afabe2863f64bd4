"""Real TFLite-Micro built offline: sources from the vendor archives (or a checkout, or git), a library per core.

* :mod:`~firmware_gen.tflm_build.pins`: the TFLite-Micro revision and the third-party revisions it pins;
* :mod:`~firmware_gen.tflm_build.sources`: check the archives, lay out the tree TFLite-Micro's makefile expects;
* :mod:`~firmware_gen.tflm_build.kernels`: the op resolver read from TFLite-Micro's header, the kernel files ops need;
* :mod:`~firmware_gen.tflm_build.target`: TARGET_ARCH and the CMSIS device header of TFLite-Micro's cortex_m_generic target;
* :mod:`~firmware_gen.tflm_build.library`: ``libtensorflow-microlite.a`` per core and kernel set, cached;
* :mod:`~firmware_gen.tflm_build.cli`: ``python -m firmware_gen.tflm_build``.
"""

from firmware_gen.tflm_build.ensure import ensure_library, sources_available
from firmware_gen.tflm_build.library import KERNEL_SETS, Library, LibrarySpec, build_library, default_cache
from firmware_gen.tflm_build.sources import Tree, default_vendor, prepare_tree

__all__ = [
    "KERNEL_SETS",
    "Library",
    "LibrarySpec",
    "Tree",
    "build_library",
    "default_cache",
    "default_vendor",
    "ensure_library",
    "prepare_tree",
    "sources_available",
]
