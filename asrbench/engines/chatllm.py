"""Qwen3-ASR through chatllm.cpp's own Python binding (bindings/chatllm.py) and libchatllm.so."""

import collections
import atexit
import ctypes
import importlib.util
import json
import os
import re
import struct
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .base import EngineError, StreamClock, finish, Transcription

from ..paths import PROJECT_DIR
MODELS_DIR = PROJECT_DIR / "models"  # where a downloader spec (:qwen3-asr:0.6b) saves
DEFAULT_VARIANTS_DIR = PROJECT_DIR / "build" / "engines"  # tools/build_engine.sh builds every library but stock here
# Where the variants are when they were not built in this project folder: the Docker image builds them into itself
# (/opt/asrbench/build/engines) while the project is the mounted workspace, whose build/ is the host's.
VARIANTS_ENV = "CHATLLM_VARIANTS_DIR"
MESSAGES_KEPT = 50  # the engine's last log and meta lines kept (see ChatLLMEngine.messages)
# stock: the pinned chatllm.cpp as users build it; fixed: with patches/*.patch (tools/build_engine.sh build fixed);
# fixed-NAME: with a subset of the patches, built to measure each patch (PATCHES=... tools/build_engine.sh build fixed-NAME)
LIBRARIES = ("stock", "fixed")


def variants_dir() -> Path:
    """The folder holding <variant>/chatllm.cpp for every library but stock: $CHATLLM_VARIANTS_DIR, else build/engines."""
    raw = os.environ.get(VARIANTS_ENV, "").strip()
    return Path(raw) if raw else DEFAULT_VARIANTS_DIR


def known_library(library: str) -> bool:
    return library in LIBRARIES or (library.startswith("fixed-") and library_path(library_dir(library, "")).is_file())


def library_dir(library: str, stock_dir) -> Path:
    """The chatllm.cpp folder (source, bindings/ with the library) of a library variant."""
    return Path(stock_dir) if library == "stock" else variants_dir() / library / "chatllm.cpp"


def library_path(chatllm_dir: Path) -> Path:
    return Path(chatllm_dir) / "bindings" / "libchatllm.so"


