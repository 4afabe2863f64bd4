"""Conversion stage: Keras .h5 -> TFLite float, TFLite int8 and LCE flatbuffers; flatbuffer reading."""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
