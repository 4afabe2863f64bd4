"""Compare the Cortex-M harness run of a generated TFLite-Micro app with the TFLite-Micro Python interpreter.

Usage::

    python compare.py --model MODEL.tflite --main-cc APP/main.cc --output QEMU.out \\
        [--count N] [--data DIR] [--elf LABEL=PATH ...]

Reads the harness's lines (``setup``, ``arena_used``, ``pred I C``, ``done``; see harness.cc),
runs the same first N MNIST test images (``--data``, else ``$MNIST_DIR``) through the
``tflite_micro`` Python interpreter, one image per invoke, with the input prepared exactly as the
firmware does it: for an int8 input through the ``kInputQuant`` table parsed from ``main.cc``,
for a float input as the raw pixel values. Prints one summary line: agreement, accuracy of both
against the labels, the arena the interpreter used on the core against ``kArenaSize``, and
``arm-none-eabi-size`` of every ``--elf``. Exit status 0 when setup succeeded and every
prediction is present and agrees, 1 otherwise, 2 for bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data import load_mnist
from pipeline.errors import InputError
from pipeline.interpreters import quantize


@dataclass(frozen=True)
class HarnessRun:
    """What the harness printed.

    Attributes:
        setup: ``tflm_setup()``'s status (0 = ready), or ``None`` when the line is missing.
        arena_used: ``arena_used_bytes()`` on the core, or ``None``.
        predictions: class per image index; -99 where the line is missing.
        done: whether the closing ``done`` line was printed.
    """

    setup: int | None
    arena_used: int | None
    predictions: np.ndarray
    done: bool


@dataclass(frozen=True)
class MainCc:
    """The constants compare.py needs from a generated ``main.cc``.

    Attributes:
        arena_size: ``kArenaSize`` in bytes.
        input_quant: the 256-entry ``kInputQuant`` table (int8), or ``None`` for a float input.
    """

    arena_size: int
    input_quant: np.ndarray | None


def parse_main_cc(text: str) -> MainCc:
    """Extract ``kArenaSize`` and ``kInputQuant`` from the text of a generated ``main.cc``.

    Raises:
        InputError: ``kArenaSize`` is missing or ``kInputQuant`` does not hold 256 values.
    """
    arena = re.search(r"constexpr size_t kArenaSize = (\d+);", text)
    if arena is None:
        raise InputError("main.cc: no kArenaSize constant")
    table = re.search(r"kInputQuant\[256\] = \{(.*?)\};", text, re.S)
    if table is None:
        return MainCc(int(arena.group(1)), None)
    values = np.array([int(v) for v in table.group(1).replace("\n", " ").split(",") if v.strip()], np.int64)
    if values.shape != (256,) or values.min() < -128 or values.max() > 127:
        raise InputError(f"main.cc: kInputQuant must hold 256 int8 values, got {values.size}")
    return MainCc(int(arena.group(1)), values.astype(np.int8))


def parse_harness(text: str, count: int) -> HarnessRun:
    """Parse the harness's stdout for ``count`` images (lines it does not know are ignored)."""

    def single(key: str) -> int | None:
        found = re.search(rf"^{key} (-?\d+)\s*$", text, re.M)
        return int(found.group(1)) if found else None

    predictions = np.full(count, -99, np.int64)
    for index, label in re.findall(r"^pred (\d+) (-?\d+)\s*$", text, re.M):
        if int(index) < count:
            predictions[int(index)] = int(label)
    return HarnessRun(single("setup"), single("arena_used"), predictions, re.search(r"^done \d+\s*$", text, re.M) is not None)