def build_manifest(chatllm_dir) -> dict | None:
    """What tools/build_engine.sh recorded about the library in this folder: variant, source, patches, sha256."""
    try:
        return json.loads((Path(chatllm_dir) / "build" / "asrbench-variant.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_metadata(path: str) -> dict:
    """The JSON a chatllm.cpp model file carries in its header (config.json, tokenizer config, model name), or {}.

    The header is b"ggmm", then four int32: version, the offset where the metadata ends, and two more; the metadata
    (NUL-padded JSON) starts at byte 20."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
            if len(head) < 20 or head[:4] != b"ggmm":
                return {}
            end = struct.unpack("<i", head[8:12])[0]
            if not 20 < end < 64 << 20:
                return {}
            return json.loads(f.read(end - 20).rstrip(b"\0").decode("utf-8"))
    except (OSError, ValueError):
        return {}


def seeded_model(path: str) -> dict | None:
    """For a model written by tools/make_model.py from seeded random weights: its size and seed; else None."""
    config = model_metadata(path).get("config.json")
    return config.get("asrbench_seeded") if isinstance(config, dict) else None


def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_binding(chatllm_dir: Path):
    """Import chatllm.cpp's own bindings/chatllm.py, the module users drive the engine with."""
    chatllm_dir = Path(chatllm_dir).resolve()
    # chatllm.py imports scripts/model_downloader.py, which finds models.json through scripts/binding.py,
    # whose paths are computed from sys.argv[0]: right only when the script runs from bindings/.
    if "binding" not in sys.modules:
        paths = _import_file("binding", chatllm_dir / "scripts" / "binding.py")
        paths.PATH_APP = str(chatllm_dir)
        paths.PATH_BINDS = str(chatllm_dir / "bindings")
        paths.PATH_SCRIPTS = str(chatllm_dir / "scripts")
    if str(chatllm_dir / "scripts") not in sys.path:
        sys.path.append(str(chatllm_dir / "scripts"))
    return _import_file("chatllm", chatllm_dir / "bindings" / "chatllm.py")


SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")

# Decoding at chatllm.cpp 4a4310e, for a model started through libchatllm (chatllm_start parses the same options as
# main: src/main.cpp:1801-1809): sampling "top_p" (src/main.cpp:40), top_k 20, top_p 0.7, temperature 0.7
# (src/main.cpp:73-75), seed -1 = a new random seed for every request (src/main.cpp:82, src/chat.h:314-320; the
# sampler is made per generate() call, src/models.cpp:955). do_sample is temperature > 0 (src/main.cpp:960), and
# SamplerFactory (src/models.cpp:881-897) then picks TopPSampler, so the default samples; Qwen3-ASR
# (models/qwen.cpp:2975-3210) changes none of it. `-t 0` gives GreedySampler (src/main.cpp:211).
ENGINE_DEFAULT_DECODING = {"sampling": "top_p", "temperature": 0.7, "top_k": 20, "top_p": 0.7, "tfs_z": 0.95,
                           "seed": -1, "beam_size": -1}
DECODING_OPTIONS = {"greedy": ["-t", "0"], "engine-default": []}
_DECODING_FLAGS = {"--sampling": ("sampling", str), "--temp": ("temperature", float), "-t": ("temperature", float),
                   "--top-k": ("top_k", int), "-k": ("top_k", int), "--top-p": ("top_p", float), "-q": ("top_p", float),
                   "--tfs-z": ("tfs_z", float), "--seed": ("seed", int), "--beam-size": ("beam_size", int)}


def _decoding_flag(arg: str):
    return _DECODING_FLAGS.get(arg.replace("_", "-"))  # '-' and '_' alike, as utils::is_same_command_option has it


def decoding_settings(params: list[str], decoding: str = "engine-default", engine_args: list[str] = ()) -> dict:
    """The decoding chatllm.cpp will use for these options, read as chatllm.cpp reads them: in order, the last value of
    a repeated option wins. engine_args are the user's --engine-args: they come last, so they win over --decoding."""
    settings = dict(ENGINE_DEFAULT_DECODING)
    for flag, value in zip(params, params[1:]):
        if _decoding_flag(flag):
            key, kind = _decoding_flag(flag)
            try:
                settings[key] = kind(value)
            except ValueError:
                settings[key] = value  # chatllm.cpp refuses to start on it; recorded as given
    samples = isinstance(settings["temperature"], float) and settings["temperature"] > 0 and settings["sampling"] != "greedy"
    engine_args = list(engine_args)
    return {
        "requested": decoding,
        "options": DECODING_OPTIONS.get(decoding, []),
        "sampler": settings["sampling"] if samples else "greedy",
        **{key: settings[key] for key in ("temperature", "top_k", "top_p", "seed")},
        **({"beam_size": settings["beam_size"]} if isinstance(settings["beam_size"], int) and settings["beam_size"] > 0 else {}),
        "deterministic": not samples or (isinstance(settings["seed"], int) and settings["seed"] > 0),
        "from_engine_args": [arg for i, flag in enumerate(engine_args) if _decoding_flag(flag) for arg in engine_args[i:i + 2]],
    }


def safe_copy(audio: Path) -> Path:
    """A private copy of the audio under a name made only of letters, digits, '_', '-', '.' and '/'."""
    folder = Path(tempfile.mkdtemp(prefix="asrbench-"))
    atexit.register(shutil.rmtree, folder, True)
    suffix = "".join(c for c in Path(audio).suffix if c.isalnum() or c == ".")[:10]
    target = folder / f"audio{suffix}"
    shutil.copyfile(audio, target)
    if not SAFE_PATH.match(str(target)):
        raise EngineError(f"temporary folder {folder} has characters unsafe in a shell command: set TMPDIR to a plain path")
    return target


class ChatLLMEngine:
    """Qwen3-ASR through chatllm.cpp's Python binding and libchatllm.so."""

    name = "chatllm"

    def __init__(self, chatllm_dir, model: str, threads: int, context_length: int, language: str,
                 extra_args: list[str] = (), decoding: str = "greedy", max_new_tokens: int | None = None):
        self.binding = load_binding(chatllm_dir)
        self.lib = self.binding.LibChatLLM(str(library_path(chatllm_dir).parent), model_storage=str(MODELS_DIR))
        # The patched binding (patches/*-bindings-*.patch) has ChatLLM.destroy(), which also drops the object from the
        # binding's registry; the released binding has none, so the C API's chatllm_destroy is called directly.
        self.release_via = "ChatLLM.destroy()" if hasattr(self.binding.ChatLLM, "destroy") else "chatllm_destroy (C API)"
        destroy = self.lib._lib.chatllm_destroy
        destroy.argtypes = [ctypes.c_void_p]
        destroy.restype = ctypes.c_int
        self._destroy = destroy
        self.params = ["-m", model, "-n", str(threads), "-c", str(context_length),
                       "--format", "chat", "--set", "language", language, "--multimedia_file_tags", "{{", "}}",
                       *(["--max_new_tokens", str(max_new_tokens)] if max_new_tokens else []),
                       *DECODING_OPTIONS[decoding], *extra_args]
        self.decoding = decoding_settings(self.params, decoding, list(extra_args))
        self.safe_copies: dict[str, Path] = {}
        self._copying = threading.Lock()  # requests in threads (--concurrency) share the copies
        # the engine's last log and meta lines (model banner, warnings), for a look in a debugger: bounded, because
        # every create prints some, and a list would grow by each instance's lines in the very process being measured
        self.messages: collections.deque[str] = collections.deque(maxlen=MESSAGES_KEPT)
        self.recorder = self._recorder_class()

    def _recorder_class(self):
        engine = self

        class Recorder(self.binding.ChatLLM):
            """The binding's ChatLLM with its output callbacks timestamped instead of printed, each instance on a clock of
            its own: instances in threads stream at the same time."""

            def __init__(self, *args, **kwargs):
                self.clock = StreamClock()  # before the binding starts the model, which may call back already
                super().__init__(*args, **kwargs)

            def callback_print(self, s: str) -> None:
                self.clock.chunk(s)

            def callback_end(self) -> None:
                self.clock.end()

            def callback_print_meta(self, s: str) -> None:
                engine.messages.append(s)

            def callback_print_log(self, s: str) -> None:
                engine.messages.append(s)

        return Recorder

    def create(self):
        try:
            return self.recorder(self.lib, list(self.params))
        except Exception as e:  # the binding raises bare Exception for a failed start
            raise EngineError(f"chatllm.cpp could not load the model: {e}") from None

    def transcribe(self, llm, audio: Path) -> Transcription:
        # An ASR model takes only text input, with the audio as a {{audio:PATH}} tag, and chatllm.cpp pastes
        # PATH into an ffmpeg shell command: it only ever sees a copy whose path has no shell-special character.
        with self._copying:
            if str(audio) not in self.safe_copies:
                self.safe_copies[str(audio)] = safe_copy(audio)
        llm.clock.start()
        llm.chat("{{audio:" + str(self.safe_copies[str(audio)]) + "}}")
        return finish(llm.clock, time.perf_counter())

    def restart(self, llm) -> None:
        llm.restart()

    def destroy(self, llm) -> int:
        if self.release_via == "ChatLLM.destroy()":
            return int(llm.destroy())
        return int(self._destroy(llm._chat))

    def counters(self) -> dict:
        """Objects the binding keeps forever in its class-level registry (one per ChatLLM ever started)."""
        return {"binding_objects": len(self.binding.LibChatLLM._obj2id)}

    def describe(self) -> dict:
        return {"engine": self.name, "params": self.params, "decoding": self.decoding, "release_via": self.release_via}


def make_engine(context) -> ChatLLMEngine:
    """The registered factory (asrbench.engines.registry): chatllm.cpp with the run's flags."""
    c = context.config
    return ChatLLMEngine(c.chatllm_dir, c.model, c.threads, c.context_length, c.language, c.engine_args, c.decoding,
                         c.max_new_tokens)
