"""Conversion stage: Keras .h5 -> TFLite float, TFLite int8 and LCE flatbuffers; flatbuffer reading."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__: list[str] = []
