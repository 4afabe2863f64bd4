"""``python -m study.baseline MODEL... [--data DIR]``: prepare to train, train nothing, exit.

The study measures this process's peak RSS as the baseline of every training process: it
imports what ``python -m train`` imports (TensorFlow, Larq, the trainer and the zoo), loads
MNIST and builds each model, so ``training peak RSS - baseline`` is what training itself adds.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.errors import InputError, OneLineArgumentParser, run_cli

__all__ = ["main"]


def _body(argv: Sequence[str] | None) -> int:
    parser = OneLineArgumentParser(prog="python -m study.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="zoo models to build")
    parser.add_argument("--data", help="MNIST folder or mnist.npz (default: $MNIST_DIR, keras cache)")
    args = parser.parse_args(argv)
    from pipeline.data import load_mnist

    load_mnist(args.data)
    import train.trainer  # noqa: F401  (what python -m train imports before its first step)
    from train.models import ZOO, build_model

    unknown = [name for name in args.models if name not in ZOO]
    if unknown:
        raise InputError(f"unknown model {unknown[0]!r} (the zoo has {', '.join(ZOO)})")
    for name in args.models:
        build_model(name)  # MNIST's shape and classes, as the study trains them
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return run_cli("python -m study.baseline", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
