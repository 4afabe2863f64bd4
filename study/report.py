"""``RESULTS.md`` from the study's results, and the study's claims set against what was measured.

Pure functions of the ``results.json`` dict, so the markdown can be rebuilt from the JSON.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIMS", "claims", "results_markdown", "kib"]

# What the study this project follows claimed, in its words, with the models each claim compares.
CLAIMS: tuple[dict[str, str], ...] = (
    {"id": "bc_mlp_accuracy", "claim": "binarized MLP ~94-96 % against the float MLP"},
    {"id": "mlp_training_ram", "claim": "1.7 MB (binarized MLP) against 13 MB (float MLP) of RAM in training"},
    {"id": "bc_cnn_accuracy", "claim": "binarized CNN reaching ~99 % after 40 epochs"},
    {"id": "cnn_disk", "claim": "9.6 KB (binarized CNN) against 310 KB (CNN) on disk"},
    {"id": "kmeans_pairs", "claim": "K-means confuses 2 vs 7, 4 vs 9, 1 vs 2"},
)


def kib(count: int | float | None) -> str:
    """``12,544`` -> ``"12.2 KiB"``; ``None`` -> ``"-"``; MiB from 1 MiB on."""
    if count is None:
        return "-"
    if count >= 2**20:
        return f"{count / 2**20:.1f} MiB"
    return f"{count / 1024:.1f} KiB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _setting(model: dict[str, Any]) -> str:
    recipe = model["recipe"]
    epochs = _epochs(recipe["epochs"])
    text = f"{recipe['name']}: {recipe['optimizer']} {recipe['lr']:g}, batch {recipe['batch_size']}, {epochs}"
    if recipe.get("schedule") == "exponential":
        text += ", exp. decay"
    if model.get("train_limit"):
        text += f", first {model['train_limit']:,} images"
    return text


def _deploy_bytes(model: dict[str, Any]) -> int | None:
    return (model.get("deploy") or {}).get("model_bytes")


def claims(results: dict[str, Any]) -> list[dict[str, str]]:
    """Each claim of :data:`CLAIMS` with what this run measured (models missing from the run: ``not measured``).

    Returns:
        ``[{"id", "claim", "measured", "setting"}, ...]``.
    """
    models = results["models"]
    rows = []

    def have(*names: str) -> bool:
        return all(name in models for name in names)

    for claim in CLAIMS:
        measured, setting = "not measured (model not in this run)", ""
        if claim["id"] == "bc_mlp_accuracy" and have("bc_mlp", "mlp"):
            bc, fp = models["bc_mlp"], models["mlp"]
            measured = f"bc_mlp {_pct(bc['test_accuracy'])} against mlp {_pct(fp['test_accuracy'])}"
            setting = f"bc_mlp {_setting(bc)}; mlp {_setting(fp)}"
        elif claim["id"] == "mlp_training_ram" and have("bc_mlp", "mlp"):
            bc, fp = models["bc_mlp"]["memory"], models["mlp"]["memory"]
            measured = (
                f"peak RSS of the training process: bc_mlp {kib(bc['peak_rss_bytes'])} against mlp {kib(fp['peak_rss_bytes'])} "
                f"(baseline without training {kib(results['baseline']['peak_rss_bytes'])}); tensors of one training step "
                f"(weights, gradients, optimizer state, activations, quantized kernels): bc_mlp {kib(bc['tensors']['total'])} "
                f"against mlp {kib(fp['tensors']['total'])}"
            )
            setting = f"batch {bc['tensors']['batch_size']} for both"
        elif claim["id"] == "bc_cnn_accuracy" and have("bc_cnn"):
            bc = models["bc_cnn"]
            measured = f"bc_cnn {_pct(bc['test_accuracy'])} after {_epochs(bc['recipe']['epochs'])}"
            setting = _setting(bc)
        elif claim["id"] == "cnn_disk" and have("bc_cnn", "cnn"):
            bc, fp = models["bc_cnn"], models["cnn"]
            deploy = bc.get("deploy") or {}
            form = (
                f"{deploy.get('engine')} engine, {deploy.get('model_bytes_source')}" if deploy.get("engine") else "not deployed"
            )
            measured = (
                f"bc_cnn: {kib(_deploy_bytes(bc))} deployable ({form}), {kib(bc['bytes']['lce'])} LCE flatbuffer, "
                f"{kib(bc['bytes']['h5'])} .h5; {bc['binary_weights']:,} binary weights are {kib(bc['binary_weights'] / 8)} "
                f"as bits. cnn: {kib(fp['bytes']['h5'])} .h5, {kib(fp['bytes']['float'])} float flatbuffer, "
                f"{kib(fp['bytes']['int8'])} int8 flatbuffer"
            )
        elif claim["id"] == "kmeans_pairs" and results.get("kmeans"):
            pairs = results["kmeans"]["confused_pairs"]
            measured = ", ".join(f"{p['a']} vs {p['b']} ({p['count']} test images)" for p in pairs)
            setting = f"K-means on {results['kmeans']['train_images']:,} training images"
        rows.append({"id": claim["id"], "claim": claim["claim"], "measured": measured, "setting": setting})
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _boards(deploy: dict[str, Any]) -> str:
    fits = [name for name, verdict in (deploy.get("boards") or {}).items() if verdict.get("fits")]
    return ", ".join(fits) if fits else "none"


def results_markdown(results: dict[str, Any]) -> str:
    """The study's ``RESULTS.md``: how it ran, the tables, the claims, the figures."""
    models = results["models"]
    names = [name for name in results.get("model_order", models) if name in models]
    kmeans = results.get("kmeans")
    run = results["run"]
    lines = [
        "# The comparison study: results",
        "",
        f"`{run['command']}`: {run['wall_seconds'] / 60:.1f} min wall on {run['machine'].get('cpu_count')} CPUs "
        f"({run['machine'].get('cpu') or 'unknown CPU'}; load average at the end {run['machine'].get('load_average')}), "
        f"commit {str((run['machine'].get('git') or {}).get('commit'))[:10]}, {run['date']}.",
        f"Test images: {results['test_images']:,} of MNIST's test set; seed {run['seed']}."
        + (" **Quick run: tiny slices and one epoch, the figures mean nothing.**" if run["quick"] else ""),
        "Wall times on a shared machine are inflated by other work: compare CPU seconds and the ratios.",
        "",
        "## Accuracy and size",
        "",
    ]
    header = ["model", "setting", "test accuracy", "params (binary)", ".h5", "float .tflite", "int8 .tflite", "LCE .tflite"]
    header += ["deployable form"]
    rows = []
    for name in names:
        model = models[name]
        size = model["bytes"]
        deploy = model.get("deploy") or {}
        form = (
            f"{kib(deploy.get('model_bytes'))} ({deploy.get('engine')}, {deploy.get('format')})"
            if deploy.get("engine")
            else "none"
        )
        rows.append(
            [
                f"`{name}`",
                _setting(model),
                _pct(model["test_accuracy"]),
                f"{model['params']:,} ({model['binary_weights']:,})",
                kib(size.get("h5")),
                kib(size.get("float")),
                kib(size.get("int8")),
                kib(size.get("lce")),
                form,
            ]
        )
    if kmeans:
        centroids = 10 * 784
        rows.append(
            [
                "K-means, k = 10",
                f"k-means++, {kmeans['settings']['n_init']} inits, {kmeans['train_images']:,} training images",
                f"{_pct(kmeans['test_accuracy'])} (NMI {kmeans['nmi']:.3f})",
                f"{centroids:,} centroid values (0)",
                "-",
                "-",
                "-",
                "-",
                f"{kib(centroids * 4)} (float32 centroids, not deployed)",
            ]
        )
    lines += _table(header, rows)
    lines += [
        "",
        "## Time",
        "",
        "Training: the `python -m train` process (wall and CPU). Keras: `model.predict` in batches of "
        f"{results['keras_batch']:,}, after a warm-up pass, wall time / images. Deployable engine: one image at a time "
        "(median), the bnn engine's C on the host or the TFLite-Micro interpreter.",
        "",
    ]
    rows = []
    for name in names:
        model = models[name]
        deploy = model.get("deploy") or {}
        train = model["train"]
        rows.append(
            [
                f"`{name}`",
                _num(train.get("train_seconds"), 1),
                _num(train.get("wall_seconds"), 1),
                _num(train.get("cpu_seconds"), 1),
                _num(model["keras_us_per_image"], 1),
                f"{_num(deploy.get('latency_us_median'), 1)} ({deploy.get('engine') or 'not deployed'})",
                _pct(deploy.get("accuracy")),
                _pct(deploy.get("agreement_keras")),
                "reused" if train.get("reused") else "trained",
            ]
        )
    if kmeans:
        rows.append(["K-means", _num(kmeans["seconds"], 1), "-", "-", "-", "-", "-", "-", "this run"])
    header = ["model", "fit s", "process wall s", "process CPU s", "Keras µs/image (batched)", "engine µs/image (one at a time)"]
    header += ["engine accuracy", "engine = Keras", "this run"]
    lines += _table(header, rows)
    lines += [
        "",
        "## Training memory",
        "",
        f"Peak RSS of the training process (`ru_maxrss`); baseline: a process that imports what training imports, "
        f"loads MNIST and builds the models, and trains nothing: {kib(results['baseline']['peak_rss_bytes'])}. "
        "Tensors: measured from the tensors of one training step at the recipe's batch size (weights, gradients, "
        "optimizer variables, every layer's output, the binary layers' quantized kernels). A model whose "
        "scaling and activation are layers of their own (`bc_mlp`, `bc_cnn`) counts their outputs too.",
        "",
    ]
    rows = []
    for name in names:
        memory = models[name]["memory"]
        tensors = memory["tensors"]
        rows.append(
            [
                f"`{name}`",
                kib(memory["peak_rss_bytes"]),
                kib(memory["peak_rss_bytes"] - results["baseline"]["peak_rss_bytes"]),
                kib(tensors["weights"]),
                kib(tensors["gradients"]),
                kib(tensors["optimizer_state"]),
                f"{kib(tensors['activations'])} (batch {tensors['batch_size']})",
                kib(tensors["quantized_kernels"]),
                kib(tensors["total"]),
            ]
        )
    header = ["model", "peak RSS", "over baseline", "weights", "gradients", "optimizer state", "activations"]
    header += ["quantized kernels", "tensors total"]
    lines += _table(header, rows)
    lines += ["", "## Deployment (Cortex-M4 target)", ""]
    rows = []
    for name in names:
        deploy = models[name].get("deploy") or {}
        refusals = "; ".join(f"{engine}: {line}" for engine, line in (deploy.get("refusals") or {}).items()) or "-"
        rows.append(
            [
                f"`{name}`",
                f"{deploy.get('engine') or 'none'}" + (f" ({deploy.get('format')})" if deploy.get("engine") else ""),
                refusals.replace("|", "\\|"),
                _num(deploy.get("flash_bytes")),
                _num(deploy.get("ram_bytes")),
                _boards(deploy),
            ]
        )
    lines += _table(["model", "engine", "refused by", "flash bytes", "RAM bytes", "boards it fits"], rows)
    lines += [
        "",
        "Flash and RAM: the bnn engine's deployable part linked for the core (code, packed weights, static buffers, "
        "deepest stack); TFLite-Micro: the flatbuffer and the measured arena, its library code not counted.",
        "",
        "## The study's claims, measured",
        "",
    ]
    rows = [[row["claim"], row["measured"], row["setting"] or "-"] for row in results["claims"]]
    lines += _table(["the study claimed", "this project measured", "setting"], rows)
    if kmeans:
        lines += [
            "",
            "## K-means as a classifier",
            "",
            f"Fitted on {kmeans['train_images']:,} training images (pixels / 255), clusters matched to digits by the "
            f"assignment that labels the most training images correctly: train accuracy {_pct(kmeans['train_accuracy'])}, "
            f"test accuracy {_pct(kmeans['test_accuracy'])}, NMI {kmeans['nmi']:.3f} on the test images. Most confused "
            "pairs (test images, both directions): "
            + ", ".join(f"{p['a']} vs {p['b']}: {p['count']} ({p['a_as_b']} + {p['b_as_a']})" for p in kmeans["confused_pairs"])
            + ".",
        ]
    lines += ["", "## Figures", ""]
    lines += [f"- [{title}]({path})" for path, title in results["figures"].items()]
    return "\n".join(lines) + "\n"
