"""A 32x32x3 CIFAR-shaped BNN in the Larq-zoo style, trained, compiled by the bnn engine and run on QEMU.

Manual measurement (not part of ``make test``), for issue 13's acceptance: no CIFAR data is
available offline, so the model is trained on MNIST padded to 32x32 and replicated to 3
channels (written as ``mnist32.npz``, the ``.npz`` layout ``--data`` takes). The architecture is
``tests/bnn_models.py``'s ``cifar`` (float stem, Bi-Real blocks with residual shortcuts, global
average pooling, float head). Steps: train (Adam, ``--epochs``), convert with the LCE
converter, ``firmware_gen`` (bnn engine + bare-metal project) for ``--target``, then the first
``--images`` test images through the LCE interpreter, the host build and the firmware under
QEMU (``make run``); prints accuracy, agreement, flash, RAM and instructions per inference.

    PYTHONPATH=. .venv/bin/python tools/cifar_bnn/run.py --out OUT_DIR [--epochs 2] [--train-images N] [--images 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import pipeline  # noqa: E402,F401  (pipeline.env: legacy Keras before TensorFlow loads)


def mnist32(mnist) -> dict[str, np.ndarray]:
    """MNIST padded to 32x32 (2 pixels each side) and replicated to 3 channels, uint8."""

    def widen(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
        return np.repeat(padded[..., None], 3, axis=3).astype(np.uint8)

    return {"x_train": widen(mnist.x_train), "y_train": mnist.y_train, "x_test": widen(mnist.x_test), "y_test": mnist.y_test}


def train(data: dict[str, np.ndarray], epochs: int, seed: int):
    import tensorflow as tf
    from bnn_models import build, calibrate

    model = calibrate(build("cifar", seed=seed), data["x_train"][:256], seed=seed)
    for layer in model.layers:  # short training: batch-norm statistics must follow the weights quickly
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data["x_train"].astype(np.float32), data["y_train"], batch_size=128, epochs=epochs, verbose=2)
    return model


def run_qemu(folder: Path, machine: str, images: np.ndarray, count: int):
    """``make`` and ``make run`` in the generated folder; returns the decoded results."""
    from firmware_gen.baremetal.protocol import parse_results

    (folder / "images.bin").write_bytes(np.ascontiguousarray(images).tobytes())
    subprocess.run(["make", "-s"], cwd=folder, check=True, capture_output=True)
    run = ["make", "-s", "run", "IMAGES=images.bin", "RESULTS=results.bin"]
    subprocess.run(run, cwd=folder, check=True, capture_output=True, timeout=3600)
    return parse_results((folder / "results.bin").read_bytes(), count, f"QEMU {machine}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--train-images", type=int, default=None, help="train on the first N training images (default all)")
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse OUT/cifar_bnn.lce.tflite (and .h5) instead of training")
    args = parser.parse_args()

    from bnn_c import lce_run, run_c

    from convert.converter import to_lce
    from convert.flatbuffer import read_model_bytes
    from firmware_gen.baremetal.protocol import instructions_per_tick
    from firmware_gen.engines import run_engine
    from firmware_gen.targets import get_core
    from pipeline.data import load_mnist

    args.out.mkdir(parents=True, exist_ok=True)
    data = mnist32(load_mnist(None))
    np.savez_compressed(args.out / "mnist32.npz", **data)
    x, y = data["x_test"][: args.images], data["y_test"][: args.images]
    keras_path, lce_path = args.out / "cifar_bnn.h5", args.out / "cifar_bnn.lce.tflite"
    keras = None
    if args.reuse and lce_path.exists():
        flatbuffer = lce_path.read_bytes()
        if keras_path.exists():
            from convert.keras_io import load_keras_model

            keras = load_keras_model(keras_path).predict(x.astype(np.float32), verbose=0).argmax(axis=1)
    else:
        train_data = {key: value[: args.train_images] for key, value in data.items() if key.endswith("_train")}
        model = train(train_data, args.epochs, args.seed)
        model.save(keras_path)
        keras = model.predict(x.astype(np.float32), verbose=0).argmax(axis=1)
        flatbuffer = to_lce(model)
        lce_path.write_bytes(flatbuffer)
    core = get_core(args.target)
    output = run_engine("bnn", read_model_bytes(flatbuffer, "cifar_bnn.lce.tflite"), core, None)
    folder = args.out / f"cifar_bnn-{core.name}"
    folder.mkdir(exist_ok=True)
    for name, payload in output.files.items():
        (folder / name).write_bytes(payload)
    report = output.report
    lce = lce_run(flatbuffer, x.astype(np.float32))
    host = run_c(folder, report, x)
    results = run_qemu(folder, core.qemu_machine, x, len(x))
    instructions = np.asarray(results.ticks, dtype=np.float64) * instructions_per_tick(core.qemu_machine)
    figures = {
        "target": core.name,
        "images": len(x),
        "epochs": args.epochs,
        "train_images": len(data["x_train"]) if args.train_images is None else min(args.train_images, len(data["x_train"])),
        "accuracy_keras": None if keras is None else float((keras == y).mean()),
        "accuracy_lce": float((lce.argmax(axis=1) == y).mean()),
        "accuracy_qemu": float((np.asarray(results.predictions) == y).mean()),
        "qemu_equal_lce": int((np.asarray(results.predictions) == lce.argmax(axis=1)).sum()),
        "qemu_scores_equal_host": bool(np.array_equal(results.scores, host.scores)),
        "max_score_difference_vs_lce": float(np.abs(np.asarray(results.scores) - lce).max()),
        "model_data_bytes": report["model_data_bytes"],
        "activation_ram_bytes": report["activation_ram_bytes"],
        "deployable_flash_bytes": report.get("flash_bytes"),
        "deployable_ram_bytes": report.get("ram_bytes"),
        "instructions_per_inference_mean": float(instructions.mean()),
        "kernels": [row["kind"] for row in report["layers"]],
    }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0 if figures["qemu_equal_lce"] == len(x) and figures["qemu_scores_equal_host"] else 1


if __name__ == "__main__":
    sys.exit(main())
