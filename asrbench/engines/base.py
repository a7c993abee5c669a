"""What every engine shares: the error it raises, the stream clock stamped inside output callbacks, and the
figures of one transcription.

Every engine offers the same four steps: create (load a model), transcribe, restart, destroy.
"""

import time
from dataclasses import dataclass, field


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
