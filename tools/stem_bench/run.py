"""Instructions per image of the 8-bit pixel conv (the stem), measured on QEMU.

Manual measurement (not part of ``make test``). The model is the stem alone with the smallest head
the engine compiles: raw uint8 pixels rescaled to [-1, 1], a Larq ``QuantConv2D`` with
``FixedPointWeights(8)`` (random weights), an optional 2x2 max-pool, ``BatchNormalization(scale=False)``
set from the statistics of the conv's output on calibration images (so the channels' thresholds
sit inside the data, as after training), then a binary dense layer to 10 classes. It is converted
with the LCE converter, compiled by the bnn engine for ``--target`` with the bare-metal project
(``search.measure``), and ``--images`` images run on the host build and on QEMU; the host's scores
must equal the LCE interpreter's classes. Images: CIFAR-10 test images from
``../shared/data/cifar10/cifar10-jpeg.tar.gz`` (calibration on its train images) when the input has 3
channels and the archive exists, else uniform random pixels.

    PYTHONPATH=. .venv/bin/python tools/stem_bench/run.py --target cortex-m7 --shape 32 32 3 --channels 64 \\
        --kernel 3 --padding same --pool [--images 20] [--out DIR] [--cifar ARCHIVE | --random]
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import pipeline  # noqa: E402,F401  (pipeline.env: legacy Keras before TensorFlow loads)

CIFAR = REPO.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"


def cifar_images(archive_path: Path, split: str, count: int) -> np.ndarray:
    """``count`` images of a CIFAR-10 split spread over its classes (sorted by path), uint8 ``(N, 32, 32, 3)``."""
    import tensorflow as tf

    with tarfile.open(archive_path) as archive:
        members = sorted((m for m in archive.getmembers() if m.isfile() and f"/{split}/" in m.name), key=lambda m: m.name)
        step = max(1, len(members) // count)  # every class
        chosen = members[::step][:count]
        data = [archive.extractfile(m).read() for m in chosen]  # type: ignore[union-attr]
    return np.stack([tf.io.decode_jpeg(io.BytesIO(raw).getvalue(), channels=3).numpy() for raw in data])


def images(shape: tuple[int, int, int], count: int, split: str, seed: int, archive: Path) -> np.ndarray:
    """CIFAR-10 images when the shape is theirs and the archive is here, else random pixels."""
    if shape == (32, 32, 3) and archive.exists():
        return cifar_images(archive, split, count)
    return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.uint8)


def build(shape: tuple[int, int, int], channels: int, kernel: int, padding: str, pool: bool, calibration: np.ndarray, seed: int):
    """The stem model with batch norms set from the calibration images."""
    import larq as lq
    import tensorflow as tf

    from train.quantizers import FixedPointWeights

    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    quantized = {"kernel_quantizer": FixedPointWeights(8), "kernel_constraint": "weight_clip", "use_bias": False}
    layers = [tf.keras.layers.Rescaling(1 / 127.5, -1.0), lq.layers.QuantConv2D(channels, kernel, padding=padding, **quantized)]
    layers += [tf.keras.layers.MaxPooling2D(2)] if pool else []
    layers += [tf.keras.layers.BatchNormalization(scale=False), tf.keras.layers.Flatten()]
    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
    layers += [lq.layers.QuantDense(10, use_bias=False, **binary), tf.keras.layers.BatchNormalization(scale=False)]
    layers += [tf.keras.layers.Activation("softmax")]
    model = tf.keras.Sequential([tf.keras.Input(shape), *layers])
    x = calibration.astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            acts = tf.keras.Model(model.inputs, layer.input)(x, training=False).numpy()
            axes = tuple(range(acts.ndim - 1))
            mean, var = acts.mean(axis=axes), acts.var(axis=axes) + 1e-3
            n = mean.shape[0]
            mean = mean + rng.normal(size=n) * np.sqrt(var) * 0.3
            layer.set_weights([a.astype(np.float32) for a in (rng.normal(size=n) * 0.2, mean, var)])
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 32, 3), metavar=("H", "W", "C"))
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--padding", choices=("same", "valid"), default="same")
    parser.add_argument("--pool", action="store_true")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the firmware folder here")
    parser.add_argument("--cifar", type=Path, default=CIFAR, help="the CIFAR-10 JPEG archive (default: %(default)s)")
    parser.add_argument("--random", action="store_true", help="random pixels even where CIFAR-10 images fit")
    args = parser.parse_args()

    from convert.converter import to_lce
    from firmware_gen.targets import get_core
    from search.measure import compile_model, run_firmware, write_firmware

    core = get_core(args.target)
    shape = tuple(args.shape)
    archive = Path("/nonexistent") if args.random else args.cifar
    calibration = images(shape, 64, "train", args.seed, archive)
    model = build(shape, args.channels, args.kernel, args.padding, args.pool, calibration, args.seed)
    compiled = compile_model(model, core, None, "stem")
    stem = compiled.report["layers"][0]
    if stem["kind"] != "PixelConv":
        print(f"the stem did not compile as the pixel conv: {stem['kind']} {stem['notes']}")
        return 1
    test = images(shape, args.images, "test", args.seed + 1, archive)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_firmware(compiled, args.out or Path(tmp) / "firmware", core, None)
        run = run_firmware(folder, core, test, len(test))
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    reference = np.asarray(Interpreter(to_lce(model), num_threads=1).predict(test.astype(np.float32))).argmax(axis=1)
    agree = float(np.mean(run.host_predictions == reference))
    source = "CIFAR-10" if shape == (32, 32, 3) and archive.exists() else "random"
    pooled = " +pool" if args.pool else ""
    what = f"{'x'.join(map(str, shape))} {args.kernel}x{args.kernel} {args.channels} ch {args.padding}{pooled}"
    median = run.instructions_detail["median"]
    print(
        f"{what} on {core.name}: {run.instructions:,.0f} instructions per image (median {median:,.0f}, "
        f"{len(test)} {source} images), stem weights {stem['packed_weight_bytes']:,} B, flash {run.flash_bytes:,} B, "
        f"RAM {run.ram_bytes:,} B, classes equal to LCE's on {100 * agree:.0f} %"
    )
    return 0 if agree == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
