"""Limits on the sizes an input file declares, checked before anything is allocated or decompressed.

A header is a promise, not data: a 42 KB ``.h5`` can declare a 3 GB weight, a 13 MB gzip IDX
3.8 M images, an ``.npz`` member 784 x 10^12 elements. The ``.h5``, IDX and ``.npz`` readers
check what a file declares against the rest of the file (a weight's bytes are in the file, an
image count matches the label count, an ``.npy`` member holds the bytes its header promises)
and against the limits here, then allocate; the model report bounds a ``train.json`` history
the same way. Each limit is far above what the toolchain's models and datasets need and far
below what would exhaust a workstation; passing one is refused in one line that names the
file, the entry and the limit (:class:`~pipeline.errors.InputError`, exit 2).

Limits kept beside the code they bound: :data:`pipeline.json_input.MAX_JSON_DEPTH` (nesting of
any JSON input), :data:`convert.validation.MAX_TENSOR_BYTES` and
:data:`convert.validation.MAX_ACTIVATION_BYTES` (a flatbuffer's tensors).
"""

from __future__ import annotations

__all__ = ["MAX_H5_WEIGHT_BYTES", "MAX_DATASET_BYTES", "MAX_NPY_HEADER_BYTES", "MAX_EPOCHS", "describe_bytes"]

MAX_H5_WEIGHT_BYTES = 1 << 30
"""Bytes of weights Keras may read from one model ``.h5`` (every dataset its weight lists name): 1 GiB.

Eight times a 125 MB float dense model (784 -> 40,000 -> 10), a thousand times what a
microcontroller holds. Each dataset must also store its declared bytes in the file,
uncompressed (:func:`pipeline.keras_files.check_h5_sizes`)."""

MAX_DATASET_BYTES = 1 << 30
"""Bytes of examples and labels the headers of one ``--data`` source may declare (IDX files, an ``.npz``): 1 GiB.

Five times CIFAR-10 as uint8 (184 MB), nineteen times MNIST (55 MB). Counted as declared
(before an ``.npz``'s float16/float64 examples become float32)."""

MAX_NPY_HEADER_BYTES = 10_000
"""Length an ``.npy`` member's header (a Python dict literal) may declare: numpy's own default
``max_header_size``, checked before the header is read (a version-2 header's length field
could declare 4 GiB)."""

MAX_EPOCHS = 10_000
"""Epochs a recipe may train (:data:`train.recipes.RANGES`), so the values per metric a
``NAME.train.json`` history may hold: the model report refuses a longer history (2 M values
made a 232 MB page) rather than drawing it."""


def describe_bytes(count: int) -> str:
    """``1073741824`` -> ``1,073,741,824 bytes (1.0 GiB)``: how a refusal states a size and a limit."""
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            break
        value /= 1024
    return f"{count:,} bytes" + (f" ({value:.1f} {unit})" if unit != "B" else "")
