"""Fuzzing every consumer of a flatbuffer with mutants of real ones (used by test_fuzz.py and ``make fuzz``).

Seeds are real flatbuffers: three small models (a binary CNN as an LCE flatbuffer, a float CNN
as float and int8 TFLite) built with fixed weights and converted by :mod:`convert.converter`
itself, plus any ``.tflite`` given with ``--seeds``. Each mutant (fixed seed: the same run
gives the same mutants) is one of: random bytes, an aligned int32 set to a boundary value,
a cut or extended file, or one schema field (an index, a dimension, a type, a quantization, a
constant, an op code, an option, the version, the operator order) set to a hostile value and
packed again. Every mutant goes through, in order:

1. the reader (:func:`convert.flatbuffer.read_model_bytes`);
2. the emulator's loading: :func:`emulator.backends.load_artifact`, the backend choice, the
   RAM figure (:func:`emulator.backends.flatbuffer_ram`: TFLite-Micro's arena, in a child
   process, or the planner), the planner (:func:`emulator.planner.plan_memory`) and the layer
   table (:func:`emulator.layers.layer_table`);
3. both engines: each engine's reference interpreter (TFLite for ``tflm``, LCE for ``bnn``, in
   a child) and then its generation (``tflm``: model_data, main.cc and the arena measured by
   TFLite-Micro in a child; ``bnn``: the C and the bare-metal project; no compiler runs);
4. for every mutant the reader accepted but a reference interpreter refused:
   ``python -m firmware_gen`` itself (in-process), which must exit non-zero and write nothing.

Every step must either work or raise :class:`~pipeline.errors.InputError`. Anything else is a
failure: another exception (a traceback), an in-process step running over its time limit (a
hang), a native crash that is not turned into one line (the test process would die), or a
firmware folder written for a refused model. Failing mutants are saved with their stage and
message. Native crashes and hangs inside the child are contained by design and counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPECIAL_INTS = (-(2**31), -65536, -1000, -2, -1, 0, 1, 2, 3, 4, 7, 8, 31, 32, 255, 256, 1000, 65535, 2**31 - 1)
SPECIAL_FLOATS = (float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e38, -1e38, 1e-45, 3.0)
STEP_LIMIT = 60.0
"""Seconds one in-process step may take before it counts as a hang."""


@dataclass
class Counts:
    """What a campaign saw. ``failures`` lists the mutants that broke a rule, ``contained`` (the first 50)
    those on which a native interpreter crashed or hung in its child; both are saved to disk."""

    mutants: int = 0
    duplicates: int = 0
    reader_refused: int = 0
    reader_accepted: int = 0
    reference_refused: int = 0
    generated: dict[str, int] = field(default_factory=lambda: {"tflm": 0, "bnn": 0})
    refused_later: int = 0
    native_crashes_contained: int = 0
    child_hangs_contained: int = 0
    firmware_cli_runs: int = 0
    firmware_for_refused: int = 0
    tracebacks: int = 0
    hangs: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    contained: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Mutants that broke a rule."""
        return self.tracebacks + self.hangs + self.firmware_for_refused

    def summary(self) -> str:
        """One line with every count."""
        return (
            f"{self.mutants:,} mutants ({self.duplicates:,} duplicates skipped): reader refused {self.reader_refused:,}, "
            f"accepted {self.reader_accepted:,}; reference interpreters refused {self.reference_refused:,}; "
            f"generated tflm {self.generated['tflm']:,}, bnn {self.generated['bnn']:,}; later refusals "
            f"{self.refused_later:,}; native crashes contained {self.native_crashes_contained:,}, child hangs contained "
            f"{self.child_hangs_contained:,}; firmware_gen CLI runs on refused models {self.firmware_cli_runs:,}, "
            f"firmware written for refused models {self.firmware_for_refused}; tracebacks {self.tracebacks}, "
            f"hangs {self.hangs}, crashes 0; {self.seconds:.0f} s"
        )


