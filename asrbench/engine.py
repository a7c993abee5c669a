"""Engines the benchmark drives: chatllm.cpp through its own Python binding, and a synthetic control.

Every engine offers the same four steps: create (load a model), transcribe, restart, destroy.
"""

import atexit
import ctypes
import hashlib
import importlib.util
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # where a downloader spec (:qwen3-asr:0.6b) saves


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EngineError(RuntimeError):
    """The engine refused or failed a step; the message says which and why."""


@dataclass
class StreamClock:
    """Timestamps taken inside the engine's output callback, as the chunks arrive."""

    started: float = 0.0
    first_chunk: float | None = None
    last_chunk: float | None = None
    ended_at: float | None = None
    first_chunk_chars: int = 0
    chunks: list = field(default_factory=list)

    def start(self) -> None:
        self.__init__()
        self.started = time.perf_counter()

    def chunk(self, text: str) -> None:
        now = time.perf_counter()
        if self.first_chunk is None:
            self.first_chunk = now
            self.first_chunk_chars = len(text)
        self.last_chunk = now
        self.chunks.append(text)

    def end(self) -> None:
        self.ended_at = time.perf_counter()


@dataclass
class Transcription:
    text: str
    request_s: float
    ttft_s: float | None
    chars: int
    chunks: int
    chars_per_s: float | None
    ended: bool


def finish(clock: StreamClock, returned_at: float) -> Transcription:
    """Turn the callback timestamps of one request into its latency and speed figures."""
    text = "".join(clock.chunks)
    ttft = None if clock.first_chunk is None else clock.first_chunk - clock.started
    after_first = len(text) - clock.first_chunk_chars
    span = None if clock.first_chunk is None else clock.last_chunk - clock.first_chunk
    speed = after_first / span if span and after_first > 0 else None
    return Transcription(text, returned_at - clock.started, ttft, len(text), len(clock.chunks), speed,
                         clock.ended_at is not None)


# ---------------------------------------------------------------- chatllm.cpp

def library_path(chatllm_dir: Path) -> Path:
    return Path(chatllm_dir) / "bindings" / "libchatllm.so"


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
                 extra_args: list[str] = ()):
        self.binding = load_binding(chatllm_dir)
        self.lib = self.binding.LibChatLLM(str(library_path(chatllm_dir).parent), model_storage=str(MODELS_DIR))
        destroy = self.lib._lib.chatllm_destroy  # the C API has it; the Python class does not
        destroy.argtypes = [ctypes.c_void_p]
        destroy.restype = ctypes.c_int
        self._destroy = destroy
        self.params = ["-m", model, "-n", str(threads), "-c", str(context_length),
                       "--format", "chat", "--set", "language", language, "--multimedia_file_tags", "{{", "}}",
                       *extra_args]
        self.safe_copies: dict[str, Path] = {}
        self.clock = StreamClock()
        self.messages: list[str] = []
        self.recorder = self._recorder_class()

    def _recorder_class(self):
        engine = self

        class Recorder(self.binding.ChatLLM):
            """The binding's ChatLLM with its output callbacks timestamped instead of printed."""

            def callback_print(self, s: str) -> None:
                engine.clock.chunk(s)

            def callback_end(self) -> None:
                engine.clock.end()

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
        if str(audio) not in self.safe_copies:
            self.safe_copies[str(audio)] = safe_copy(audio)
        self.clock.start()
        llm.chat("{{audio:" + str(self.safe_copies[str(audio)]) + "}}")
        return finish(self.clock, time.perf_counter())

    def restart(self, llm) -> None:
        llm.restart()

    def destroy(self, llm) -> int:
        return int(self._destroy(llm._chat))

    def counters(self) -> dict:
        """Objects the binding keeps forever in its class-level registry (one per ChatLLM ever started)."""
        return {"binding_objects": len(self.binding.LibChatLLM._obj2id)}

    def describe(self) -> dict:
        return {"engine": self.name, "params": self.params}


# ---------------------------------------------------------------- synthetic control

