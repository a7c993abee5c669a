"""Qwen3-ASR through chatllm.cpp's own Python binding (bindings/chatllm.py) and libchatllm.so."""

import atexit
import ctypes
import importlib.util
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .base import EngineError, StreamClock, finish, Transcription

MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "models"  # where a downloader spec (:qwen3-asr:0.6b) saves

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


