"""Write the first N MNIST test images as a C array for the TFLite-Micro harness (harness.cc).

Usage: ``python make_images.py OUT.c [--count N] [--data DIR]``. The images are read with the
project's loader (``pipeline.data.load_mnist``) from ``--data``, else ``$MNIST_DIR`` (a folder with
the IDX files, ``.gz`` or raw); there is no download fallback. The C file defines ``kNumImages``
and ``kImages[N][784]``, raw 0..255 pixels in IDX order, which is what the generated
``tflm_classify()`` takes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.data import load_mnist
from pipeline.errors import InputError

PIXELS = 28 * 28


def c_source(images: np.ndarray) -> str:
    """Return the C99 source defining ``kNumImages`` and ``kImages`` for ``images``.

    Args:
        images: ``(N, 28, 28)`` uint8 array.

    Returns:
        The text of the ``.c`` file.
    """
    flat = images.reshape(len(images), PIXELS)
    lines = [
        f"// The first {len(flat)} MNIST test images (raw pixels 0..255), written by tools/tflm_check/make_images.py.",
        "#include <stdint.h>",
        "",
        f"const unsigned kNumImages = {len(flat)}u;",
        f"const uint8_t kImages[{len(flat)}][{PIXELS}] = {{",
    ]
    lines += ["  {" + ",".join(str(int(v)) for v in row) + "}," for row in flat]
    lines += ["};", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, load the test set and write the C file atomically.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status (0).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .c file to write")
    parser.add_argument("--count", type=int, default=100, help="number of test images (default 100)")
    parser.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DIR)")
    args = parser.parse_args(argv)
    data = args.data or os.environ.get("MNIST_DIR")
    if not data:
        parser.error("set $MNIST_DIR or pass --data DIR (the folder with the MNIST IDX files)")
    try:
        dataset = load_mnist(data)
    except InputError as err:
        parser.error(str(err))
    if dataset.x_test.shape[1:] != (28, 28):
        parser.error(f"expected 28x28 images, got {dataset.x_test.shape[1:]}")
    if not 0 < args.count <= len(dataset.x_test):
        parser.error(f"--count must be in 1..{len(dataset.x_test)}")
    text = c_source(dataset.x_test[: args.count])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
