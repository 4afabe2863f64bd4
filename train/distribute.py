"""``--distribute``: train on one device, on every local device, or on several worker processes.

* ``none``: TensorFlow's default strategy (one process, one replica).
* ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the local GPUs, or over every
  logical CPU device when there is no GPU (one replica per device).
* ``multi-worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, one process per worker,
  configured by the ``TF_CONFIG`` environment variable (the cluster's ``worker`` addresses and
  this process's ``task``). The chief (``task`` ``chief``, or worker 0 when the cluster has no
  chief) writes the artifacts; the other workers train in step with it and write nothing.

:func:`read_tf_config` checks ``TF_CONFIG`` without importing TensorFlow, so a bad cluster
description is refused before anything starts. The strategy itself must be created before
TensorFlow runs its first operation (:func:`make_strategy`, called first thing by the CLI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import InputError
from pipeline.json_input import JSONDepthError, parse_json

__all__ = ["DISTRIBUTE", "Cluster", "read_tf_config", "make_strategy", "describe"]

DISTRIBUTE = ("none", "mirrored", "multi-worker")


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker cluster.

    Attributes:
        workers: processes that train (``chief`` and ``worker`` tasks).
        task_type: ``chief`` or ``worker``.
        task_index: index within ``task_type``.
        has_chief: the cluster has a ``chief`` task (else worker 0 is the chief).
    """

    workers: int
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """True for the process that writes the artifacts."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0 and not self.has_chief)


def read_tf_config(environ: Mapping[str, str] | None = None) -> Cluster:
    """Parse and check ``TF_CONFIG`` for ``--distribute multi-worker``.

    Args:
        environ: the environment (default ``os.environ``).

    Returns:
        The :class:`Cluster` this process belongs to.

    Raises:
        InputError: ``TF_CONFIG`` unset, not JSON, or without a valid ``cluster`` and ``task``.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    hint = 'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not text:
        raise InputError(f"--distribute multi-worker needs TF_CONFIG describing the cluster and this task, {hint}")
    try:
        config = parse_json(text)
    except json.JSONDecodeError as err:
        raise InputError(f"TF_CONFIG is not valid JSON ({err.msg} at column {err.colno}); {hint}") from None
    except JSONDepthError as err:
        raise InputError(f"TF_CONFIG: {err}; {hint}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise InputError(f"TF_CONFIG needs a 'cluster' object and a 'task' object, {hint}")
    addresses: dict[str, Any] = {job: cluster.get(job) for job in ("chief", "worker") if job in cluster}
    if not addresses or any(not isinstance(value, list) or not value for value in addresses.values()):
        raise InputError(f"TF_CONFIG cluster needs a non-empty 'worker' (or 'chief') list of host:port, {hint}")
    if len(addresses.get("chief", [])) > 1:
        raise InputError(f"TF_CONFIG cluster has {len(addresses['chief'])} chiefs; at most one")
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in addresses:
        raise InputError(f"TF_CONFIG task type {task_type!r} is not one of the cluster's jobs ({', '.join(addresses)})")
    if not isinstance(task_index, int) or not 0 <= task_index < len(addresses[task_type]):
        raise InputError(f"TF_CONFIG task index {task_index!r} is out of range for {len(addresses[task_type])} {task_type}(s)")
    workers = sum(len(value) for value in addresses.values())
    return Cluster(workers=workers, task_type=task_type, task_index=task_index, has_chief="chief" in addresses)


def make_strategy(kind: str) -> Any:
    """The ``tf.distribute`` strategy for ``--distribute kind``.

    Call it before any other TensorFlow operation (multi-worker collectives are configured
    when the strategy is created).

    Raises:
        InputError: unknown ``kind``.
    """
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if kind == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InputError(f"--distribute {kind!r} is not one of {', '.join(DISTRIBUTE)}")


def describe(kind: str, strategy: Any, batch_size: int, cluster: Cluster | None, *, sync_bn: bool) -> dict[str, Any]:
    """What ``NAME.train.json`` records about the distribution of a run.

    Args:
        kind: the ``--distribute`` value.
        strategy: the strategy the run used.
        batch_size: the global batch (the recipe's).
        cluster: this process's cluster (``multi-worker`` only).
        sync_bn: whether batch-norm statistics were synchronized across replicas.

    Returns:
        ``strategy``, ``workers``, ``replicas``, ``global_batch``, ``per_replica_batch``, ``sync_bn``.
    """
    replicas = int(strategy.num_replicas_in_sync)
    return {
        "strategy": kind,
        "workers": cluster.workers if cluster else 1,
        "replicas": replicas,
        "global_batch": batch_size,
        "per_replica_batch": batch_size / replicas,
        "sync_bn": sync_bn,
    }
