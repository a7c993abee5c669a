"""The public engine interface (docs/engines.md): what the benchmark is given, the steps it calls, the error an engine
raises, the stream clock stamped inside output callbacks, and the figures of one transcription.

An engine is made by a factory, factory(context) -> engine, in the worker process. The engine has four steps:
create() -> instance (load a model), transcribe(instance, path) -> str or Transcription (one input), restart(instance)
(forget the request, keep the model) and destroy(instance) (free it; may return a status code, 0 for success); and
optionally counters() -> dict (figures recorded with every iteration) and describe() -> dict (recorded once per way).
"""

import time
from dataclasses import dataclass, field

STEPS = ("create", "transcribe", "restart", "destroy")
OPTIONAL_STEPS = ("counters", "describe")


@dataclass(frozen=True)
class EngineContext:
    """What a factory is given: the --engine-option values (strings, as typed), the run's threads and language, the
    input files in the order of the input set, and the whole run configuration (asrbench.config.RunConfig; the
    built-in engines read their own flags from it)."""

    options: dict
    threads: int
    language: str
    inputs: tuple
    config: object = None


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
    """One input's result. An engine that returns a plain str gets one made for it: request_s timed around the call,
    no time to first token, one chunk."""

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


def from_text(text: str, request_s: float) -> Transcription:
    """The figures of a transcript returned whole: nothing streamed, so no time to first token and no speed."""
    return Transcription(text, request_s, None, len(text), 1, None, True)
