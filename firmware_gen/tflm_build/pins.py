"""The TFLite-Micro revision this project builds, and the third-party revisions it pins.

One table, :data:`PINS`: TFLite-Micro 90b983c2 and exactly the revisions its download scripts
fetch (``tensorflow/lite/micro/tools/make/*_download.sh``, ``ext_libs/cmsis*_download.sh`` and
``third_party_downloads.inc`` at that commit). Every pin is a full commit id: for the two
that TFLite-Micro names by tag (flatbuffers ``v25.9.23``, kissfft ``v130``) it is the commit the
tag points at, read from the ``git archive`` header of the vendor archives (``git archive``
writes the commit id into the tar's pax header). :mod:`firmware_gen.tflm_build.sources` checks
archives and git checkouts against these ids.

Not pinned: ``Cortex_DFP`` (TFLite-Micro's CMSIS script downloads it for the device header
``ARMCMx.h`` of its ``cortex_m_generic`` target). The vendor folder does not hold it; the
build writes a small device header of its own instead (:mod:`firmware_gen.tflm_build.target`).
``pigweed`` (only TFLite-Micro's own tests use it) is left as an empty folder, which stops its
download script.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pin", "PINS", "TFLM", "DOWNLOADS", "PIGWEED", "pin", "tflm_short"]

DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
"""Where TFLite-Micro's makefile looks for its third-party trees (relative to the tree)."""

PIGWEED = f"{DOWNLOADS}/pigweed"


@dataclass(frozen=True)
class Pin:
    """One source tree at one revision.

    Attributes:
        name: short name (``tflite-micro``, ``flatbuffers``, ...).
        repository: the public git repository.
        revision: the full commit id (40 hex digits).
        ref: how TFLite-Micro's scripts name the revision (a tag or the commit id).
        archive: file name of the ``git archive`` snapshot in the vendor folder; its single top
            folder is the archive name without ``.tar.xz``.
        dest: where the tree goes, relative to the TFLite-Micro tree (``""``: the tree itself).
        patch: a patch inside the TFLite-Micro tree that its download script applies, or ``None``.
        drop_build_files: remove Bazel ``BUILD``/``BUILD.bazel`` files, as the download script does.
    """

    name: str
    repository: str
    revision: str
    ref: str
    archive: str
    dest: str
    patch: str | None = None
    drop_build_files: bool = False

    @property
    def top_folder(self) -> str:
        """The archive's top folder (``flatbuffers-25.9.23``)."""
        return self.archive.removesuffix(".tar.xz")


TFLM = Pin(
    "tflite-micro",
    "https://github.com/tensorflow/tflite-micro",
    "90b983c2b3f1480642e040bbd2ddb37b998f3424",
    "90b983c2b3f1480642e040bbd2ddb37b998f3424",
    "tflite-micro-90b983c2.tar.xz",
    "",
)

PINS: tuple[Pin, ...] = (
    TFLM,
    Pin(
        "flatbuffers",
        "https://github.com/google/flatbuffers",
        "187240970746d00bbd26b0f5873ed54d2477f9f3",
        "v25.9.23",
        "flatbuffers-25.9.23.tar.xz",
        f"{DOWNLOADS}/flatbuffers",
        patch="tensorflow/lite/micro/tools/make/flatbuffers.patch",
        drop_build_files=True,
    ),
    Pin(
        "gemmlowp",
        "https://github.com/google/gemmlowp",
        "719139ce755a0f31cbf1c37f7f98adcc7fc9f425",
        "719139ce755a0f31cbf1c37f7f98adcc7fc9f425",
        "gemmlowp-719139ce.tar.xz",
        f"{DOWNLOADS}/gemmlowp",
    ),
    Pin(
        "ruy",
        "https://github.com/google/ruy",
        "d37128311b445e758136b8602d1bbd2a755e115d",
        "d37128311b445e758136b8602d1bbd2a755e115d",
        "ruy-d3712831.tar.xz",
        f"{DOWNLOADS}/ruy",
    ),
    Pin(
        "kissfft",
        "https://github.com/mborgerding/kissfft",
        "918336beac80868ad3011cb283063bb224e3e5da",
        "v130",
        "kissfft-130.tar.xz",
        f"{DOWNLOADS}/kissfft",
        patch="third_party/kissfft/kissfft.patch",
    ),
    Pin(
        "CMSIS_6",
        "https://github.com/ARM-software/CMSIS_6",
        "5782d6f8057906d360f4b95ec08a2354afe5c9b9",
        "5782d6f8057906d360f4b95ec08a2354afe5c9b9",
        "CMSIS_6-5782d6f8.tar.xz",
        f"{DOWNLOADS}/cmsis",
    ),
    Pin(
        "CMSIS-NN",
        "https://github.com/ARM-software/CMSIS-NN",
        "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae",
        "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae",
        "CMSIS-NN-4ab83cc3.tar.xz",
        f"{DOWNLOADS}/cmsis_nn",
    ),
)


def pin(name: str) -> Pin:
    """The pin named ``name``.

    Raises:
        KeyError: no such pin.
    """
    for entry in PINS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def tflm_short(pins: tuple[Pin, ...] = PINS) -> str:
    """``tflite-micro-90b983c2``: the TFLite-Micro revision in a folder name."""
    tflm = next(entry for entry in pins if entry.dest == "")
    return f"tflite-micro-{tflm.revision[:8]}"