@dataclass
class SyntheticSettings:
    """A control engine whose memory behaviour is known: what it leaks is what the tests expect to see."""

    model_mb: float = 20.0          # allocated at create, freed at destroy
    create_leak_mb: float = 0.0     # allocated at create, never freed
    request_leak_mb: float = 0.0    # allocated per transcription, never freed
    restart_leak_mb: float = 0.0    # allocated per restart, never freed
    noise_mb: float = 0.0           # a random 0..noise_mb buffer held from one request to the next
    plateau_after: int = 0          # leaks stop after this many requests (0: never)
    crash_at: int = 0               # SIGSEGV during this request (0: never)
    hang_at: int = 0                # never return from this request (0: never)
    no_end_at: int = 0              # return from this request without the end callback (0: never)
    load_ms: float = 5.0
    work_ms: float = 20.0
    text: str = "零九零零零七三三三一"
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> "SyntheticSettings":
        """'request_leak_mb=0.5,noise_mb=2' -> settings; unknown keys or bad numbers raise ValueError."""
        settings = cls()
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f"unknown synthetic setting {item!r} (known: {', '.join(cls.__dataclass_fields__)})")
            current = getattr(settings, key)
            try:
                setattr(settings, key, type(current)(value.strip()))
            except ValueError:
                raise ValueError(f"synthetic setting {key} needs a {type(current).__name__}, got {value!r}") from None
            if isinstance(current, (int, float)) and getattr(settings, key) < 0:
                raise ValueError(f"synthetic setting {key} must not be negative")
        return settings


_libc = ctypes.CDLL("libc.so.6")
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


class NativeBlock:
    """Memory from libc malloc, every page written so that it counts in RssAnon."""

    def __init__(self, mb: float):
        self.size = int(mb * 1024 * 1024)
        self.ptr = _libc.malloc(self.size) if self.size else None
        if self.size and not self.ptr:
            raise MemoryError(f"malloc({self.size}) failed")
        if self.ptr:
            ctypes.memset(self.ptr, 0x5A, self.size)

    def free(self) -> None:
        if self.ptr:
            _libc.free(self.ptr)
            self.ptr = None


class MappedBlock:
    """Anonymous pages straight from mmap, written so they count: noise that never fragments the malloc heap."""

    def __init__(self, mb: float):
        self.size = int(mb * 1024 * 1024)
        self.ptr = None
        if self.size:
            ptr = _libc.mmap(None, self.size, 0x3, 0x22, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
            if ptr in (None, ctypes.c_void_p(-1).value):
                raise MemoryError(f"mmap({self.size}) failed")
            self.ptr = ptr
            ctypes.memset(ptr, 0x5A, self.size)

    def free(self) -> None:
        if self.ptr:
            _libc.munmap(self.ptr, self.size)
            self.ptr = None


class SyntheticModel:
    def __init__(self, model: NativeBlock):
        self.model = model


class SyntheticEngine:
    name = "synthetic"

    def __init__(self, settings: SyntheticSettings):
        self.settings = settings
        self.random = random.Random(settings.seed)
        self.requests = 0
        self.leaked: list[NativeBlock] = []
        self.noise: MappedBlock | None = None
        self.clock = StreamClock()

    def _leak(self, mb: float) -> None:
        if mb and not (self.settings.plateau_after and self.requests > self.settings.plateau_after):
            self.leaked.append(NativeBlock(mb))

    def create(self) -> SyntheticModel:
        time.sleep(self.settings.load_ms / 1000)
        self._leak(self.settings.create_leak_mb)
        return SyntheticModel(NativeBlock(self.settings.model_mb))

    def transcribe(self, model: SyntheticModel, audio: Path) -> Transcription:
        s = self.settings
        self.requests += 1
        self.clock.start()
        if self.requests == s.crash_at:
            ctypes.string_at(0)  # a real segmentation fault, as a native engine would die
        if self.requests == s.hang_at:
            while True:
                time.sleep(3600)
        if self.noise:
            self.noise.free()
        self.noise = MappedBlock(self.random.uniform(0, s.noise_mb)) if s.noise_mb else None
        self._leak(s.request_leak_mb)
        pieces = [s.text[i:i + 2] for i in range(0, len(s.text), 2)] or [""]
        for piece in pieces:
            time.sleep(s.work_ms / 1000 / len(pieces))
            self.clock.chunk(piece)
        if self.requests != s.no_end_at:
            self.clock.end()
        return finish(self.clock, time.perf_counter())

    def restart(self, model: SyntheticModel) -> None:
        self._leak(self.settings.restart_leak_mb)

    def destroy(self, model: SyntheticModel) -> int:
        model.model.free()
        return 0

    def counters(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {"engine": self.name, "settings": self.settings.__dict__}
