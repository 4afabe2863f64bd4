"""``python -m emulator.model_report ARTIFACTS_DIR``: one self-contained HTML report per model."""

from __future__ import annotations

import sys

from emulator.model_report.cli import main

if __name__ == "__main__":
    sys.exit(main())
