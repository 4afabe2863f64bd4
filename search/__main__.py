"""``python -m search``: search binarized architectures for the most accurate model that fits a board."""

from __future__ import annotations

import sys

from search.cli import main

if __name__ == "__main__":
    sys.exit(main())
