"""What training holds in memory, measured from the actual tensors of one training step.

The trained model is loaded again, its recipe's optimizer is built, and one step runs on one
batch of training images of the recipe's batch size, in training mode. Then the bytes of
every tensor that step needed are summed: the weights (trainable and not), the gradients
``GradientTape`` returned, the optimizer's variables (Adam's two moments, SGD's momentum,
the step counter), every layer's output for the batch (what backpropagation keeps), and,
for binary layers, the quantized kernel each forward pass computes from the latent weights.
Nothing is estimated from parameter counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["tensor_bytes", "training_tensors"]


def tensor_bytes(tensors: Any) -> int:
    """Total bytes of tensors or variables (``None`` entries are skipped)."""
    total = 0
    for tensor in tensors:
        if tensor is None:
            continue
        total += int(np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor).nbytes)
    return total


def _optimizer_variables(optimizer: Any) -> list[Any]:
    """The optimizer's variables (a property on Keras' optimizers, a method on the legacy ones)."""
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


def training_tensors(h5: Path, recipe: Any, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Measure one training step of the model in ``h5`` with ``recipe``'s optimizer.

    Args:
        h5: the trained Keras model.
        recipe: its :class:`train.recipes.Recipe` (optimizer and batch size).
        images: uint8 training images, at least one (the first ``recipe.batch_size`` are used).
        labels: their labels.

    Returns:
        Bytes of ``weights`` (of which ``trainable_weights``), ``gradients``,
        ``optimizer_state``, ``activations`` (layer outputs of the batch), ``quantized_kernels``,
        their ``total``, the ``batch_size`` used, and ``optimizer_variables`` (count).
    """
    import tensorflow as tf

    from convert.keras_io import load_keras_model
    from train.optim import make_optimizer

    model = load_keras_model(h5)
    batch = images[: recipe.batch_size].astype(np.float32)[..., None]
    targets = labels[: recipe.batch_size].astype(np.int64)
    optimizer = make_optimizer(recipe, steps=1000)
    layers = list(model.layers)
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers])
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        outputs = probe(batch, training=True)
        loss = loss_fn(targets, outputs[-1])
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None])
    quantized = []
    for layer in layers:
        quantizer = getattr(layer, "kernel_quantizer", None)
        kernel = getattr(layer, "kernel", None)
        if quantizer is not None and kernel is not None:
            latent = getattr(kernel, "latent_variable", kernel)
            quantized.append(quantizer(tf.convert_to_tensor(latent), training=True))
    figures = {
        "weights": tensor_bytes(model.weights),
        "trainable_weights": tensor_bytes(variables),
        "gradients": tensor_bytes(gradients),
        "optimizer_state": tensor_bytes(_optimizer_variables(optimizer)),
        "activations": tensor_bytes(outputs),
        "quantized_kernels": tensor_bytes(quantized),
    }
    figures["total"] = sum(
        figures[key] for key in ("weights", "gradients", "optimizer_state", "activations", "quantized_kernels")
    )
    figures["batch_size"] = len(batch)
    figures["optimizer_variables"] = len(_optimizer_variables(optimizer))
    return figures
