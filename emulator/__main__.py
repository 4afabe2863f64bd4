"""``python -m emulator``: run an artifact on the test set and judge it against a budget."""

from __future__ import annotations

import sys

from emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
