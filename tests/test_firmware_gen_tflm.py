"""The tflm engine: C array round trip, op resolver, arena constant, and main.cc compiled.

For speed and for every core, main.cc is compiled here (host g++ and arm-none-eabi-g++, -Wall
-Wextra -Werror) against a small fake of the TFLite-Micro API written below from TFLite-Micro's
own headers; on the host it is linked with a fake interpreter and run, which checks the op
registrations, the input quantization and the argmax. tests/test_tflm_real.py builds the same
project against real TFLite-Micro and runs it on QEMU.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from convert.flatbuffer import read_model
from firmware_gen.arena import measure_arena
from firmware_gen.targets import CORES, get_core
from firmware_gen.tflm import ARENA_MARGIN, TFLM_OPS, generate, input_quant_table, resolver_ops
from pipeline.artifacts import TOOL_VERSION
from pipeline.errors import InputError

FORMATS = ("float", "int8")

# The fake resolver offers one Add* method per entry of the engine's table: it checks what main.cc
# registers, not the table itself (tests/test_tflm_real.py checks the table against TFLite-Micro's
# own micro_mutable_op_resolver.h).
FAKE_RESOLVER_METHODS = sorted(set(TFLM_OPS.values()))

FAKE_HEADERS = {
    "tensorflow/lite/c/common.h": """
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef union { float* f; int8_t* int8; uint8_t* uint8; void* data; } TfLitePtrUnion;
typedef struct { TfLiteType type; TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
""",
    "tensorflow/lite/schema/schema_generated.h": """
#pragma once
#include <stdint.h>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model { uint32_t version() const { return 3; } };
inline const Model* GetModel(const void* buf) { return static_cast<const Model*>(buf); }
}  // namespace tflite
""",
    "tensorflow/lite/micro/micro_log.h": """
#pragma once
void MicroPrintf(const char* format, ...) __attribute__((format(printf, 1, 2)));
""",
    "tensorflow/lite/micro/system_setup.h": """
#pragma once
namespace tflite { void InitializeTarget(); }
""",
    "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h": """
#pragma once
extern "C" {
typedef void (*DebugLogCallback)(const char* s);
void RegisterDebugLogCallback(DebugLogCallback callback);
}
""",
    "tensorflow/lite/micro/micro_op_resolver.h": """
#pragma once
#include "tensorflow/lite/c/common.h"
namespace tflite {
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
void FakeRecordOp(const char* method);  // the fake's log of registrations
}  // namespace tflite
""",
    "tensorflow/lite/micro/micro_interpreter.h": """
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
namespace tflite {
class MicroResourceVariables;
class MicroProfilerInterface;
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, uint8_t* tensor_arena,
                   size_t tensor_arena_size, MicroResourceVariables* resource_variables = nullptr,
                   MicroProfilerInterface* profiler = nullptr, bool preserve_all_tensors = false);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
 private:
  uint8_t* arena_;
  size_t arena_size_;
  size_t used_;
  TfLiteTensor input_;
  TfLiteTensor output_;
};
}  // namespace tflite
""",
}


def _fake_resolver_header() -> str:
    methods = "\n".join(f'  TfLiteStatus {name}() {{ return Add("{name}"); }}' for name in FAKE_RESOLVER_METHODS)
    return f"""
#pragma once
#include <string.h>
#include "tensorflow/lite/micro/micro_op_resolver.h"
namespace tflite {{
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {{
 public:
{methods}
 private:
  TfLiteStatus Add(const char* method) {{
    for (unsigned int i = 0; i < count_; ++i) {{
      if (strcmp(names_[i], method) == 0) return kTfLiteError;  // registered twice
    }}
    if (count_ >= tOpCount) return kTfLiteError;  // resolver too small
    names_[count_++] = method;
    FakeRecordOp(method);
    return kTfLiteOk;
  }}
  const char* names_[tOpCount];
  unsigned int count_ = 0;
}};
}}  // namespace tflite
"""


# The fake interpreter: input/output tensors carved from the arena; Invoke makes the class
# ((unsigned char)input[0] for int8, (int)input[0] for float) modulo the number of classes win.
FAKE_RUNTIME = r"""
#include <stdarg.h>
#include <stdio.h>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"

