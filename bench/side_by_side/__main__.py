"""``python -m bench.side_by_side``: flatbuffers side by side on emulated Cortex-M cores."""

from __future__ import annotations

import sys

from bench.side_by_side.cli import main

if __name__ == "__main__":
    sys.exit(main())
