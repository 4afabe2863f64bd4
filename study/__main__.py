"""``python -m study``: Keras .h5 -> TFLite float, TFLite int8 and LCE flatbuffers, checked against Keras."""

from __future__ import annotations

import sys

from study.cli import main

if __name__ == "__main__":
    sys.exit(main())
