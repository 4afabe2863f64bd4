"""``python -m bench``: benchmark every model and engine in one run."""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
