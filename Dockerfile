# The benchmark with libchatllm built from the pinned chatllm.cpp submodule.
#   git submodule update --init
#   docker build --build-arg BUILD_THREADS=4 -t qwen3-asr-memory .
#   docker run --rm -v "$PWD":/workspace qwen3-asr-memory python run_comparison.py --iterations 100
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg cmake g++ make git \
 && rm -rf /var/lib/apt/lists/*

COPY requirements.txt /opt/asrbench/requirements.txt
RUN pip install --no-cache-dir -r /opt/asrbench/requirements.txt

# The same build as `make engine`: cmake target libchatllm, which lands in chatllm.cpp/bindings/.
ARG BUILD_THREADS=2
COPY chatllm.cpp /opt/chatllm.cpp
RUN test -f /opt/chatllm.cpp/CMakeLists.txt || { echo "chatllm.cpp is empty: run git submodule update --init first"; exit 1; } \
 && cmake -S /opt/chatllm.cpp -B /opt/chatllm.cpp/build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /opt/chatllm.cpp/build --target libchatllm -j "${BUILD_THREADS}" \
 && test -f /opt/chatllm.cpp/bindings/libchatllm.so

# The workspace (this repository, with models/ and results/) is mounted here; the engine comes from the image.
ENV CHATLLM_DIR=/opt/chatllm.cpp
WORKDIR /workspace
CMD ["python", "run_comparison.py"]
