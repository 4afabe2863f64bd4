"""The audio front end: raw 16-bit PCM to uint8 log-mel features, one integer algorithm in two languages.

Training, convert's checks and the Keras/LCE evaluation call :func:`features` (NumPy); the
firmware runs the C that ``firmware_gen.frontend`` emits from the same :class:`FrontendConfig`
and the same integer tables. Both give identical bytes (``tests/test_frontend_c.py`` compiles the
C and compares on the host and under QEMU). The algorithm, step by step, is in
:mod:`pipeline.frontend.compute`; the tables in :mod:`pipeline.frontend.tables`; the settings
and their defaults in :mod:`pipeline.frontend.config`.
"""

from pipeline.frontend.compute import features, frame_shifts
from pipeline.frontend.config import NORMALIZE_MODES, FrontendConfig
from pipeline.frontend.tables import FrontendTables, frontend_tables

__all__ = ["NORMALIZE_MODES", "FrontendConfig", "FrontendTables", "features", "frame_shifts", "frontend_tables"]