class _Hang(Exception):  # noqa: N818  (a signal, not an error type users see)
    """An in-process step ran over :data:`STEP_LIMIT`."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- seeds ---------------------------------------------------------------------------------


def build_seeds(random_seed: int = 7) -> dict[str, bytes]:
    """Three small real flatbuffers with fixed weights: ``bcnn.lce`` (LCE), ``cnn`` (float), ``cnn.int8``.

    The binary CNN is the zoo's bcnn with fewer filters (8, 16, 16, dense 64), built by the
    architecture search's builder (the bnn engine compiles it); the float CNN has a conv, a pool
    and a dense layer. Batch norms get random statistics so their MUL/ADD survive conversion.
    int8 is calibrated on random images (no dataset needed).
    """
    import tensorflow as tf

    from convert.converter import to_lce, to_tflite_float, to_tflite_int8
    from search.builder import build_model
    from search.space import Arch, Conv

    tf.keras.utils.set_random_seed(random_seed)
    rng = np.random.default_rng(random_seed)
    bcnn = build_model(Arch(Conv(8, 3, pool=True), (Conv(16, 3, pool=True), Conv(16, 3)), dense=(64,)), name="fuzz_bcnn")
    for layer in bcnn.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 0.5, beta.shape).astype(np.float32),
                    rng.normal(0, 0.5, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, variance.shape).astype(np.float32),
                ]
            )
    cnn = tf.keras.Sequential(
        [
            tf.keras.layers.Rescaling(1 / 255, input_shape=(28, 28, 1)),
            tf.keras.layers.Conv2D(4, (3, 3), activation="relu"),
            tf.keras.layers.MaxPooling2D((2, 2)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10),
            tf.keras.layers.Activation("softmax"),
        ]
    )
    calibration = rng.integers(0, 256, size=(32, 28, 28), dtype=np.uint8)
    return {"bcnn.lce": to_lce(bcnn), "cnn": to_tflite_float(cnn), "cnn.int8": to_tflite_int8(cnn, calibration)}


# --- mutators ------------------------------------------------------------------------------


def _schema() -> Any:
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def edit_model(data: bytes, edit: Callable[[Any], Any]) -> bytes:
    """``data`` unpacked with the schema's object API, changed by ``edit(model)`` in place, packed again."""
    model = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
    edit(model)
    return _pack(model)


