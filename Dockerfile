# The benchmark with libchatllm built from the pinned chatllm.cpp source: the stock library as users build it, and
# the fixed one (patches/*.patch applied to a copy), both by tools/build_engine.sh, as `make engine engine-fixed` does.
#   git submodule update --init      (or: CHATLLM_SOURCE_ARCHIVE=/path/to/chatllm.cpp-4a4310e.tar.gz tools/build_engine.sh source)
#   docker build --build-arg BUILD_THREADS=4 -t qwen3-asr-memory .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace qwen3-asr-memory python run_comparison.py --iterations 100
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace qwen3-asr-memory python run_comparison.py --library fixed
# Verified by tools/docker_test.sh (make docker-test): see the README's Docker section.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg cmake g++ make git patch \
 && rm -rf /var/lib/apt/lists/*

# The runtime dependencies of pyproject.toml (the workspace's code is mounted, not installed)
COPY pyproject.toml /opt/asrbench/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/opt/asrbench/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /opt/asrbench/requirements.txt \
 && pip install --no-cache-dir -r /opt/asrbench/requirements.txt

# matplotlib's config and font cache, built once and writable by any user (docker run --user has no home directory)
ENV MPLCONFIGDIR=/var/cache/matplotlib
RUN mkdir -p "$MPLCONFIGDIR" && python -c "import matplotlib.font_manager" && chmod -R a+rwX "$MPLCONFIGDIR" \
 && chmod 1777 "$MPLCONFIGDIR"

# ENGINES: the libchatllm variants to build, by tools/build_engine.sh's names (stock, fixed, fixed-tsan, ...).
ARG BUILD_THREADS=2
ARG ENGINES="stock fixed"
COPY tools/build_engine.sh tools/sanitize.cmake /opt/asrbench/tools/
COPY chatllm.cpp /opt/asrbench/chatllm.cpp
WORKDIR /opt/asrbench
# stock: chatllm.cpp/build -> chatllm.cpp/bindings/libchatllm.so. Object files are dropped, the libraries kept.
RUN test -f chatllm.cpp/CMakeLists.txt || { echo "chatllm.cpp is empty: run git submodule update --init (or tools/build_engine.sh source with CHATLLM_SOURCE_ARCHIVE) first"; exit 1; } \
 && case " $ENGINES " in *" stock "*) BUILD_THREADS=$BUILD_THREADS tools/build_engine.sh build stock \
      && find chatllm.cpp/build -name '*.o' -delete ;; esac
# the others, each a patched copy in build/engines/<variant>/chatllm.cpp; after the stock build, so that changing a
# patch rebuilds only these
COPY patches /opt/asrbench/patches
RUN for variant in $ENGINES; do \
      [ "$variant" = stock ] || { BUILD_THREADS=$BUILD_THREADS tools/build_engine.sh build "$variant" \
        && find "build/engines/$variant/chatllm.cpp/build" -name '*.o' -delete; } || exit 1; \
    done

# The workspace (this repository, with models/ and results/) is mounted here; the engines come from the image:
# stock from CHATLLM_DIR, the others (--library fixed) from CHATLLM_VARIANTS_DIR. No .pyc files are written into
# the mounted workspace.
ENV CHATLLM_DIR=/opt/asrbench/chatllm.cpp \
    CHATLLM_VARIANTS_DIR=/opt/asrbench/build/engines \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /workspace
CMD ["python", "run_comparison.py"]
