"""The clip harness's files (firmware_gen/baremetal/protocol.py, version 3) against an independent packing.

The clips file :func:`encode_clips` writes and the results file :func:`parse_results` reads are
packed here with ``struct`` from the layout the protocol's comments state, so both sides of the
contract are checked without the C; version 2 (images) keeps decoding as before.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_gen.baremetal.protocol import (
    CALIB_LONG,
    CALIB_SHORT,
    CLIP_CHUNK_MAX,
    CLIP_FORMAT_VERSION,
    CLIP_MODES,
    CLIPS_MAGIC,
    FORMAT_VERSION,
    MAGIC_HEADER,
    MAGIC_TRAILER,
    encode_clips,
    parse_results,
)
from pipeline.errors import CheckError, InputError


def test_clips_file_layout() -> None:
    clips = [np.array([1, -2, 32767], np.int16), np.array([], np.int16), np.array([-32768, 5], np.int16)]
    data = encode_clips(clips, [3, 128], "classify")
    expected = struct.pack("<7I", CLIPS_MAGIC, CLIP_FORMAT_VERSION, 3, CLIP_MODES["classify"], 2, 3, 128)
    expected += struct.pack("<I3hxx", 3, 1, -2, 32767) + struct.pack("<I", 0) + struct.pack("<I2h", 2, -32768, 5)
    assert data == expected


@pytest.mark.parametrize(
    ("clips", "chunks", "mode", "message"),
    [
        ([np.zeros(4, np.int16)], [0], "stream", "chunk sizes"),
        ([np.zeros(4, np.int16)], [CLIP_CHUNK_MAX + 1], "stream", "chunk sizes"),
        ([np.zeros(4, np.int16)], [1] * 65, "stream", "chunk sizes"),
        ([np.zeros(4, np.int16)], [4], "loop", "clip mode"),
        ([], [4], "stream", "no clips"),
        ([np.zeros(4, np.float32)], [4], "stream", "1-D int16"),
        ([np.zeros((2, 2), np.int16)], [4], "stream", "1-D int16"),
    ],
)
def test_clips_file_refusals(clips, chunks, mode, message) -> None:
    with pytest.raises(InputError, match=message):
        encode_clips(clips, chunks, mode)


def pack_clip_results(records: list[tuple[int, int, int, int, list[int], bytes]], frames: int, channels: int) -> bytes:
    header = (MAGIC_HEADER, CLIP_FORMAT_VERSION, 16_000_000, len(records), 3, 0, 4096)
    data = struct.pack("<14I", *header, CALIB_SHORT, CALIB_LONG, 16, 32_016, 0, frames, channels)
    for label, frontend, network, pushes, scores, features in records:
        data += struct.pack("<iIII3i", label, frontend, network, pushes, *scores)
        data += features + b"\0" * (-len(features) % 4)
    return data + struct.pack("<3I", MAGIC_TRAILER, 296, 12_000)


def test_clip_results_decode_the_split_and_the_features() -> None:
    rng = np.random.default_rng(0)
    features = [rng.integers(0, 256, 5 * 3, dtype=np.uint8) for _ in range(2)]
    records = [(2, 1000, 250, 16, [-7, 3, 9], features[0].tobytes()), (0, 2**24 - 1, 1, 1, [5, -5, 0], features[1].tobytes())]
    results = parse_results(pack_clip_results(records, 5, 3), 2)
    assert results.version == CLIP_FORMAT_VERSION and results.input_bytes == 4096
    assert results.predictions.tolist() == [2, 0] and results.scores.tolist() == [[-7, 3, 9], [5, -5, 0]]
    assert results.frontend_ticks.tolist() == [1000, 2**24 - 1] and results.network_ticks.tolist() == [250, 1]
    assert results.ticks.tolist() == [1250, 2**24] and results.pushes.tolist() == [16, 1]
    np.testing.assert_array_equal(results.features, np.stack(features).reshape(2, 5, 3))
    assert (results.stack_peak_bytes, results.stack_painted_bytes) == (296, 12_000)


def test_clip_results_errors_are_explicit() -> None:
    record = (1, 1, 1, 1, [0, 0, 0], bytes(6))
    data = pack_clip_results([record, record], 2, 3)
    with pytest.raises(CheckError, match="saw 2 clips, expected 3"):
        parse_results(data, 3)
    with pytest.raises(CheckError, match="stopped early"):
        parse_results(data[:-4], 2)
    with pytest.raises(CheckError, match="stopped early"):
        parse_results(pack_clip_results([record, record], 0, 3)[:-8], 2)
    wrong = bytearray(data)
    wrong[4] = 9
    with pytest.raises(CheckError, match=f"not a version {FORMAT_VERSION} or {CLIP_FORMAT_VERSION}"):
        parse_results(bytes(wrong), 2)