void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  printf("\n");
}
namespace tflite {
void InitializeTarget() {}
void FakeRecordOp(const char* method) { printf("op %s\n", method); }
MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t* arena, size_t size,
                                   MicroResourceVariables*, MicroProfilerInterface*, bool)
    : arena_(arena), arena_size_(size), used_(0), input_(), output_() {}
TfLiteStatus MicroInterpreter::AllocateTensors() {
  const size_t in_item = FAKE_INPUT_INT8 ? 1 : 4, out_item = FAKE_OUTPUT_INT8 ? 1 : 4;
  used_ = FAKE_INPUT_ELEMENTS * in_item + FAKE_CLASSES * out_item;
  if (used_ > arena_size_) return kTfLiteError;
  input_.type = FAKE_INPUT_INT8 ? kTfLiteInt8 : kTfLiteFloat32;
  input_.bytes = FAKE_INPUT_ELEMENTS * in_item;
  input_.data.data = arena_;
  output_.type = FAKE_OUTPUT_INT8 ? kTfLiteInt8 : kTfLiteFloat32;
  output_.bytes = FAKE_CLASSES * out_item;
  output_.data.data = arena_ + input_.bytes;
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() {
  const int winner = FAKE_INPUT_INT8 ? (int)(uint8_t)input_.data.int8[0] % FAKE_CLASSES
                                     : (int)input_.data.f[0] % FAKE_CLASSES;
  for (int i = 0; i < FAKE_CLASSES; ++i) {
    if (FAKE_OUTPUT_INT8) output_.data.int8[i] = (int8_t)(i == winner ? 100 : -100 + i);
    else output_.data.f[i] = i == winner ? 1.0f : 0.001f * (float)i;
  }
  return kTfLiteOk;
}
TfLiteTensor* MicroInterpreter::input(size_t) { return &input_; }
TfLiteTensor* MicroInterpreter::output(size_t) { return &output_; }
size_t MicroInterpreter::arena_used_bytes() const { return used_; }
}  // namespace tflite
"""

FAKE_DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>
extern "C" int tflm_setup(void);
extern "C" int tflm_classify(const uint8_t* pixels);
int main(int argc, char** argv) {
  const int status = tflm_setup();
  printf("setup %d\n", status);
  if (status != 0) return 1;
  static uint8_t image[FAKE_INPUT_ELEMENTS];
  for (int i = 1; i < argc; ++i) {
    memset(image, 0, sizeof image);
    image[0] = (uint8_t)atoi(argv[i]);
    printf("pixel %d class %d\n", image[0], tflm_classify(image));
  }
  return 0;
}
"""

DUMP_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include "model_data.h"
int main(int argc, char** argv) {
  if (argc != 2) return 3;
  if ((uintptr_t)ARRAY % 16 != 0) return 2;
  FILE* out = fopen(argv[1], "wb");
  if (out == NULL) return 4;
  size_t written = fwrite(ARRAY, 1, ARRAY_LEN, out);
  return (fclose(out) == 0 && written == ARRAY_LEN) ? 0 : 1;
}
"""

WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def _require(tool: str) -> str:
    require_tools(tool, hint="install with `make toolchain`")
    return shutil.which(tool) or tool


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def generated(tiny_cnn_tflite: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """format -> folder with the tflm engine's files for the tiny cnn on cortex-m4."""
    folders = {}
    for fmt in FORMATS:
        output = generate(read_model(tiny_cnn_tflite[fmt]), get_core("cortex-m4"), None)
        folder = tmp_path_factory.mktemp(f"tflm_{fmt}")
        for rel, data in output.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        folders[fmt] = folder
    return folders


def _array_name(folder: Path) -> str:
    return re.search(r"extern const unsigned char (\w+)\[\];", (folder / "model_data.h").read_text()).group(1)


