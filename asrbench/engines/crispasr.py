"""Qwen3-ASR through CrispASR, a second ggml runtime: the `crispasr` package from PyPI (its wheel ships
libcrispasr.so), on a GGUF that tools/gguf_from_checkpoint.py writes from the same checkpoint as the chatllm.cpp file.

recreate: `Session(path, n_threads)` → transcribe → `close()` per request; restart: one Session reused. A Session keeps
nothing between transcriptions that changes the next one: every call recomputes the mel, the encoder and the prompt,
sizes the KV cache to at least what it needs and only rewinds it (kv_reset sets the used length to 0), then decodes
greedily; what stays are buffers (the KV cache, the two schedulers' compute buffers, the audio tower opened on the
first call). See describe()["state_between_calls"] for where in CrispASR's source.
"""

import importlib.util
import os
import struct
import time
from pathlib import Path

from .. import audio
from .base import EngineError, Transcription

PACKAGE = "crispasr==0.8.45"
ARCHITECTURES = ("qwen3asr", "qwen3_asr", "qwen3-asr")  # general.architecture values CrispASR maps to its qwen3 backend

# Read from CrispASR's source (v0.8.29, github CrispStrobe/CrispASR 72d3c389, the newest snapshot to hand) and checked
# on the 0.8.45 wheel; file:line are in that snapshot.
STATE_BETWEEN_CALLS = {
    "recomputed_every_call": "mel, encoder, prompt tokens and embeddings, prefill, greedy decode "
                             "(src/crispasr_c_api.cpp:5892-6107)",
    "kv_cache": "kept; grown when a prompt needs more (qwen3_asr_kv_init, src/qwen3_asr.cpp:1820-1834), "
                "rewound without clearing before each call (qwen3_asr_kv_reset, src/qwen3_asr.cpp:1896-1899; "
                "called at src/crispasr_c_api.cpp:5994); only positions written by this call are read",
    "compute_buffers": "kept: the LLM's ggml_backend_sched (src/qwen3_asr.cpp:1576-1583) and the audio tower's "
                       "(crisp_audio/src/audio_tower.cpp:664), reset per graph and grown to the largest graph seen",
    "audio_tower": "opened lazily by the first transcribe of a Session, which maps the GGUF a second time "
                   "(qwen3_asr_get_audio, src/qwen3_asr.cpp:607-621); freed by close()",
    "decoding": "greedy argmax, temperature 0 unless set_temperature (core/greedy_decode.h)",
}
TTFT_NOT_MEASURED = ("libcrispasr calls token callbacks only after the whole decode has finished "
                     "(_fire_token_callbacks, src/crispasr_c_api.cpp:6096), so no callback marks the first token")


class GGUFError(Exception):
    """Not a GGUF file, or one this engine cannot read; the message says which."""


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def gguf_metadata(path, wanted=("general.architecture", "general.name", "asrbench.seeded")) -> dict:
    """The wanted scalar keys of a GGUF file's header, read without the tensor data (arrays are skipped).

    GGUF: b'GGUF', u32 version, u64 tensor count, u64 key count, then per key a string (u64 length, bytes), a u32
    type and the value."""
    found = {}
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] != b"GGUF":
            raise GGUFError(f"{path} is not a GGUF file")
        version, _tensors, keys = struct.unpack("<IQQ", head[4:24])
        if version < 2:
            raise GGUFError(f"{path} is GGUF version {version}; CrispASR reads version 2 and later")

        def read(fmt):
            size = struct.calcsize(fmt)
            data = f.read(size)
            if len(data) < size:
                raise GGUFError(f"{path} ends inside its header")
            return struct.unpack(fmt, data)[0]

        def string():
            return f.read(read("<Q")).decode("utf-8", errors="replace")

        def skip(kind):
            if kind == _STRING:
                f.seek(read("<Q"), 1)
            elif kind == _ARRAY:
                inner, count = read("<I"), read("<Q")
                if inner == _STRING:
                    for _ in range(count):
                        f.seek(read("<Q"), 1)
                else:
                    f.seek(struct.calcsize(_SCALARS[inner]) * count, 1)
            else:
                f.seek(struct.calcsize(_SCALARS[kind]), 1)

        for _ in range(keys):
            key, kind = string(), read("<I")
            if key in wanted and kind == _STRING:
                found[key] = string()
            elif key in wanted and kind in _SCALARS:
                found[key] = read(_SCALARS[kind])
            elif kind in _SCALARS or kind in (_STRING, _ARRAY):
                skip(kind)
            else:
                raise GGUFError(f"{path}: unknown GGUF value type {kind} for {key}")
            if len(found) == len(wanted):
                break
    return found


def seeded_model(path) -> dict | None:
    """For a GGUF written from tools/make_model.py's seeded checkpoint: its size and seed (the `asrbench.seeded` key,
    which mirrors the `asrbench_seeded` entry in the chatllm.cpp file's config); else None."""
    try:
        return seeded_from(gguf_metadata(path))
    except (OSError, GGUFError):
        return None


