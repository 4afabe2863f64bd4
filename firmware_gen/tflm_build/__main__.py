"""``python -m firmware_gen.tflm_build``: build real TFLite-Micro for a Cortex-M core."""

from __future__ import annotations

import sys

from firmware_gen.tflm_build.cli import main

if __name__ == "__main__":
    sys.exit(main())