def _special_int(rng: np.random.Generator, count: int = 0) -> int:
    options = [*SPECIAL_INTS, count - 1, count, count + 1]
    return int(options[rng.integers(len(options))])


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    damaged = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0:  # random bytes, half of the time in the tables at either end
        region = len(data) if rng.random() < 0.5 else min(4096, len(data))
        for _ in range(int(rng.integers(1, 9))):
            position = int(rng.integers(region))
            if rng.random() < 0.5:
                position = len(data) - 1 - position
            damaged[position] = int(rng.integers(256))
        return bytes(damaged), "bytes"
    if kind == 1:  # one aligned int32 set to a boundary value
        position = 4 * int(rng.integers(len(data) // 4))
        damaged[position : position + 4] = (_special_int(rng) & 0xFFFFFFFF).to_bytes(4, "little")
        return bytes(damaged), "int32"
    if kind == 2:
        return bytes(damaged[: int(rng.integers(len(data)))]), "truncate"
    return bytes(damaged) + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes(), "extend"


def _set_index_list(values: Any, rng: np.random.Generator, count: int) -> Any:
    array = np.array(values if values is not None else [0], dtype=np.int64)
    if len(array) == 0:
        array = np.zeros(1, np.int64)
    array[int(rng.integers(len(array)))] = _special_int(rng, count)
    return np.clip(array, -(2**31), 2**31 - 1).astype(np.int32)


def _mutate_constant(model: Any, graph: Any, rng: np.random.Generator) -> str:
    constants = [t for t in graph.tensors if 0 < t.buffer < len(model.buffers) and model.buffers[t.buffer].data is not None]
    if not constants:
        return "no-constant"
    tensor = constants[int(rng.integers(len(constants)))]
    buffer = model.buffers[tensor.buffer]
    raw = np.array(buffer.data, dtype=np.uint8)
    if tensor.type == 0 and len(raw) >= 4:  # FLOAT32: plant hostile floats
        values = raw[: len(raw) // 4 * 4].view(np.float32).copy()
        for _ in range(int(rng.integers(1, 4))):
            values[int(rng.integers(len(values)))] = SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        return "float-constant"
    if rng.random() < 0.3:
        buffer.data = raw[: int(rng.integers(len(raw) + 1))]
        return "constant-length"
    if len(raw):
        raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
    buffer.data = raw
    return "int-constant"


def _mutate_field(template: Any, rng: np.random.Generator) -> tuple[bytes, str]:
    model = copy.deepcopy(template)
    graph = model.subgraphs[0]
    count = len(graph.tensors)
    tensor = graph.tensors[int(rng.integers(count))]
    op = graph.operators[int(rng.integers(len(graph.operators)))]
    choice = int(rng.integers(16))
    what = ""
    if choice == 0:
        graph.inputs = _set_index_list(graph.inputs, rng, count)
        what = "graph-input"
    elif choice == 1:
        graph.outputs = _set_index_list(graph.outputs, rng, count)
        what = "graph-output"
    elif choice == 2:
        op.inputs = _set_index_list(op.inputs, rng, count)
        what = "op-input"
    elif choice == 3:
        op.outputs = _set_index_list(op.outputs, rng, count)
        what = "op-output"
    elif choice == 4:
        op.opcodeIndex = int(np.clip(_special_int(rng, len(model.operatorCodes)), 0, 2**32 - 1))
        what = "opcode-index"
    elif choice == 5:
        tensor.shape = _set_index_list(tensor.shape if tensor.shape is not None and len(tensor.shape) else [1], rng, 64)
        what = "shape"
    elif choice == 6:
        tensor.type = int(rng.integers(0, 24))
        what = "type"
    elif choice == 7:
        tensor.buffer = int(np.clip(_special_int(rng, len(model.buffers)), 0, 2**32 - 1))
        what = "buffer-index"
    elif choice == 8:
        schema = _schema()
        quant = tensor.quantization or schema.QuantizationParametersT()
        pick = int(rng.integers(4))
        if pick == 0:
            quant.scale = np.array([SPECIAL_FLOATS[int(rng.integers(len(SPECIAL_FLOATS)))]], np.float32)
        elif pick == 1:
            quant.zeroPoint = None if rng.random() < 0.5 else np.array([_special_int(rng)], np.int64)
        elif pick == 2:
            quant.quantizedDimension = _special_int(rng, 4)
        else:
            quant.scale = np.ones(int(rng.integers(2, 5)), np.float32)
        tensor.quantization = quant
        what = "quantization"
    elif choice in (9, 10):
        what = _mutate_constant(model, graph, rng)
    elif choice == 11:
        code = model.operatorCodes[int(rng.integers(len(model.operatorCodes)))]
        if rng.random() < 0.7:
            code.builtinCode = int(rng.integers(0, 210))
            code.deprecatedBuiltinCode = int(min(code.builtinCode, 127))
        else:
            code.customCode = bytes(rng.integers(0, 256, int(rng.integers(0, 12)), dtype=np.uint8))
        what = "opcode"
    elif choice == 12:
        options = op.builtinOptions
        names = [k for k, v in vars(options).items() if isinstance(v, (int, float))] if options is not None else []
        if names:
            setattr(options, names[int(rng.integers(len(names)))], _special_int(rng))
            what = "builtin-option"
        elif op.customOptions is not None and len(op.customOptions):
            raw = np.array(op.customOptions, dtype=np.uint8)
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
            op.customOptions = raw
            what = "custom-option"
        else:
            what = "no-option"
    elif choice == 13:
        model.version = _special_int(rng)
        model.version = int(np.clip(model.version, 0, 2**32 - 1))
        what = "version"
    elif choice == 14:
        i, j = rng.integers(len(graph.operators), size=2)
        graph.operators[int(i)], graph.operators[int(j)] = graph.operators[int(j)], graph.operators[int(i)]
        what = "op-order"
    else:
        position = int(rng.integers(len(graph.operators)))
        if rng.random() < 0.5 and len(graph.operators) > 1:
            del graph.operators[position]
            what = "op-removed"
        else:
            graph.operators.insert(position, copy.deepcopy(graph.operators[position]))
            what = "op-duplicated"
    try:
        return _pack(model), what
    except Exception:  # a value the packer cannot store: fall back to damaging bytes
        return _mutate_bytes(_pack(template), rng)[0], what + "-unpackable"


def mutants(seeds: dict[str, bytes], count: int, seed: int) -> Iterator[tuple[str, bytes, str]]:
    """``count`` mutants of ``seeds``: ``(seed name, bytes, mutation kind)``, reproducible for a given ``seed``."""
    schema = _schema()
    templates = {name: schema.ModelT.InitFromPackedBuf(bytearray(data), 0) for name, data in seeds.items()}
    names = sorted(seeds)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        name = names[int(rng.integers(len(names)))]
        if rng.random() < 0.55:
            data, what = _mutate_field(templates[name], rng)
        else:
            data, what = _mutate_bytes(seeds[name], rng)
        yield name, data, what


# --- consumers ---------------------------------------------------------------------------------


class _Refused(Exception):  # noqa: N818
    """A step refused the mutant with an InputError (the expected outcome for a bad input)."""


def _consume(data: bytes, path: Path, counts: Counts, core: Any, firmware_out: Path) -> str:
    """Run every consumer on one mutant; return the last stage reached (raise on a rule broken)."""
    from convert.flatbuffer import read_model_bytes
    from emulator.backends import choose_backend, flatbuffer_ram, load_artifact
    from emulator.layers import layer_table
    from emulator.planner import plan_memory
    from firmware_gen import baremetal, bnn, tflm
    from firmware_gen.engines import check_reference
    from pipeline.errors import InputError

    def step(stage: str, call: Callable[[], Any]) -> Any:
        try:
            with _time_limit(STEP_LIMIT):
                return call()
        except InputError as err:
            if "\n" in str(err):
                raise AssertionError(f"{stage}: InputError of several lines: {err!r}") from None
            raise _Refused(stage) from None

    path.write_bytes(data)
    try:
        model = step("reader", lambda: read_model_bytes(data, str(path)))
    except _Refused:
        counts.reader_refused += 1
        return "reader"
    counts.reader_accepted += 1
    refused_by: list[str] = []
    try:
        artifact = step("emulator-load", lambda: load_artifact(path))
        step("emulator-backend", lambda: choose_backend(artifact, "auto", None))
        step("emulator-ram", lambda: flatbuffer_ram(artifact))
        step("planner", lambda: plan_memory(model))
        step("layers", lambda: layer_table(model))
    except _Refused:
        counts.refused_later += 1
    for engine in ("tflm", "bnn"):
        try:
            if engine == "tflm":
                step("tflm-resolver", lambda: tflm.resolver_ops(model))
            try:
                step(f"{engine}-reference", lambda engine=engine: check_reference(engine, model, data))
            except _Refused:
                counts.reference_refused += 1
                refused_by.append(engine)
                continue
            if engine == "tflm":
                step("tflm-generate", lambda: tflm.generate(model, core, None))
            else:

                def generate_bnn() -> None:
                    output = bnn.generate(model, core, None)
                    baremetal.generate(model, core, None, output)

                step("bnn-generate", generate_bnn)
            counts.generated[engine] += 1
        except _Refused:
            counts.refused_later += 1
    if refused_by:
        _firmware_cli(path, refused_by, counts, firmware_out)
    return "done"


def _firmware_cli(path: Path, engines: list[str], counts: Counts, out: Path) -> None:
    """``python -m firmware_gen --engine E`` for each engine whose reference interpreter refused the model: it must
    exit non-zero with one line on stderr and write nothing."""
    from firmware_gen.cli import main as firmware_gen

    for engine in engines:
        counts.firmware_cli_runs += 1
        errors = io.StringIO()
        with _time_limit(STEP_LIMIT), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            status = firmware_gen(["--target", "cortex-m4", "--engine", engine, "--model", str(path), "--out", str(out)])
        lines = [line for line in errors.getvalue().splitlines() if line.strip()]
        if out.exists():
            counts.firmware_for_refused += 1
            import shutil

            shutil.rmtree(out, ignore_errors=True)
            raise AssertionError(f"firmware_gen --engine {engine} wrote {out} (exit {status}) for a refused model")
        if status == 0 or len(lines) != 1:
            raise AssertionError(f"firmware_gen --engine {engine}: exit {status} with {len(lines)} stderr lines: {lines[:3]}")


def run_campaign(
    seeds: dict[str, bytes],
    count: int,
    seed: int,
    workdir: Path,
    *,
    log: Callable[[str], None] | None = None,
    every: int = 1000,
) -> Counts:
    """Run ``count`` mutants of ``seeds`` through every consumer; save failing mutants under ``workdir/failures``.

    Args:
        seeds: name -> flatbuffer bytes.
        count: mutants to make.
        seed: the random seed (same seed, same mutants).
        workdir: scratch folder (mutant files, failures).
        log: progress printer (one line per ``every`` mutants), or ``None``.
        every: mutants between progress lines.

    Returns:
        The :class:`Counts`.
    """
    from firmware_gen.targets import get_core
    from pipeline.isolation import default_worker

    workdir.mkdir(parents=True, exist_ok=True)
    failures = workdir / "failures"
    core = get_core("cortex-m4")
    worker = default_worker()
    counts = Counts()
    seen: set[str] = set()
    start = time.perf_counter()
    for number, (name, data, what) in enumerate(mutants(seeds, count, seed), 1):
        counts.mutants += 1
        if log is not None and number % every == 0:
            counts.native_crashes_contained, counts.child_hangs_contained = worker.crashes, worker.hangs
            log(f"fuzz: {number:,}/{count:,} mutants, {counts.failed} failing, {time.perf_counter() - start:.0f} s")
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            counts.duplicates += 1
            continue
        seen.add(digest)
        path = workdir / f"mutant.{name}.tflite"
        crashes_before = worker.crashes + worker.hangs
        try:
            _consume(data, path, counts, core, workdir / "firmware")
        except _Hang:
            counts.hangs += 1
            _record(counts, failures, number, name, what, data, "hang", f"an in-process step ran over {STEP_LIMIT:g} s")
        except Exception as err:  # the rule under test: nothing but InputError may escape a consumer
            if not isinstance(err, AssertionError) or "wrote" not in str(err):
                counts.tracebacks += 1
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            _record(counts, failures, number, name, what, data, "traceback", detail)
        if worker.crashes + worker.hangs > crashes_before and len(counts.contained) < 50:
            target = workdir / "contained" / f"{number:06d}.{name}.{what}.tflite"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            counts.contained.append(str(target))
    counts.native_crashes_contained, counts.child_hangs_contained = worker.crashes, worker.hangs
    counts.seconds = time.perf_counter() - start
    return counts


def _record(counts: Counts, folder: Path, number: int, seed_name: str, what: str, data: bytes, kind: str, detail: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{number:06d}.{seed_name}.{what}.tflite"
    target.write_bytes(data)
    entry = {"mutant": number, "seed": seed_name, "mutation": what, "kind": kind, "detail": detail, "file": str(target)}
    counts.failures.append(entry)


def main(argv: list[str] | None = None) -> int:
    """``python tests/fuzzing.py --mutants 30000``: a campaign with a report; exit 1 if any mutant broke a rule."""
    parser = argparse.ArgumentParser(description="Fuzz the flatbuffer reader and every consumer with mutants of real flatbuffers")
    parser.add_argument("--mutants", type=int, default=30000, help="mutants to run (default 30000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the mutations (default 0)")
    parser.add_argument("--seeds", type=Path, help="also mutate every .tflite in this folder")
    parser.add_argument("--out", type=Path, default=Path("artifacts/fuzz"), help="report, scratch files and failing mutants")
    args = parser.parse_args(argv)
    import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)

    seeds = build_seeds()
    if args.seeds is not None:
        for extra in sorted(args.seeds.glob("*.tflite")):
            seeds[extra.name.removesuffix(".tflite")] = extra.read_bytes()
    print(f"fuzz: seeds {', '.join(f'{k} ({len(v):,} B)' for k, v in sorted(seeds.items()))}; {args.mutants:,} mutants")
    counts = run_campaign(seeds, args.mutants, args.seed, args.out / "work", log=lambda line: print(line, flush=True))
    report = {**asdict(counts), "failed": counts.failed, "seed": args.seed, "seeds": {k: len(v) for k, v in seeds.items()}}
    (args.out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"fuzz: {counts.summary()}")
    for failure in counts.failures[:20]:
        print(f"fuzz: FAIL mutant {failure['mutant']} ({failure['seed']}, {failure['mutation']}): {failure['detail'][:300]}")
    print(f"fuzz: report {args.out / 'report.json'}")
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
