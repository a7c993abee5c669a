# make setup   installs everything (system packages, Python packages, engine, tiny model where the source is here)
# make test    runs the test suite
PYTHON ?= python3
CHATLLM_DIR ?= chatllm.cpp
BUILD_THREADS ?= $(shell nproc 2>/dev/null || echo 2)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages python-packages submodule engine tiny-model samples test bench

setup: system-packages python-packages submodule
	@if [ -f "$(CHATLLM_DIR)/CMakeLists.txt" ]; then \
		$(MAKE) engine tiny-model; \
	else \
		echo "setup: chatllm.cpp source not present, so libchatllm and the tiny model were not built;"; \
		echo "setup: the engine tests will be skipped (git submodule update --init, then make setup again)."; \
	fi

system-packages:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		ffmpeg espeak-ng cmake g++ make git >/dev/null

python-packages:
	$(PYTHON) -m pip install -q -r requirements-dev.txt -r requirements-whisper.txt

submodule:
	@git submodule update --init 2>/dev/null || echo "setup: could not fetch the chatllm.cpp submodule (offline?)"

engine:
	@command -v ffmpeg >/dev/null || { echo "engine: ffmpeg is not installed (chatllm.cpp decodes audio with it): apt-get install ffmpeg"; exit 1; }
	@[ -f "$(CHATLLM_DIR)/CMakeLists.txt" ] || { echo "engine: no chatllm.cpp source in $(CHATLLM_DIR): git submodule update --init"; exit 1; }
	cmake -S "$(CHATLLM_DIR)" -B "$(CHATLLM_DIR)/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$(CHATLLM_DIR)/build" --target libchatllm -j $(BUILD_THREADS)
	@ls -l "$(CHATLLM_DIR)/bindings/libchatllm.so"

tiny-model:
	$(PYTHON) -m pip install -q -r requirements-fixture.txt
	$(PYTHON) tools/make_tiny_model.py --chatllm-dir "$(CHATLLM_DIR)"

samples:
	samples/make_samples.sh

test:
	$(PYTHON) -m pytest -q -rs

bench:
	$(PYTHON) benchmarks/harness.py
