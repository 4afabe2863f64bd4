#!/usr/bin/env bash
# run.sh TFLM_DIR [MODEL.tflite ...]: builds firmware_gen's tflm engine output against a real
# TFLite-Micro tree (TFLM_DIR, e.g. from prepare_tflm.sh) and runs it on QEMU; see README.md.
#
# For each model (default: artifacts/cnn.int8.tflite artifacts/mlp.int8.tflite artifacts/cnn.tflite):
#   1. python -m firmware_gen --engine tflm --target $CORE --model MODEL --out $WORK/apps/NAME
#   2. the first model's generated Makefile builds libtensorflow-microlite.a (its tflm-lib target,
#      reference kernels, CMSIS_PATH=cmsis_stub); every app then links it through TFLM_LIB
#   3. (a) the generated Makefile's own app (STARTUP=startup.c LDSCRIPT=mps2_an386.ld), on QEMU:
#          exit status 0 and no compiler warning expected
#      (b) the same Makefile plus harness.mk: main.cc with -DTFLM_APP_NO_MAIN, harness.cc and the
#          first $N test images, -Werror; on QEMU, then compare.py against the Python interpreter
# Environment: N (images, default 100), WORK (default /tmp/tflm_check_work), CORE (default
# cortex-m4, the only core with a startup, linker script and CMSIS stand-in here), JOBS (make -j,
# default 2), QEMU_TIMEOUT (seconds per run, default 900), PYTHON (default REPO/.venv/bin/python),
# MNIST_DIR (required: the folder with the MNIST IDX files).
# Exit status 0 when every model passed, 1 when one failed, 2 for bad usage.
set -euo pipefail

usage() {
    echo "usage: [N=100] [WORK=/tmp/tflm_check_work] [CORE=cortex-m4] $0 TFLM_DIR [MODEL.tflite ...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
[ -f "$1/tensorflow/lite/micro/tools/make/Makefile" ] || {
    echo "run.sh: $1 is not a TFLite-Micro tree (prepare one with prepare_tflm.sh)" >&2
    exit 2
}
TFLM_DIR=$(cd "$1" && pwd)
shift

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
N=${N:-100}
WORK=${WORK:-/tmp/tflm_check_work}
CORE=${CORE:-cortex-m4}
JOBS=${JOBS:-2}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-900}
if [ -z "${MNIST_DIR:-}" ]; then
    echo "run.sh: set MNIST_DIR to the folder with the MNIST IDX files" >&2
    exit 2
fi
export MNIST_DIR TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3

case $CORE in
cortex-m4) MACHINE=mps2-an386 ;;
*)
    echo "run.sh: CORE=$CORE is not supported (startup.c, mps2_an386.ld and cmsis_stub are for cortex-m4)" >&2
    exit 2
    ;;
esac

MODELS=()
if [ $# -eq 0 ]; then
    set -- "$REPO/artifacts/cnn.int8.tflite" "$REPO/artifacts/mlp.int8.tflite" "$REPO/artifacts/cnn.tflite"
fi
for model in "$@"; do
    [ -f "$model" ] || {
        echo "run.sh: $model: no such file" >&2
        exit 2
    }
    MODELS+=("$(cd "$(dirname "$model")" && pwd)/$(basename "$model")")
done

for tool in make arm-none-eabi-g++ arm-none-eabi-size qemu-system-arm timeout; do
    command -v "$tool" >/dev/null || {
        echo "run.sh: $tool not found on PATH" >&2
        exit 2
    }
done
if ! echo '#include <cstddef>' | arm-none-eabi-g++ -x c++ -fsyntax-only - 2>/dev/null; then
    echo "run.sh: arm-none-eabi-g++ has no C++ library: install libstdc++-arm-none-eabi-newlib" >&2
    exit 2
fi

W=$WORK/$CORE
mkdir -p "$W"
LOG=$W/logs
mkdir -p "$LOG"
SUMMARY=$W/summary.txt
: >"$SUMMARY"
# TFLite-Micro's makefile runs python3 (numpy, Pillow): the project's venv provides both.
PATH=$(dirname "$PYTHON"):$PATH

qemu() { # qemu ELF OUT: runs ELF on $MACHINE, stdout+stderr to OUT; returns QEMU's status
    timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$MACHINE" -nographic -monitor none \
        -semihosting-config enable=on,target=native -icount shift=0 -kernel "$1" >"$2" 2>&1
}
stage() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }

stage "images: first $N MNIST test images from $MNIST_DIR"
"$PYTHON" "$HERE/make_images.py" "$W/images.c" --count "$N"