def reference_predictions(model: bytes, images: np.ndarray, main_cc: MainCc) -> np.ndarray:
    """Classes the TFLite-Micro Python interpreter predicts, fed as the firmware feeds its model.

    Args:
        model: the ``.tflite`` bytes.
        images: ``(N, 28, 28)`` uint8 raw pixels.
        main_cc: the generated app's constants (its ``kInputQuant`` for an int8 input).

    Returns:
        ``(N,)`` argmax of the output per image.
    """
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=main_cc.arena_size + (1 << 20))
    details = interpreter.get_input_details(0)
    shape, dtype = tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"])
    pixels = images.reshape(len(images), -1)
    if main_cc.input_quant is not None:
        if dtype != np.int8:
            raise InputError(f"main.cc has kInputQuant but the model's input is {dtype}")
        feed = main_cc.input_quant[pixels]
    else:
        feed = pixels.astype(dtype)
    classes = []
    for image in feed:
        interpreter.set_input(image.reshape(shape), 0)
        interpreter.invoke()
        classes.append(int(np.argmax(np.asarray(interpreter.get_output(0)).reshape(-1))))
    return np.array(classes, np.int64)


def quant_table_check(model: bytes, table: np.ndarray) -> str:
    """How many of the 256 ``kInputQuant`` entries equal the emulator's own input quantization.

    The emulator (``pipeline.interpreters.quantize``) rounds half to even, the generator half away
    from zero, as TFLite's quantize kernel; the two can only differ on exact ties.
    """
    from tflite_micro.python.tflite_micro import runtime

    details = runtime.Interpreter.from_bytes(model, arena_size=1 << 20).get_input_details(0)
    params = details["quantization_parameters"]
    expected = quantize(np.arange(256), float(params["scales"][0]), int(params["zero_points"][0]), np.int8)
    return f"kInputQuant {int((expected == table).sum())}/256 = emulator quantize()"


def elf_size(path: Path) -> str:
    """``text+data / bss`` of an ELF from ``arm-none-eabi-size`` (Berkeley format)."""
    result = subprocess.run(["arm-none-eabi-size", str(path)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in result.stdout.splitlines()[1].split()[:3])
    return f"flash {text + data:,} B, static RAM {data + bss:,} B"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, compare, print the summary line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the .tflite the app was generated from")
    parser.add_argument("--main-cc", type=Path, required=True, help="the generated main.cc")
    parser.add_argument("--output", type=Path, required=True, help="the harness's stdout captured from QEMU")
    parser.add_argument("--count", type=int, default=100, help="images the harness classified (default 100)")
    parser.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DIR)")
    parser.add_argument("--elf", action="append", default=[], metavar="LABEL=PATH", help="an ELF to size (repeatable)")
    args = parser.parse_args(argv)
    data = args.data or os.environ.get("MNIST_DIR")
    if not data:
        parser.error("set $MNIST_DIR or pass --data DIR (the folder with the MNIST IDX files)")
    try:
        main_cc = parse_main_cc(args.main_cc.read_text())
        model = args.model.read_bytes()
        dataset = load_mnist(data)
        images, labels = dataset.x_test[: args.count], dataset.y_test[: args.count].astype(np.int64)
        run = parse_harness(args.output.read_text(errors="replace"), args.count)
        reference = reference_predictions(model, images, main_cc)
        quant = quant_table_check(model, main_cc.input_quant) if main_cc.input_quant is not None else "float input"
    except (InputError, OSError) as err:
        print(f"compare.py: {err}", file=sys.stderr)
        return 2

    count = args.count
    present = int((run.predictions >= 0).sum())
    agree = int((run.predictions == reference).sum())
    ok = run.setup == 0 and run.done and present == count and agree == count
    arena = f"{run.arena_used:,}" if run.arena_used is not None else "?"
    sizes = "".join(f" | {label} {elf_size(Path(path))}" for label, path in (e.split("=", 1) for e in args.elf))
    print(
        f"{args.model.name}: {'OK' if ok else 'FAIL'} setup {run.setup} | agree {agree}/{count} | "
        f"accuracy M4 {int((run.predictions == labels).sum())}/{count}, Python TFLM {int((reference == labels).sum())}/{count} | "
        f"arena used on M4 {arena} of kArenaSize {main_cc.arena_size:,} B | {quant}{sizes}"
    )
    if not ok:
        wrong = [(int(i), int(run.predictions[i]), int(reference[i])) for i in np.flatnonzero(run.predictions != reference)]
        more = " ..." if len(wrong) > 20 else ""
        print(f"  (index, M4, Python TFLM) where they differ (M4 -99: no line): {wrong[:20]}{more}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
