# make setup   installs everything: system and Python packages, the chatllm.cpp source (submodule, or the archive in
#              CHATLLM_SOURCE_ARCHIVE when the submodule cannot be fetched), every libchatllm variant the tests use,
#              and the generated models
# make test    runs the test suite
PYTHON ?= python3
BUILD_THREADS ?= $(shell nproc 2>/dev/null || echo 2)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export BUILD_THREADS CHATLLM_SOURCE_ARCHIVE

.PHONY: setup system-packages python-packages engine-source engines engine engine-fixed engine-asan engine-tsan \
        engine-stock-tsan models tiny-model seeded-model matrix-models samples test bench side-by-side docker-packages docker-test

setup: system-packages python-packages engine-source
	@if [ -f chatllm.cpp/CMakeLists.txt ]; then \
		$(MAKE) engines models; \
	else \
		echo "setup: no chatllm.cpp source, so libchatllm and the models were not built; the engine tests will be skipped."; \
		echo "setup: fix: git submodule update --init, or CHATLLM_SOURCE_ARCHIVE=/path/to/chatllm.cpp-4a4310e.tar.gz make setup"; \
	fi

system-packages:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		ffmpeg espeak-ng imagemagick cmake g++ make git patch ccache libjemalloc2 libtcmalloc-minimal4 >/dev/null

# this checkout, editable, with every extra of pyproject.toml: the asrbench command, the other engines, memray, what the
# model tools need, the example's library and the test suite's
EXTRAS ?= whisper,crispasr,trace,models,examples,dev
python-packages:
	$(PYTHON) -m pip install -q -e '.[$(EXTRAS)]'

# The pinned source: the submodule, or the archive CHATLLM_SOURCE_ARCHIVE names (sha256 checked against the pin).
engine-source:
	@tools/build_engine.sh source || true

engines: engine engine-fixed engine-asan engine-tsan

# The series before the patches that give every instance its own history encoder (patches/README.md): the sanitizer
# tests of several instances in one process must catch the faults on it
BEFORE_INSTANCES ?= 0008

# libchatllm as users build it, from the pinned source: chatllm.cpp/bindings/libchatllm.so
engine:
	@command -v ffmpeg >/dev/null || { echo "engine: ffmpeg is not installed (chatllm.cpp decodes audio with it): apt-get install ffmpeg"; exit 1; }
	tools/build_engine.sh build stock

# The same source with patches/*.patch applied to a copy: build/engines/fixed/chatllm.cpp/bindings/libchatllm.so
engine-fixed:
	tools/build_engine.sh build fixed

# With AddressSanitizer and LeakSanitizer, for tests/test_sanitizer.py and tests/test_matrix.py: stock and fixed with
# the model matrix's files, and fixed up to the patch before the instance patches with Qwen3-ASR's, in
# build/engines/*-asan/ (-O1 -g: tools/sanitize.cmake)
MATRIX_MODEL_FILES ?= models/qwen.cpp;models/qwen_asr.cpp;models/qwen3_5.cpp;models/gemma4.cpp;models/gemma.cpp;models/bce.cpp
engine-asan:
	SANITIZE_MODELS="$(MATRIX_MODEL_FILES)" tools/build_engine.sh build stock-asan
	SANITIZE_MODELS="$(MATRIX_MODEL_FILES)" tools/build_engine.sh build fixed-asan
	tools/build_engine.sh build fixed-$(BEFORE_INSTANCES)-asan

# With ThreadSanitizer, for tests/test_sanitizer.py: fixed, and fixed up to the patch before the instance patches
engine-tsan:
	tools/build_engine.sh build fixed-tsan
	tools/build_engine.sh build fixed-$(BEFORE_INSTANCES)-tsan

# The released library with ThreadSanitizer, for the races FINDINGS.md lists by site (not needed by the tests)
engine-stock-tsan:
	tools/build_engine.sh build stock-tsan

models: tiny-model seeded-model matrix-models

# One tiny seeded model per way chatllm.cpp's models own their position helpers (Qwen3, Qwen3-VL, Gemma 4, Qwen3.5):
# models/matrix/*.bin and rows.json, for tests/test_matrix.py and benchmarks/matrix.py
matrix-models:
	$(PYTHON) tools/make_matrix.py

# Qwen3-ASR at toy size (0.5 MB): models/tiny-qwen3-asr.bin for chatllm.cpp and, from the same checkpoint with the
# same weights, models/tiny-qwen3-asr.gguf for CrispASR
tiny-model:
	$(PYTHON) tools/make_model.py --size tiny --gguf

# Qwen3-ASR-0.6B's dimensions with seeded weights, q4_0 (540 MB): models/seeded-qwen3-asr-0.6b-q4_0.bin and .gguf
seeded-model:
	$(PYTHON) tools/make_model.py --size 0.6b --gguf

samples:
	samples/make_samples.sh

test:
	$(PYTHON) -m pytest -q -rs

bench:
	$(PYTHON) benchmarks/harness.py

# chatllm.cpp (stock and fixed) and CrispASR on the same seeded 0.6B weights, both ways, 1 and 2 threads
side-by-side:
	$(PYTHON) benchmarks/side_by_side.py

# The Docker route for real: a daemon (started and stopped here if none runs), the base image (a local stand-in where no
# registry is reachable), docker build of the Dockerfile, and the README's docker run with the tiny model, stock and
# fixed library, results checked on the host. Not part of make test: see the README's Docker section for why.
docker-test: docker-packages
	tools/docker_test.sh

# What docker-test needs on the host, installed as make setup installs its own: Docker (daemon and client) and
# debootstrap, which builds the base image's stand-in where no registry is reachable
docker-packages:
	@command -v docker >/dev/null && command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap \
			>/dev/null; }
