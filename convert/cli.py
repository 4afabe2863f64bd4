"""Command line for the conversion stage.

``python -m convert MODEL.h5`` writes, beside the .h5 unless ``--out`` says otherwise,
``NAME.tflite`` (float32 builtins), ``NAME.int8.tflite`` (full-integer PTQ; skipped with the
reason for models with Larq binary layers), ``NAME.lce.tflite`` (Larq Compute Engine) and
``NAME.convert.json``, after running each flatbuffer on the first ``--check`` test images and
comparing it with Keras.

All conversions and checks run in memory first. Only when every check passes are the files
written, each atomically, the report last: a run that fails (exit 1 for float or LCE agreeing
with Keras on less than 99.9% of the images, exit 2 for bad input or a conversion error)
leaves OUT exactly as it was; a format that fails its check is never written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convert.report import FILE_SUFFIXES, FORMATS, MIN_AGREEMENT, FormatResult, build_report, render_table
from pipeline.artifacts import check_files_writable, check_inputs_kept, replace_files, sha256_file
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, first_line, positive_int, run_cli

if TYPE_CHECKING:
    import tensorflow as tf

    from pipeline.frontend import FrontendConfig

__all__ = ["main", "build_parser", "parse_formats", "parse_input_range"]

PROG = "python -m convert"
DEFAULT_CHECK = 1000
DEFAULT_CALIBRATION = 500


def parse_formats(text: str) -> tuple[str, ...]:
    """``"lce,float"`` -> ``("float", "lce")`` (canonical order, no duplicates).

    Raises:
        argparse.ArgumentTypeError: empty, or a name outside :data:`~convert.report.FORMATS`.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(FORMATS)}, got {text!r}")
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format {unknown[0]!r} (choose from {', '.join(FORMATS)})")
    return tuple(fmt for fmt in FORMATS if fmt in names)


def parse_input_range(text: str) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)``.

    Raises:
        argparse.ArgumentTypeError: not two finite numbers with LO < HI.
    """
    parts = text.split(",")
    try:
        lo, hi = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as -1,1 or 0,1, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise argparse.ArgumentTypeError(f"expected finite LO < HI such as -1,1 or 0,1, got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m convert`` argument parser."""
    parser = OneLineArgumentParser(
        prog=PROG,
        description=(
            "Convert a Keras/Larq .h5 to TFLite float, TFLite int8 and LCE flatbuffers, and check each "
            "against Keras on the dataset's test examples (MNIST by default; any shape from an .npz). "
            "Every written flatbuffer takes the dataset's raw values (for 8-bit images: pixels 0..255)."
        ),
        epilog=(
            f"Float and LCE must agree with Keras on >= {100 * MIN_AGREEMENT:g}% of the check images, by argmax and "
            "by scores, with no NaN or infinite score, else exit 1 and nothing is written; a score difference on an "
            "image where Keras binarizes a value within float rounding of 0 (a near tie) is excused and reported. "
            "Exit 2: bad usage or input."
        ),
    )
    parser.add_argument("model", help="Keras .h5 (from python -m train or plain Larq/Keras code)")
    parser.add_argument("--out", help="output folder (default: the .h5's folder)")
    parser.add_argument(
        "--formats",
        type=parse_formats,
        help="comma-separated subset of float,int8,lce (default: all; int8 is skipped for binary models)",
    )
    parser.add_argument(
        "--data",
        help="MNIST IDX folder; an .npz with x_test, y_test (and x_train, y_train) of any shape; an image folder "
        "(a sub-folder per class) or a .tar/.tar.gz/.tgz of one; or a .json dataset spec (images, or WAV files through "
        "the audio front end: datasets/fsdd.json) (default: $MNIST_DIR, keras cache)",
    )
    parser.add_argument(
        "--calibration",
        type=positive_int,
        help=f"training examples used to calibrate int8 (default {DEFAULT_CALIBRATION}, or all when fewer)",
    )
    parser.add_argument(
        "--check",
        type=positive_int,
        help=f"first N test examples run in each interpreter and in Keras (default {DEFAULT_CHECK}, or all when fewer)",
    )
    parser.add_argument(
        "--trust-model",
        action="store_true",
        help="load a model whose layers carry Python code (Lambda): this RUNS THAT CODE; only for models you trust",
    )
    parser.add_argument(
        "--input-range",
        type=parse_input_range,
        metavar="LO,HI",
        help="the model expects 8-bit pixels scaled to [LO,HI] (e.g. -1,1): prepend that Rescaling so flatbuffers "
        "take 0..255 (uint8 datasets only)",
    )
    return parser


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """Turn ``--input-range -1,1`` into ``--input-range=-1,1`` (argparse takes ``-1,1`` for an option)."""
    args = list(argv)
    joined: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--input-range" and i + 1 < len(args) and args[i + 1].startswith("-"):
            joined.append(f"--input-range={args[i + 1]}")
            i += 2
        else:
            joined.append(args[i])
            i += 1
    return joined


