# bnn-mcu: binarized neural networks from Larq training to Cortex-M firmware.
# Quick start: `make demo` (install + run the pipeline), `make test` (install + lint + tests).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm cmake chromium clang
ARTIFACTS ?= artifacts

# The shared MNIST copy, when this checkout sits beside it.
SHARED_MNIST := $(abspath $(CURDIR)/../shared/data/mnist)
ifneq ($(wildcard $(SHARED_MNIST)/t10k-labels-idx1-ubyte.gz),)
export MNIST_DIR ?= $(SHARED_MNIST)
endif
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: install toolchain demo test bench bench-train bench-photos bench-audio fuzz lint format clean

install: $(STAMP) toolchain

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Debian packages for the Cortex-M stages (Arm toolchain, QEMU), the CMake library tests and the
# browser tests of the HTML report (headless Chromium): installed when missing and running as root.
toolchain:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "warning: missing Debian packages:$$missing"; \
	  echo "         install them with: sudo apt-get install --no-install-recommends$$missing"; \
	fi

# The demo: train (reused when artifacts/bcnn.h5 exists; `make demo RETRAIN=1` retrains), convert,
# generate the bnn firmware, then climb the verification ladder, print one summary table and write the
# HTML model report (artifacts/bcnn.report.html, path printed last).
# Training uses bcnn's default recipe (`fast`: 20 epochs, >= 99.0 %, 184-204 s on 2 idle cores, measured by make bench-train);
# `make demo RECIPE=best` trains issue 8's slower recipe, `make demo RECIPE=seed` the seed recipe (~75 s).
DEMO_TARGET ?= cortex-m4
RECIPE ?=
DEMO_FIRMWARE := $(ARTIFACTS)/firmware/bcnn.lce-$(DEMO_TARGET)

demo: install
	@if [ -n "$(RETRAIN)$(RECIPE)" ] || [ ! -f $(ARTIFACTS)/bcnn.h5 ]; then \
	  $(PY) -m train --model bcnn --out $(ARTIFACTS) $(if $(RECIPE),--recipe $(RECIPE)); \
	else echo "reusing $(ARTIFACTS)/bcnn.h5 (make demo RETRAIN=1 to train again)"; fi
	$(PY) -m convert $(ARTIFACTS)/bcnn.h5
	$(PY) -m firmware_gen --target $(DEMO_TARGET) --model $(ARTIFACTS)/bcnn.lce.tflite --out $(DEMO_FIRMWARE)
	$(PY) -m emulator $(ARTIFACTS)/bcnn.h5
	$(PY) -m emulator $(ARTIFACTS)/bcnn.lce.tflite
	$(PY) -m emulator $(DEMO_FIRMWARE) --backend host
	$(PY) -m emulator $(DEMO_FIRMWARE) --backend qemu --target $(DEMO_TARGET) --reference $(ARTIFACTS)/bcnn.h5
	$(PY) -m emulator.summary $(ARTIFACTS)
	$(PY) -m emulator.model_report $(ARTIFACTS) --model bcnn

# Benchmarks: every model and engine in one run (trains or converts only what is missing or stale; each model with its
# default recipe, fast for bcnn: BENCH_ARGS="--train-recipe seed" for the 6-epoch one).
# Writes bench/results.json, bench/RESULTS.md and bench/accuracy_vs_flash.png; BENCH_ARGS="--limit 500" for a quick look.
BENCH_ARGS ?=
bench: install
	$(PY) -m bench --artifacts $(ARTIFACTS) --out bench $(BENCH_ARGS)

# Training benchmark: the bcnn's default recipe on seeds 0, 1, 2 and the best recipe on seed 0, one after
# the other (~20 min on 2 idle cores): time to 99.0 %, CPU time, peak RSS. Writes bench/training.json and bench/TRAINING.md.
BENCH_TRAIN_ARGS ?=
bench-train: install
	$(PY) -m bench.training --out bench $(BENCH_TRAIN_ARGS)

