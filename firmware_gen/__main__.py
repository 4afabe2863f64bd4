"""``python -m firmware_gen``: generate Cortex-M firmware sources for a flatbuffer."""

from __future__ import annotations

import sys

from firmware_gen.cli import main

if __name__ == "__main__":
    sys.exit(main())
