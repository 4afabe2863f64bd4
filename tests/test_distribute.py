"""``--distribute``: TF_CONFIG checks, two workers on localhost, mirrored over two virtual CPUs.

The training runs are tiny (a few hundred images, one epoch); what they check is the
machinery: both workers finish, the chief alone writes, both end with the same weights, and a
model trained under a strategy reloads as a plain Keras model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, python_m, run_module, stderr_lines

from pipeline.errors import InputError
from train.distribute import read_tf_config

LIMIT = "600"
CLUSTER = {"worker": ["localhost:1111", "localhost:2222"]}


def _config(task_type: str = "worker", index: int = 0, cluster: dict | None = None) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster or CLUSTER, "task": {"type": task_type, "index": index}})}


# --- TF_CONFIG ------------------------------------------------------------------------------


def test_worker_zero_is_the_chief_without_a_chief_task():
    first, second = read_tf_config(_config(index=0)), read_tf_config(_config(index=1))
    assert (first.workers, first.is_chief, second.is_chief) == (2, True, False)


def test_a_chief_task_is_the_chief():
    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2"]}
    assert read_tf_config(_config("chief", 0, cluster)).is_chief
    worker = read_tf_config(_config("worker", 0, cluster))
    assert not worker.is_chief and worker.workers == 2


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "needs TF_CONFIG"),
        ({"TF_CONFIG": "{cluster"}, "not valid JSON"),
        ({"TF_CONFIG": json.dumps({"cluster": CLUSTER})}, "'task' object"),
        ({"TF_CONFIG": json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}})}, "'worker'"),
        (_config(index=2), "index 2 is out of range for 2 worker"),
        (_config(task_type="evaluator"), "'evaluator' is not one of"),
    ],
)
def test_bad_tf_config_is_refused(environ, message):
    with pytest.raises(InputError, match=message):
        read_tf_config(environ)


def test_cli_refuses_multi_worker_without_tf_config(tmp_path, mnist_path):
    out = tmp_path / "out"
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run(
        [*python_m("train"), "--model", "bcnn", "--distribute", "multi-worker", "--data", str(mnist_path), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2 and not out.exists()
    lines = stderr_lines(result)
    assert len(lines) == 1 and "needs TF_CONFIG" in lines[0], lines


def test_cli_refuses_sync_bn_without_a_strategy(tmp_path):
    result = run_module("train", "--model", "bcnn", "--sync-bn", "--out", tmp_path / "out")
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert stderr_lines(result) == ["python -m train: error: --sync-bn needs --distribute mirrored or multi-worker"]


# --- two workers on this machine ------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _weights_digest(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("weights sha256 ")]
    assert len(lines) == 1, stdout[-2000:]
    return lines[0].split()[-1]


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_writes(tmp_path, mnist_path):
    """Two processes, TF_CONFIG on two free localhost ports, one epoch on a slice."""
    addresses = [f"localhost:{port}" for port in _free_ports(2)]
    outs = [tmp_path / "chief-out", tmp_path / "worker-out"]
    processes = []
    for index, out in enumerate(outs):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        args = ["--model", "bcnn", "--recipe", "seed", "--epochs", "1", "--limit", LIMIT, "--seed", "3", "--track-test"]
        args += ["--distribute", "multi-worker", "--data", str(mnist_path), "--out", str(out)]
        processes.append(
            subprocess.Popen([*python_m("train"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail("the two workers did not finish within 10 minutes")
        results.append((process.returncode, stdout, stderr))
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]

    chief, worker = outs
    assert sorted(path.name for path in chief.iterdir()) == [
        "bcnn.confusion.png",
        "bcnn.h5",
        "bcnn.history.png",
        "bcnn.train.json",
    ]
    assert not worker.exists(), "a non-chief worker wrote into its OUT"
    assert "nothing written" in results[1][1]

    digests = [_weights_digest(stdout) for _, stdout, _ in results]
    assert digests[0] == digests[1], "the workers ended with different weights"
    report = json.loads((chief / "bcnn.train.json").read_text())
    assert report["weights_sha256"] == digests[0]
    assert report["distribute"] == {
        "strategy": "multi-worker",
        "workers": 2,
        "replicas": 2,
        "global_batch": 64,
        "per_replica_batch": 32.0,
        "sync_bn": False,
    }
    assert len(report["history"]["loss"]) == 1
    _check_reloads(chief / "bcnn.h5", digests[0])


def _check_reloads(h5: Path, digest: str) -> None:
    """The .h5 loads with plain Keras + larq in a fresh process and holds the digested weights."""
    script = textwrap.dedent(
        f"""
        import larq, tensorflow as tf
        from train.trainer import weights_sha256
        model = tf.keras.models.load_model({str(h5)!r})
        print(type(model).__name__, model.count_params(), weights_sha256(model))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["Sequential", "93790", digest]


# --- mirrored over two virtual CPU devices --------------------------------------------------


@pytest.mark.slow
def test_mirrored_on_two_virtual_cpus_trains_and_reloads(tmp_path, mnist_path):
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        import train
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from train.cli import main
        sys.exit(main(["--model", "bcnn", "--recipe", "seed", "--epochs", "1", "--limit", "{LIMIT}", "--sync-bn",
                       "--distribute", "mirrored", "--data", {str(mnist_path)!r}, "--out", {str(out)!r}, "--quiet"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "bcnn.train.json").read_text())
    assert report["distribute"]["replicas"] == 2 and report["distribute"]["per_replica_batch"] == 32.0
    assert report["distribute"]["sync_bn"] is True
    _check_reloads(out / "bcnn.h5", _weights_digest(result.stdout))