# Side by side on the real tasks (python -m bench.side_by_side): each row is a flatbuffer deployed by an engine, generated
# by firmware_gen and run by the emulator on QEMU's Cortex-M cores over the same test examples, beside a reference model
# under TFLite-Micro + CMSIS-NN (the baseline). Writes OUT/side_by_side.json, OUT/SIDE_BY_SIDE.md and
# OUT/side_by_side.png. The whole test set takes hours of QEMU time on 2 cores: SIDE_BY_SIDE_ARGS="--images 200" for a look.
# bench-photos: CIFAR-10 (the JPEG copy, read through the image-folder loader) on the Cortex-M4 and M7, MLPerf's ResNet-8
# int8 under both engines, ResNet-8 retrained on this copy (PHOTOS_RESNET8: fine-tuned from MLPerf's .h5, int8, under
# TFLite-Micro + CMSIS-NN) and the project's colour BNN (PHOTOS_BNN); each .h5 beside its flatbuffer:
#   python -m train --model resnet8 --recipe resnet8_finetune --init $(MLPERF_TINY)/pretrainedResnet.h5 \
#     --data $(PHOTOS_DATA) --out artifacts/cifar --name resnet8_mlperf_ft   (then python -m convert ... .h5 --data ...)
#   python -m train --model colour_bnn --teacher artifacts/cifar/resnet8_mlperf_ft.h5 --data ... --out artifacts/cifar
MLPERF_TINY := ../shared/models/mlperf-tiny
SIDE_BY_SIDE_ARGS ?=
SIDE_BY_SIDE := $(PY) -m bench.side_by_side
PHOTOS_CORES := --cores cortex-m4,cortex-m7 --boards stm32f411re,stm32f746
PHOTOS_DATA ?= ../shared/data/cifar10/cifar10-jpeg.tar.gz
PHOTOS_BNN ?= $(ARTIFACTS)/cifar/colour_bnn.lce.tflite
PHOTOS_RESNET8 ?= $(ARTIFACTS)/cifar/resnet8_mlperf_ft.int8.tflite
PHOTOS_OUT ?= bench/photos
RESNET8 := MLPerf ResNet-8 int8 (TFLite-Micro + CMSIS-NN)
RESNET8_BNN := MLPerf ResNet-8 int8 (bnn engine)
RESNET8_RETRAINED := ResNet-8 retrained on this copy, int8 (TFLite-Micro + CMSIS-NN)
PHOTOS_BNN_LABEL := colour BNN (bnn engine)
bench-photos: install
	$(SIDE_BY_SIDE) $(PHOTOS_CORES) --data $(PHOTOS_DATA) --out $(PHOTOS_OUT) --baseline "$(RESNET8)" \
	  --row "$(RESNET8)=$(MLPERF_TINY)/pretrainedResnet_quant.tflite:tflm:cmsis_nn" \
	  --row "$(RESNET8_BNN)=$(MLPERF_TINY)/pretrainedResnet_quant.tflite:bnn" \
	  --row "$(RESNET8_RETRAINED)=$(PHOTOS_RESNET8):tflm:cmsis_nn" \
	  --row "$(PHOTOS_BNN_LABEL)=$(PHOTOS_BNN):bnn" \
	  --reference "$(RESNET8)=$(MLPERF_TINY)/pretrainedResnet.h5" \
	  --reference "$(RESNET8_BNN)=$(MLPERF_TINY)/pretrainedResnet.h5" \
	  --reference "$(RESNET8_RETRAINED)=$(PHOTOS_RESNET8:.int8.tflite=.h5)" \
	  --reference "$(PHOTOS_BNN_LABEL)=$(PHOTOS_BNN:.lce.tflite=.h5)" \
	  $(SIDE_BY_SIDE_ARGS)

# bench-audio: FSDD (datasets/fsdd.json: the WAV tar, the dataset's own split, 300 test clips) on the Cortex-M0 and M4,
# every firmware fed raw samples (front end on the chip): a DS-CNN int8 under both engines (TFLite-Micro + CMSIS-NN the
# baseline) and the project's keyword BNN, each trained and converted with the dataset (AUDIO_DSCNN, AUDIO_BNN; their .h5
# beside them, the Keras references, run on Python's features):
#   python -m train --model ds_cnn --data datasets/fsdd.json --out artifacts/fsdd  (then kws_bnn)
#   python -m convert artifacts/fsdd/ds_cnn.h5 --data datasets/fsdd.json            (then kws_bnn.h5)
AUDIO_CORES := --cores cortex-m0,cortex-m4 --boards stm32f030f4,stm32f411re
AUDIO_DATA ?= datasets/fsdd.json
AUDIO_BNN ?= $(ARTIFACTS)/fsdd/kws_bnn.lce.tflite
AUDIO_DSCNN ?= $(ARTIFACTS)/fsdd/ds_cnn.int8.tflite
AUDIO_OUT ?= bench/audio
DSCNN := DS-CNN int8 (TFLite-Micro + CMSIS-NN)
DSCNN_BNN := DS-CNN int8 (bnn engine)
AUDIO_BNN_LABEL := kws BNN (bnn engine)
bench-audio: install
	$(SIDE_BY_SIDE) $(AUDIO_CORES) --data $(AUDIO_DATA) --out $(AUDIO_OUT) --baseline "$(DSCNN)" \
	  --row "$(DSCNN)=$(AUDIO_DSCNN):tflm:cmsis_nn" \
	  --row "$(DSCNN_BNN)=$(AUDIO_DSCNN):bnn" \
	  --row "$(AUDIO_BNN_LABEL)=$(AUDIO_BNN):bnn" \
	  --reference "$(DSCNN)=$(AUDIO_DSCNN:.int8.tflite=.h5)" \
	  --reference "$(DSCNN_BNN)=$(AUDIO_DSCNN:.int8.tflite=.h5)" \
	  --reference "$(AUDIO_BNN_LABEL)=$(AUDIO_BNN:.lce.tflite=.h5)" \
	  $(SIDE_BY_SIDE_ARGS)

test: install lint
	$(PY) -m pytest

# Fuzzing, not part of make test (which runs 2,000 mutants): FUZZ_MUTANTS mutants of real flatbuffers through the
# reader and every consumer; exit 1 if one raised anything but a one-line InputError, hung, or got firmware written
# for a model its reference interpreter refuses. Report and failing mutants in $(ARTIFACTS)/fuzz/.
FUZZ_MUTANTS ?= 30000
FUZZ_SEED ?= 0
fuzz: install
	$(PY) tests/fuzzing.py --mutants $(FUZZ_MUTANTS) --seed $(FUZZ_SEED) --out $(ARTIFACTS)/fuzz

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(ARTIFACTS) .pytest_cache .ruff_cache