def seeded_from(metadata: dict) -> dict | None:
    """seeded_model() of a header gguf_metadata() has already read."""
    import json

    value = metadata.get("asrbench.seeded")
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def package_dir() -> Path | None:
    """Where the crispasr package is installed, found without importing it (which would load its native library)."""
    spec = importlib.util.find_spec("crispasr")
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


class CrispASREngine:
    """Qwen3-ASR on CrispASR's Session API."""

    name = "crispasr"

    def __init__(self, model: str, threads: int, language: str, max_new_tokens: int | None, decoding: str = "greedy"):
        # libcrispasr loads OpenBLAS, which starts a thread per core unless told otherwise when it loads: the run's
        # thread count holds for it too.
        self.openblas_before = os.environ.get("OPENBLAS_NUM_THREADS")
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
        try:
            import crispasr
        except ImportError:
            raise EngineError("crispasr is not installed: pip install -e '.[crispasr]'") from None
        self.crispasr = crispasr
        self.model, self.threads, self.language = model, threads, language
        self.max_new_tokens = max_new_tokens or 0  # 0: CrispASR's own bound, 512 tokens
        self.decoding_mode = decoding
        self.samples: dict[str, object] = {}
        self.audio_facts: dict[str, dict] = {}

    def pcm(self, path: Path):
        """The audio's samples from the project's one decode (asrbench.audio), made once per file."""
        import numpy as np

        key = str(path)
        if key not in self.samples:
            try:
                raw = audio.decode(path)
            except audio.DecodeError as e:
                raise EngineError(str(e)) from None
            self.samples[key] = np.frombuffer(raw, dtype=np.float32)
            self.audio_facts[key] = audio.describe(raw)
        return self.samples[key]

    def create(self):
        try:
            session = self.crispasr.Session(self.model, n_threads=self.threads)
        except RuntimeError as e:
            raise EngineError(f"CrispASR could not open {self.model}: {e}") from None
        session.set_max_new_tokens(self.max_new_tokens)
        if self.decoding_mode == "greedy":
            session.set_temperature(0.0)  # its default already; said explicitly, as chatllm.cpp gets -t 0
        return session

    def transcribe(self, session, path: Path) -> Transcription:
        samples = self.pcm(Path(path))  # decoded before this request's clock starts
        language = self.language if self.language and self.language.lower() not in ("auto", "none") else None
        started = time.perf_counter()
        segments = session.transcribe(samples, sample_rate=audio.SAMPLE_RATE, language=language)
        returned = time.perf_counter()
        text = "".join(segment.text for segment in segments)
        # the whole transcript arrives at once: no first-token time, no streaming speed
        return Transcription(text, returned - started, None, len(text), len(segments), None, True)

    def restart(self, session) -> None:
        """A Session has no conversation to reset: the next transcribe rewinds the KV cache itself."""

    def destroy(self, session) -> int:
        session.close()  # frees the contexts and unmaps the weights now, not when Python collects the object
        return 0

    def counters(self) -> dict:
        return {}

    def describe(self) -> dict:
        library = package_dir()
        return {
            "engine": self.name,
            "package": f"crispasr=={getattr(self.crispasr, '__version__', '?')}",
            "library": str(library / "libcrispasr.so") if library else None,
            "model": self.model,
            "backend": self.crispasr.detect_backend_from_gguf(self.model),
            "threads": self.threads,
            "openblas_num_threads": {"value": os.environ["OPENBLAS_NUM_THREADS"], "set_by": "asrbench (the run's threads)",
                                     "before": self.openblas_before},
            "crispasr_environment": {k: v for k, v in os.environ.items() if k.startswith(("CRISPASR_", "CRISP_AUDIO_"))},
            "language": self.language,
            "max_new_tokens": self.max_new_tokens or "CrispASR's default (512)",
            "decoding": {"requested": self.decoding_mode, "sampler": "greedy", "temperature": 0.0,
                         "options": ["set_temperature(0)"] if self.decoding_mode == "greedy" else [],
                         "deterministic": True},
            "audio": {"decoded_by": "asrbench.audio, once per file, outside the measured request", **{
                path: facts for path, facts in self.audio_facts.items()}},
            "ttft": f"not measured: {TTFT_NOT_MEASURED}",
            "restart": "nothing to reset: the Session is reused as it is",
            "state_between_calls": STATE_BETWEEN_CALLS,
        }


def make_engine(context) -> "CrispASREngine":
    """The registered factory (asrbench.engines.registry): every file of the input set is decoded now, before anything
    is measured."""
    c = context.config
    engine = CrispASREngine(c.model, c.threads, c.language, c.max_new_tokens, c.decoding)
    for source in context.inputs:
        engine.pcm(Path(source))
    return engine