LIB_BUILD=$W/lib
LIB=$LIB_BUILD/tflm/lib/libtensorflow-microlite.a
# A library built from another TFLite-Micro tree is not reused.
if [ -f "$LIB_BUILD/tflm_dir" ] && [ "$(cat "$LIB_BUILD/tflm_dir")" != "$TFLM_DIR" ]; then
    rm -rf "$LIB_BUILD"
fi

failed=0
for model in "${MODELS[@]}"; do
    name=$(basename "$model" .tflite)
    tag=${name//./_}
    app=$W/apps/$tag
    stage "$name: firmware_gen"
    (cd "$REPO" && "$PYTHON" -m firmware_gen --engine tflm --target "$CORE" --model "$model" --out "$app") >"$LOG/$tag.firmware_gen.log" 2>&1 || {
        cat "$LOG/$tag.firmware_gen.log"
        echo "$name: FAIL firmware_gen" | tee -a "$SUMMARY"
        failed=1
        continue
    }

    if [ ! -f "$LIB" ]; then
        stage "$name: libtensorflow-microlite.a through the generated Makefile (make tflm-lib, log $LOG/tflm-lib.log)"
        mkdir -p "$LIB_BUILD"
        echo "$TFLM_DIR" >"$LIB_BUILD/tflm_dir"
        make -C "$app" -j"$JOBS" tflm-lib TFLM_DIR="$TFLM_DIR" TFLM_OPTIMIZED_KERNEL_DIR= \
            TFLM_MAKE_ARGS="CMSIS_PATH=$HERE/cmsis_stub" BUILD="$LIB_BUILD" >"$LOG/tflm-lib.log" 2>&1 || {
            tail -20 "$LOG/tflm-lib.log"
            echo "run.sh: the TFLite-Micro library did not build (see $LOG/tflm-lib.log)" >&2
            exit 1
        }
        stage "library: $(du -k "$LIB" | cut -f1) KiB, $(arm-none-eabi-ar t "$LIB" | wc -l) objects"
    fi

    # (a) The generated Makefile's standalone app (main() classifies a blank image).
    stage "$name: standalone app (generated Makefile, STARTUP/LDSCRIPT from tools/tflm_check)"
    standalone=$W/standalone/$tag
    make_args=(TFLM_DIR="$TFLM_DIR" TFLM_LIB="$LIB" STARTUP="$HERE/startup.c" LDSCRIPT="$HERE/mps2_an386.ld")
    if ! make -C "$app" -j"$JOBS" "${make_args[@]}" BUILD="$standalone" >"$LOG/$tag.standalone.make.log" 2>&1; then
        tail -20 "$LOG/$tag.standalone.make.log"
        echo "$name: FAIL standalone build" | tee -a "$SUMMARY"
        failed=1
        continue
    fi
    warnings=$(grep -c 'warning:' "$LOG/$tag.standalone.make.log" || true)
    rc=0
    qemu "$standalone/${tag}_tflm.elf" "$standalone/qemu.out" || rc=$?
    stage "$name: standalone on QEMU exit $rc, $warnings warnings: $(tr -s '\r\n' ' ' <"$standalone/qemu.out")"
    if [ "$rc" -ne 0 ] || [ "$warnings" -ne 0 ]; then
        echo "$name: FAIL standalone (QEMU exit $rc, $warnings compiler warnings)" | tee -a "$SUMMARY"
        failed=1
    fi

    # (b) main.cc as a library + harness.cc + the test images, -Werror, compared with Python.
    stage "$name: harness app ($N images, -Werror)"
    harness=$W/harness/$tag
    if ! make -C "$app" -j"$JOBS" -f Makefile -f "$HERE/harness.mk" "${make_args[@]}" BUILD="$harness" \
        HARNESS_DIR="$HERE" IMAGES="$W/images.c" >"$LOG/$tag.harness.make.log" 2>&1; then
        tail -20 "$LOG/$tag.harness.make.log"
        echo "$name: FAIL harness build" | tee -a "$SUMMARY"
        failed=1
        continue
    fi
    rc=0
    qemu "$harness/${tag}_tflm.elf" "$harness/qemu.out" || rc=$?
    stage "$name: harness on QEMU exit $rc; comparing with the TFLite-Micro Python interpreter"
    if [ "$rc" -ne 0 ]; then
        tail -5 "$harness/qemu.out"
        failed=1
    fi
    "$PYTHON" "$HERE/compare.py" --model "$model" --main-cc "$app/main.cc" --output "$harness/qemu.out" \
        --count "$N" --elf "standalone=$standalone/${tag}_tflm.elf" --elf "harness=$harness/${tag}_tflm.elf" \
        2>"$LOG/$tag.compare.log" | tee -a "$SUMMARY" || failed=1
done

echo
echo "summary ($CORE on QEMU $MACHINE, $N images, TFLite-Micro $TFLM_DIR, ${SECONDS}s):"
cat "$SUMMARY"
exit "$failed"