@pytest.mark.parametrize(
    ("fmt", "compiler", "std"),
    [("float", "gcc", "-std=c99"), ("int8", "gcc", "-std=c99"), ("int8", "gcc", "-std=c11"), ("int8", "g++", "-std=c++11")],
)
def test_model_data_round_trips_byte_for_byte(generated, tiny_cnn_tflite, tmp_path, fmt, compiler, std):
    """model_data.c compiled by the host compiler writes back exactly the flatbuffer, 16-aligned."""
    _require(compiler)
    folder = generated[fmt]
    name = _array_name(folder)
    (tmp_path / "dump.c").write_text(DUMP_PROGRAM)
    language = ["-x", "c++"] if compiler == "g++" else []
    exe = tmp_path / "dump"
    _run(
        [
            compiler,
            std,
            "-pedantic",
            *WARNINGS,
            f"-DARRAY={name}",
            f"-DARRAY_LEN={name}_len",
            "-I",
            folder,
            *language,
            folder / "model_data.c",
            tmp_path / "dump.c",
            "-o",
            exe,
        ]
    )
    _run([exe, tmp_path / "back.tflite"])
    assert (tmp_path / "back.tflite").read_bytes() == tiny_cnn_tflite[fmt].read_bytes()


def test_model_data_layout_is_twelve_bytes_per_line(generated, tiny_cnn_tflite):
    text = (generated["int8"] / "model_data.c").read_text()
    rows = [line for line in text.splitlines() if line.startswith("  0x")]
    size = tiny_cnn_tflite["int8"].stat().st_size
    assert len(rows) == -(-size // 12)
    assert all(len(row.split(",")) - (row.endswith(",")) == 12 for row in rows[:-1])
    assert f"_len = {size}u;" in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_resolver_registers_exactly_the_model_ops(generated, tiny_cnn_tflite, fmt):
    model = read_model(tiny_cnn_tflite[fmt])
    main = (generated[fmt] / "main.cc").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\) != kTfLiteOk\) return -2;  // (\w+)", main)
    assert sorted(op for _, op in registered) == model.builtin_ops
    assert len({method for method, _ in registered}) == len(registered) == len(model.builtin_ops)
    assert "MicroMutableOpResolver<kNumOps>" in main
    assert f"constexpr unsigned int kNumOps = {len(model.builtin_ops)};" in main
    # Spot-check the table against the brief's mapping.
    table = dict((op, method) for method, op in registered)
    assert table["CONV_2D"] == "AddConv2D" and table["FULLY_CONNECTED"] == "AddFullyConnected"
    assert table["MAX_POOL_2D"] == "AddMaxPool2D" and table["SOFTMAX"] == "AddSoftmax"