@contextlib.contextmanager
def _captured_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file (the converters' C++ logging) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _convert(fmt: str, model: tf.keras.Model, calibration: np.ndarray) -> bytes:
    from convert.converter import to_lce, to_tflite_float, to_tflite_int8

    if fmt == "float":
        return to_tflite_float(model)
    if fmt == "int8":
        return to_tflite_int8(model, calibration)
    return to_lce(model)


def _run_format(
    fmt: str,
    model: tf.keras.Model,
    *,
    path: Path,
    calibration: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    keras_scores: np.ndarray,
    near_ties: np.ndarray,
    frontend: FrontendConfig | None = None,
) -> FormatResult:
    """Convert ``model`` to ``fmt`` in memory and check it against Keras (``near_ties``: the
    check images whose score differences are excused, :mod:`convert.near_ties`). With
    ``frontend`` (an audio dataset's), the flatbuffer carries it as metadata
    (:func:`convert.metadata.embed_frontend`) and the check runs on those very bytes."""
    import numpy as np

    from convert.flatbuffer import read_model_bytes
    from convert.metadata import FRONTEND_METADATA, embed_frontend
    from convert.report import accuracy, agreement, excused_rows, nonfinite_rows, score_agreement
    from pipeline.interpreters import run_lce, run_tflite

    start = time.perf_counter()
    try:
        with _captured_stderr():
            data = _convert(fmt, model, calibration)
    except Exception as err:  # the converters raise many types (ConverterError, ValueError, ...)
        raise InputError(f"{fmt} conversion failed: {first_line(err)}") from None
    if frontend is not None:
        data = embed_frontend(data, frontend)
    seconds = time.perf_counter() - start
    parsed = read_model_bytes(data, path.name)
    if parsed.frontend != frontend:
        raise CheckError(f"{fmt}: the flatbuffer reads back front end {parsed.frontend} from {FRONTEND_METADATA}, not {frontend}")
    runner = run_lce if fmt == "lce" else run_tflite
    with _captured_stderr():  # TFLite announces its XNNPACK delegate on stderr
        scores = runner(data, images)
    return FormatResult(
        format=fmt,
        path=str(path),
        data=data,
        ops=parsed.op_names,
        input_type=parsed.tensors[parsed.inputs[0]].dtype,
        output_type=parsed.tensors[parsed.outputs[0]].dtype,
        agreement=agreement(scores, keras_scores),
        score_agreement=score_agreement(scores, keras_scores, excused=near_ties),
        near_ties=int(near_ties.sum()),
        excused=int(np.count_nonzero(excused_rows(scores, keras_scores, near_ties))),
        nonfinite=int(nonfinite_rows(np.concatenate([scores, keras_scores], axis=1))),
        accuracy=accuracy(scores, labels),
        images=len(images),
        seconds=seconds,
        frontend_sha256=parsed.frontend.sha256() if parsed.frontend is not None else None,
    )


def _convert_main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    from convert.keras_io import check_h5_file

    source = check_h5_file(args.model)
    out = Path(args.out) if args.out else source.parent
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    formats = args.formats or FORMATS
    name = source.name[: -len(source.suffix)] if source.suffix else source.name
    outputs = [out / f"{name}{FILE_SUFFIXES[fmt]}" for fmt in formats] + [out / f"{name}.convert.json"]
    check_inputs_kept([source, args.data], files=outputs)
    check_files_writable(outputs)

    from pipeline.data import load_dataset

    data = load_dataset(args.data)
    if args.check is None:  # the defaults take what a small dataset has; a number asked for must exist
        args.check = min(DEFAULT_CHECK, len(data.x_test))
    if args.calibration is None:
        args.calibration = min(DEFAULT_CALIBRATION, len(data.x_train)) or DEFAULT_CALIBRATION
    if args.check > len(data.x_test):
        raise InputError(f"--check {args.check} exceeds the {len(data.x_test)} test examples")
    if args.input_range is not None and data.dtype != np.uint8:
        raise InputError(
            f"--input-range maps raw 8-bit values 0..255 but the dataset's examples are {data.dtype}; "
            "drop it (the flatbuffers then take the values as they are)"
        )
    images, labels = data.x_test[: args.check], data.y_test[: args.check]
    frontend = None
    if data.frontend is not None:
        from pipeline.frontend import FrontendConfig

        frontend = FrontendConfig.from_json(data.frontend)

    from convert.converter import binary_layer_names
    from convert.keras_io import check_image_model, load_keras_model, with_input_range
    from convert.near_ties import near_tie_rows, scaled_inputs
    from convert.report import GATED_FORMATS, accuracy
    from pipeline.interpreters import run_keras

    model = base = load_keras_model(source, trust_model=args.trust_model)
    check_image_model(model, source.name, data.example_shape, data.num_classes)
    if args.input_range is not None:
        model = with_input_range(model, *args.input_range)
    binary = binary_layer_names(model)
    if "int8" in formats and not binary and args.calibration > len(data.x_train):
        if len(data.x_train) == 0:
            raise InputError(
                f"{data.source}: no training examples (x_train, y_train) to calibrate int8 on; "
                "add them or pass --formats float,lce"
            )
        raise InputError(f"--calibration {args.calibration} exceeds the {len(data.x_train)} training examples")
    calibration = data.x_train[: args.calibration]
    keras_scores = run_keras(model, images)
    near_ties = np.zeros(len(images), bool)
    if set(formats) & GATED_FORMATS:
        # the model as loaded (its layers at the top level) on the values the input range gives it
        near_ties = near_tie_rows(base, scaled_inputs(images, args.input_range))

    results = []
    for fmt in formats:
        if fmt == "int8" and binary:
            reason = (
                f"model has {len(binary)} Larq binary layers ({', '.join(binary[:3])}{', ...' if len(binary) > 3 else ''}); "
                "full-integer PTQ would not keep them binary, its deployable form is the lce flatbuffer"
            )
            results.append(FormatResult(format=fmt, skipped=reason))
            continue
        results.append(
            _run_format(
                fmt,
                model,
                path=out / f"{name}{FILE_SUFFIXES[fmt]}",
                calibration=calibration,
                images=images,
                labels=labels,
                keras_scores=keras_scores,
                near_ties=near_ties,
                frontend=frontend,
            )
        )

    report = build_report(
        name=name,
        source=str(source),
        source_sha256=sha256_file(source),
        input_range=args.input_range,
        binary_layers=binary,
        keras_accuracy=accuracy(keras_scores, labels),
        images=len(images),
        calibration_images=len(calibration) if "int8" in formats and not binary else 0,
        data_source=data.source,
        data_shape=data.describe(),
        results=results,
        frontend=frontend,
    )
    print(render_table(report))
    failed = [result for result in results if not result.passed]
    if failed:
        detail = "; ".join(r.failure() for r in failed)
        raise CheckError(f"{detail} of {len(images)} test images (needs >= {100 * MIN_AGREEMENT:g}%); nothing written to {out}")
    _write_all(out / f"{name}.convert.json", report, [r for r in results if r.skipped is None])
    print(f"wrote {', '.join(Path(r.path).name for r in results if r.path)} and {name}.convert.json -> {out}/")
    return 0


def _write_all(report_path: Path, report: dict, results: list[FormatResult]) -> None:
    """Write every flatbuffer and then the report, all or none (:func:`pipeline.artifacts.replace_files`)."""
    files = {Path(result.path): result.data for result in results}
    files[report_path] = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8")
    replace_files(files)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m convert``; returns the exit status."""
    return run_cli(PROG, _convert_main, argv)
