#!/usr/bin/env bash
# prepare_tflm.sh DEST: lays out a TFLite-Micro tree in DEST with the third-party sources its
# makefile would otherwise download (tensorflow/lite/micro/tools/make/downloads/), taken from
# local git repositories (clones or bare mirrors) instead of the network:
#
#   downloads/flatbuffers  FLATBUFFERS_GIT @ FLATBUFFERS_REV, BUILD files removed, flatbuffers.patch
#   downloads/gemmlowp     GEMMLOWP_GIT @ GEMMLOWP_REV
#   downloads/ruy          RUY_GIT @ RUY_REV
#   downloads/kissfft      KISSFFT_GIT @ KISSFFT_REV, third_party/kissfft/kissfft.patch
#   downloads/pigweed      left empty: stops the makefile's git clone (only its tests need it)
#
# The revisions are the ones TFLite-Micro's download scripts pin at TFLM_REV. DEST may already
# hold a TFLite-Micro checkout (it is used as is) or not exist (TFLM_GIT @ TFLM_REV is extracted).
# Idempotent: a part already in place (marked by .tflm_check_rev) is kept; a part is written to a
# temporary folder and renamed, so an interrupted run leaves no half-patched folder.
# CMSIS (cortex_m_generic's DWT header) and CMSIS-NN are not prepared: run.sh builds with the
# reference kernels and passes CMSIS_PATH=cmsis_stub.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
DEST=$1

MIRRORS=${MIRRORS:-/work/.mirror}
TFLM_GIT=${TFLM_GIT:-$MIRRORS/tensorflow+tflite-micro/repo}
TFLM_REV=${TFLM_REV:-90b983c2b3f1480642e040bbd2ddb37b998f3424}
FLATBUFFERS_GIT=${FLATBUFFERS_GIT:-$MIRRORS/google+flatbuffers/repo}
FLATBUFFERS_REV=${FLATBUFFERS_REV:-v25.9.23}
GEMMLOWP_GIT=${GEMMLOWP_GIT:-$MIRRORS/google+gemmlowp/repo}
GEMMLOWP_REV=${GEMMLOWP_REV:-719139ce755a0f31cbf1c37f7f98adcc7fc9f425}
RUY_GIT=${RUY_GIT:-$MIRRORS/google+ruy/repo}
RUY_REV=${RUY_REV:-d37128311b445e758136b8602d1bbd2a755e115d}
KISSFFT_GIT=${KISSFFT_GIT:-$MIRRORS/mborgerding+kissfft/repo}
KISSFFT_REV=${KISSFFT_REV:-v130}

# The temporary folder being filled, removed if the script stops before renaming it.
tmp=
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

die() {
    echo "prepare_tflm.sh: $*" >&2
    exit 1
}

# git_archive REPO REV DIR: extracts REV of REPO (a clone or a bare repository) into DIR.
git_archive() {
    local repo=$1 rev=$2 dir=$3 gitdir=$1
    [ -d "$repo/.git" ] && gitdir=$repo/.git
    [ -d "$gitdir" ] || die "$repo: no such git repository (set the *_GIT variables, see the header)"
    git -c safe.directory='*' --git-dir="$gitdir" rev-parse --verify --quiet "$rev^{commit}" >/dev/null ||
        die "$repo has no revision $rev"
    mkdir -p "$dir"
    git -c safe.directory='*' --git-dir="$gitdir" archive --format=tar "$rev" | tar -x -C "$dir"
}

# apply_patch DIR PATCH: applies PATCH (paths a/ b/) inside DIR, whitespace-tolerant like TFLM's
# bash_helpers.sh; plain patch(1), so a DEST inside another git work tree makes no difference.
apply_patch() {
    patch -d "$1" -p1 --batch --forward --ignore-whitespace --no-backup-if-mismatch -s <"$2" ||
        die "$2 does not apply in $1"
}

# 1. The TFLite-Micro tree.
if [ -f "$DEST/tensorflow/lite/micro/tools/make/Makefile" ]; then
    echo "TFLite-Micro tree: $DEST (existing, used as is)"
else
    if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST")" ]; then
        die "$DEST exists, is not empty and is not a TFLite-Micro tree"
    fi
    mkdir -p "$(dirname "$DEST")"
    tmp=$(mktemp -d "$(dirname "$DEST")/.tflm.XXXXXX")
    git_archive "$TFLM_GIT" "$TFLM_REV" "$tmp"
    echo "$TFLM_REV" >"$tmp/.tflm_check_rev"
    rmdir "$DEST" 2>/dev/null || true
    mv "$tmp" "$DEST"
    tmp=
    echo "TFLite-Micro tree: $DEST ($TFLM_REV)"
fi
ROOT=$(cd "$DEST" && pwd)
DL=$ROOT/tensorflow/lite/micro/tools/make/downloads
mkdir -p "$DL"

# prepare_part NAME REPO REV [PATCH]: downloads/NAME from REPO @ REV, PATCH applied.
prepare_part() {
    local name=$1 repo=$2 rev=$3 patch_file=${4:-} target=$DL/$1
    if [ -f "$target/.tflm_check_rev" ]; then
        [ "$(cat "$target/.tflm_check_rev")" = "$rev" ] ||
            die "$target holds $(cat "$target/.tflm_check_rev"), not $rev: remove it to prepare again"
        echo "  downloads/$name: $rev (already in place)"
        return
    fi
    if [ -e "$target" ]; then
        echo "  downloads/$name: exists without .tflm_check_rev (TFLite-Micro's own download?), kept"
        return
    fi
    tmp=$(mktemp -d "$DL/.$name.XXXXXX")
    git_archive "$repo" "$rev" "$tmp"
    if [ "$name" = flatbuffers ]; then
        find "$tmp" \( -name BUILD -o -name BUILD.bazel \) -type f -delete
    fi
    [ -z "$patch_file" ] || apply_patch "$tmp" "$patch_file"
    echo "$rev" >"$tmp/.tflm_check_rev"
    mv "$tmp" "$target"
    tmp=
    echo "  downloads/$name: $rev${patch_file:+ + ${patch_file#"$ROOT"/}}"
}

prepare_part flatbuffers "$FLATBUFFERS_GIT" "$FLATBUFFERS_REV" "$ROOT/tensorflow/lite/micro/tools/make/flatbuffers.patch"
prepare_part gemmlowp "$GEMMLOWP_GIT" "$GEMMLOWP_REV"
prepare_part ruy "$RUY_GIT" "$RUY_REV"
prepare_part kissfft "$KISSFFT_GIT" "$KISSFFT_REV" "$ROOT/third_party/kissfft/kissfft.patch"
if [ ! -e "$DL/pigweed" ]; then
    mkdir "$DL/pigweed"
    echo "  downloads/pigweed: empty (stops the clone; only TFLite-Micro's tests use it)"
fi
echo "ready: make ... TFLM_DIR=$ROOT"
