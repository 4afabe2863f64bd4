"""``python -m train``: train a zoo model on MNIST and write its artifacts."""

from __future__ import annotations

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main())