def _independent_arena_total(path: Path) -> int:
    """The arena total from print_allocations, read from a child process's stderr."""
    code = (
        "import sys\n"
        "from tflite_micro.python.tflite_micro import runtime\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "runtime.Interpreter.from_bytes(data, arena_size=8 << 20).print_allocations()\n"
    )
    result = _run([sys.executable, "-c", code, path])
    totals = re.findall(r"Arena allocation total (\d+) bytes", result.stderr)
    assert len(totals) == 1, result.stderr
    return int(totals[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_arena_constant_is_measured_plus_margin(generated, tiny_cnn_tflite, fmt):
    data = tiny_cnn_tflite[fmt].read_bytes()
    measured = _independent_arena_total(tiny_cnn_tflite[fmt])
    assert measure_arena(data) == measured
    main = (generated[fmt] / "main.cc").read_text()
    constant = int(re.search(r"constexpr size_t kArenaSize = (\d+);", main).group(1))
    assert constant == -(-(measured + ARENA_MARGIN) // 16) * 16
    assert constant % 16 == 0 and measured + ARENA_MARGIN <= constant < measured + ARENA_MARGIN + 16
    # The constant is enough for the real TFLite-Micro allocator.
    from tflite_micro.python.tflite_micro import runtime

    runtime.Interpreter.from_bytes(data, arena_size=constant)


def test_generated_files_carry_the_banner(generated, tiny_cnn_tflite):
    model = read_model(tiny_cnn_tflite["int8"])
    for path in sorted(p for p in generated["int8"].iterdir() if p.is_file()):
        head = "\n".join(path.read_text().splitlines()[:5])
        assert f"firmware_gen {TOOL_VERSION}" in head, path.name
        assert model.sha256 in head, path.name


def test_input_quant_table_rounds_half_away_from_zero():
    table = input_quant_table(2.0, 3)
    # 1/2 = 0.5 -> 1, 3/2 = 1.5 -> 2, 5/2 = 2.5 -> 3 (banker's rounding would give 0, 2, 2).
    assert table[:6] == [3, 4, 4, 5, 5, 6]
    assert input_quant_table(1.0, -128) == list(range(-128, 128))
    assert max(input_quant_table(0.5, 0)) == 127 and input_quant_table(0.5, 0)[200] == 127  # clamped
    with pytest.raises(InputError):
        input_quant_table(0.0, 0)


def test_custom_and_unknown_ops_are_errors_naming_the_op(tiny_cnn_tflite):
    model = read_model(tiny_cnn_tflite["int8"])
    first = model.operators[0]
    custom = dataclasses.replace(
        model, operators=(dataclasses.replace(first, name="LceBconv2d", is_custom=True), *model.operators[1:])
    )
    with pytest.raises(InputError, match="LceBconv2d"):
        resolver_ops(custom)
    unknown = dataclasses.replace(model, operators=(dataclasses.replace(first, name="STABLEHLO_ADD"), *model.operators[1:]))
    with pytest.raises(InputError, match="STABLEHLO_ADD"):
        resolver_ops(unknown)


def _fake_tflm(root: Path) -> Path:
    include = root / "fake_tflm"
    for rel, text in FAKE_HEADERS.items():
        (include / rel).parent.mkdir(parents=True, exist_ok=True)
        (include / rel).write_text(text)
    (include / "tensorflow/lite/micro/micro_mutable_op_resolver.h").write_text(_fake_resolver_header())
    return include


def _fake_defines(model) -> list[str]:
    inp, out = model.tensors[model.inputs[0]], model.tensors[model.outputs[0]]
    return [
        f"-DFAKE_INPUT_INT8={int(inp.dtype == 'INT8')}",
        f"-DFAKE_OUTPUT_INT8={int(out.dtype == 'INT8')}",
        f"-DFAKE_INPUT_ELEMENTS={int(np.prod(inp.shape))}",
        f"-DFAKE_CLASSES={int(np.prod(out.shape))}",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_main_cc_runs_against_a_fake_tflm(generated, tiny_cnn_tflite, tmp_path, fmt):
    """Host build of main.cc + model_data.c + a fake interpreter: ops, quantization, argmax."""
    _require("g++")
    model = read_model(tiny_cnn_tflite[fmt])
    include = _fake_tflm(tmp_path)
    (tmp_path / "runtime.cc").write_text(FAKE_RUNTIME)
    (tmp_path / "driver.cc").write_text(FAKE_DRIVER)
    folder = generated[fmt]
    objects = []
    for source, flags in [
        (folder / "main.cc", ["-DTFLM_APP_NO_MAIN"]),
        (tmp_path / "runtime.cc", []),
        (tmp_path / "driver.cc", ["-include", "stdlib.h"]),
    ]:
        obj = tmp_path / (source.stem + ".o")
        _run(
            ["g++", "-std=c++17", *WARNINGS, *flags, *_fake_defines(model), "-I", include, "-I", folder, "-c", source, "-o", obj]
        )
        objects.append(obj)
    _run(["gcc", "-std=c99", *WARNINGS, "-I", folder, "-c", folder / "model_data.c", "-o", tmp_path / "model_data.o"])
    exe = tmp_path / "app"
    _run(["g++", *objects, tmp_path / "model_data.o", "-o", exe])
    pixels = [0, 1, 7, 128, 200, 255]
    lines = _run([exe, *map(str, pixels)]).stdout.splitlines()
    assert lines[: len(model.builtin_ops)] == [f"op {TFLM_OPS[name]}" for name in model.builtin_ops]
    assert lines[len(model.builtin_ops)] == "setup 0"
    classes = {int(m.group(1)): int(m.group(2)) for m in (re.match(r"pixel (\d+) class (-?\d+)", line) for line in lines) if m}
    inp = model.tensors[model.inputs[0]]
    for pixel in pixels:
        if inp.dtype == "INT8":
            scale, zero = inp.quantization.scale[0], inp.quantization.zero_point[0]
            q = min(127, max(-128, int(np.floor(pixel / scale + 0.5)) + int(zero)))
            expected = (q & 0xFF) % 10
        else:
            expected = pixel % 10
        assert classes[pixel] == expected, (pixel, classes)


@pytest.mark.toolchain
@pytest.mark.parametrize("core", list(CORES))
def test_sources_cross_compile_for_every_core(generated, tmp_path, core):
    """arm-none-eabi: main.cc (fake TFLM headers) and model_data.c build warning-free; the model is in .rodata."""
    _require("arm-none-eabi-g++")
    flags = list(CORES[core].gcc_flags)
    include = _fake_tflm(tmp_path)
    folder = generated["int8"]
    cxx = ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-Os", *WARNINGS]
    # As the application (main) and as a library linked into another program (TFLM_APP_NO_MAIN).
    for variant in ([], ["-DTFLM_APP_NO_MAIN"]):
        _run(
            [
                "arm-none-eabi-g++",
                *flags,
                *cxx,
                *variant,
                "-DTFLM_APP_CORTEX_M_GENERIC",
                "-I",
                include,
                "-I",
                folder,
                "-c",
                folder / "main.cc",
                "-o",
                tmp_path / "main.o",
            ]
        )
    _run(
        [
            "arm-none-eabi-gcc",
            *flags,
            "-std=c99",
            "-Os",
            *WARNINGS,
            "-I",
            folder,
            "-c",
            folder / "model_data.c",
            "-o",
            tmp_path / "model_data.o",
        ]
    )
    symbols = _run(["arm-none-eabi-nm", tmp_path / "model_data.o"]).stdout
    name = _array_name(folder)
    assert re.search(rf"^[0-9a-f]+ R {name}$", symbols, re.MULTILINE), symbols


def test_makefile_needs_tflm_dir_and_uses_the_core_flags(generated, tmp_path):
    """make without TFLM_DIR stops with a clear message; with it, the commands carry the core's flags."""
    _require("make")
    folder = generated["int8"]
    result = subprocess.run(["make", "-C", str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "TFLM_DIR is not set" in result.stderr
    library = tmp_path / "libtensorflow-microlite.a"
    library.write_bytes(b"")
    dry = _run(["make", "-n", "-C", folder, f"TFLM_DIR={tmp_path}", f"TFLM_LIB={library}", f"BUILD={tmp_path / 'build'}"]).stdout
    flags = " ".join(get_core("cortex-m4").gcc_flags)
    compile_main = next(line for line in dry.splitlines() if " -c main.cc " in line)
    assert compile_main.startswith("arm-none-eabi-g++ ") and flags in compile_main and "-DTF_LITE_STATIC_MEMORY" in compile_main
    link = next(line for line in dry.splitlines() if "_tflm.elf" in line and " -o " in line)
    assert flags in link and str(library) in link
    assert f"-isystem {tmp_path} " in compile_main  # TFLite-Micro's own warnings are not the app's


def _library_command(folder, tmp_path, *args: str) -> str:
    """The dry-run command that builds libtensorflow-microlite.a with TFLite-Micro's makefile."""
    # make runs recursive $(MAKE) lines even under -n: MAKE=echo prints that command instead.
    command = ["make", "-s", "-C", folder, "MAKE=echo", f"TFLM_DIR={tmp_path}", f"BUILD={tmp_path / 'build'}", *args]
    return _run([*command, "tflm-lib"]).stdout


def test_makefile_builds_the_tflm_library_with_its_own_compiler(generated, tmp_path):
    """CMSIS-NN by default, reference kernels with TFLM_OPTIMIZED_KERNEL_DIR=, this compiler, extra args."""
    _require("make")
    folder = generated["int8"]
    default = _library_command(folder, tmp_path)
    assert "TARGET=cortex_m_generic" in default and "TARGET_ARCH=cortex-m4+fp" in default
    assert "OPTIMIZED_KERNEL_DIR=cmsis_nn" in default
    assert re.search(r"TARGET_TOOLCHAIN_ROOT=\S*/ ", default), default  # the folder of arm-none-eabi-g++
    reference = _library_command(folder, tmp_path, "TFLM_OPTIMIZED_KERNEL_DIR=", "TFLM_MAKE_ARGS=CMSIS_PATH=/opt/cmsis")
    assert "OPTIMIZED_KERNEL_DIR" not in reference and "CMSIS_PATH=/opt/cmsis" in reference


def test_input_quant_table_saturates_on_a_tiny_scale():
    """A scale so small that p / scale overflows float32 saturates at 127 (it cast +inf to int64 with a warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = input_quant_table(1e-45, -5)
    assert table[0] == -5 and set(table[1:]) == {127}
