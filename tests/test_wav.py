"""pipeline.wav: mono 16-bit PCM read exactly, every other file refused in one line naming it.

Every WAV here is written by the test itself (:func:`audio_trees.wav_bytes`), so each refusal is provoked by
exactly one defect; Python's ``wave`` module writes the plain case as a cross-check.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from audio_trees import chunk, fmt_body, wav_bytes

from pipeline.errors import InputError
from pipeline.wav import EXTENSIBLE, LabelFields, fit_clip, label_fields, pattern_fields, read_wav, read_wav_file

SAMPLES = np.array([0, 1, -1, 32767, -32768, 1234, -4321], dtype=np.int16)


def test_reads_what_the_wave_module_writes() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(SAMPLES.tobytes())
    got = read_wav(buffer.getvalue(), "plain.wav", sample_rate=8000)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, SAMPLES)
    np.testing.assert_array_equal(read_wav(wav_bytes(SAMPLES), "mine.wav", sample_rate=8000), SAMPLES)


def test_extensible_pcm_and_unknown_chunks_with_odd_padding() -> None:
    odd = chunk(b"LIST", b"INFOabc")  # 7 bytes: a pad byte follows
    data = wav_bytes(SAMPLES, fmt=fmt_body(EXTENSIBLE), extra=(odd, chunk(b"fact", b"\1\0\0\0")))
    np.testing.assert_array_equal(read_wav(data, "ext.wav", sample_rate=8000), SAMPLES)
    np.testing.assert_array_equal(read_wav(wav_bytes(SAMPLES, data_first=True), "late-fmt.wav", sample_rate=8000), SAMPLES)
    # A chunk after data may be anything (even truncated): reading stops once fmt and data are found.
    np.testing.assert_array_equal(read_wav(wav_bytes(SAMPLES) + b"JUNK\xff\xff\x00\x00", "tail.wav", sample_rate=8000), SAMPLES)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"RIFX" + bytes(40), "not a RIFF/WAVE file"),
        (b"RIFF\0\0\0\0AVI " + bytes(40), "not a RIFF/WAVE file"),
        (b"RIFF", "not a RIFF/WAVE file"),
        (b"RIFF\4\0\0\0WAVE" + chunk(b"data", SAMPLES.tobytes()), "no fmt chunk"),
        (b"RIFF\4\0\0\0WAVE" + chunk(b"fmt ", fmt_body()), "no data chunk"),
        (wav_bytes(SAMPLES, fmt=fmt_body(tag=0x0002, bits=4)), r"compressed format \(format tag 0x0002\)"),
        (wav_bytes(SAMPLES, fmt=fmt_body(tag=0x0007, bits=8)), r"compressed format \(format tag 0x0007\)"),
        (wav_bytes(SAMPLES, fmt=fmt_body(tag=0x0003, bits=32)), "32-bit float samples"),
        (wav_bytes(SAMPLES, fmt=fmt_body(EXTENSIBLE, bits=32, sub=0x0003)), "32-bit float samples"),
        (wav_bytes(SAMPLES, fmt=fmt_body(EXTENSIBLE)[:-16] + b"\x01" * 16), "unknown sub-format GUID"),
        (wav_bytes(SAMPLES, fmt=fmt_body(EXTENSIBLE)[:30]), "truncated WAVE_FORMAT_EXTENSIBLE fmt chunk"),
        (wav_bytes(SAMPLES, fmt=fmt_body(channels=2)), "stereo; only mono"),
        (wav_bytes(SAMPLES, fmt=fmt_body(channels=6)), "6 channels; only mono"),
        (wav_bytes(SAMPLES, fmt=fmt_body(bits=8)), "8-bit samples; only 16-bit PCM"),
        (wav_bytes(SAMPLES, fmt=fmt_body(bits=24)), "24-bit samples; only 16-bit PCM"),
        (wav_bytes(SAMPLES, fmt=fmt_body(bits=32)), "32-bit samples; only 16-bit PCM"),
        (wav_bytes(SAMPLES, fmt=fmt_body()[:12]), r"truncated fmt chunk \(12 bytes, need 16\)"),
        (wav_bytes(SAMPLES)[:-4], "truncated data chunk: the header promises 14 bytes, the file has 10"),
        (wav_bytes(SAMPLES.tobytes()[:-1]), "not a whole number of 16-bit samples"),
        (wav_bytes(b""), r"empty clip \(no samples\)"),
        (wav_bytes(SAMPLES, fmt=fmt_body(rate=16000)), "sample rate 16000 Hz, expected 8000 Hz"),
        (wav_bytes(SAMPLES, extra=(chunk(b"LIST", b"abc", declared=99),)), "truncated 'LIST' chunk"),
    ],
)
def test_refusals_name_the_file(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        read_wav(data, "clips/7_theo_3.wav", sample_rate=8000)
    text = str(err.value)
    assert text.startswith("clips/7_theo_3.wav: ") and "\n" not in text


def test_resampling_is_deterministic_rounded_and_clipped() -> None:
    t = np.arange(1600) / 16000
    loud = np.clip(np.round(40000 * np.sin(2 * np.pi * 440 * t)), -32768, 32767).astype(np.int16)
    data = wav_bytes(loud, fmt=fmt_body(rate=16000))
    first = read_wav(data, "16k.wav", sample_rate=8000, resample=True)
    second = read_wav(data, "16k.wav", sample_rate=8000, resample=True)
    assert first.dtype == np.int16 and len(first) == 800
    np.testing.assert_array_equal(first, second)
    assert first.max() == 32767 and first.min() == -32768  # the filter's overshoot is clipped, not wrapped
    from scipy.signal import resample_poly

    expected = np.clip(np.rint(resample_poly(loud.astype(np.float64), 1, 2)), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(first, expected)
    up = read_wav(wav_bytes(SAMPLES, fmt=fmt_body(rate=4000)), "4k.wav", sample_rate=8000, resample=True)
    assert len(up) == 2 * len(SAMPLES)
    np.testing.assert_array_equal(read_wav(wav_bytes(SAMPLES), "8k.wav", sample_rate=8000, resample=True), SAMPLES)


def test_read_wav_file(tmp_path) -> None:
    path = tmp_path / "0_jackson_1.wav"
    path.write_bytes(wav_bytes(SAMPLES))
    np.testing.assert_array_equal(read_wav_file(path, sample_rate=8000), SAMPLES)
    with pytest.raises(InputError, match="missing.wav: cannot read"):
        read_wav_file(tmp_path / "missing.wav", sample_rate=8000)


def test_label_fields() -> None:
    pattern = "{label}_{speaker}_{index}.wav"
    assert label_fields(pattern, "recordings/7_jackson_32.wav") == LabelFields("7", "jackson", 32)
    assert label_fields(pattern, "3_nicolas_old_0.wav") == LabelFields("3", "nicolas_old", 0)
    assert label_fields("{label}.wav", "yes.wav") == LabelFields("yes")
    assert label_fields("{speaker}-{label}.wav", "ann-stop.wav") == LabelFields("stop", "ann", None)
    for name in ("7_jackson_x.wav", "7_jackson_1.WAV", "7jackson1.wav", "7_jackson_1.wav.bak"):
        with pytest.raises(
            InputError, match=r"file name does not match the label pattern '\{label\}_\{speaker\}_\{index\}\.wav'"
        ):
            label_fields(pattern, name)
    assert pattern_fields(pattern) == ("label", "speaker", "index") and pattern_fields("{index}-{label}.wav") == (
        "index",
        "label",
    )
    for bad, message in (
        ("{speaker}_{index}.wav", "needs a {label} field"),
        ("{label}_{take}.wav", "unknown field {take}"),
        ("{label}_{label}.wav", "appears twice"),
        ("{label}_{speaker.wav", "unbalanced braces"),
    ):
        with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
            label_fields(bad, "7_a.wav")
        with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
            pattern_fields(bad)


def test_fit_clip() -> None:
    np.testing.assert_array_equal(fit_clip(SAMPLES, 10), np.concatenate([SAMPLES, np.zeros(3, np.int16)]))
    np.testing.assert_array_equal(fit_clip(SAMPLES, 3), SAMPLES[:3])
    assert fit_clip(SAMPLES, 7) is not SAMPLES and fit_clip(SAMPLES, 7).dtype == np.int16
    with pytest.raises(InputError, match="expected 1-D int16 samples"):
        fit_clip(SAMPLES.astype(np.int32), 10)
    with pytest.raises(InputError, match="clip_samples must be a positive integer"):
        fit_clip(SAMPLES, 0)
