"""A control engine whose memory behaviour is known: native memory from malloc in set amounts, so the tests
can prove that the instrument finds what is there and nothing else."""

import ctypes
import ctypes.util
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..memory import libc as _libc
from .base import StreamClock, Transcription, finish

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
    scratch_mb: float = 0.0         # per request, 4 threads in turn malloc this much each (64 KB pieces) and free it:
                                    # memory the allocator keeps, glibc in one arena per thread (see _scratch)
    spike_mb: float = 0.0           # per request, mapped and written, then unmapped before it returns: only a peak sees it
    load_ms: float = 5.0
    work_ms: float = 20.0
    text: str = "零九零零零七三三三一"
    wrong_instance: int = 0         # the instance created Nth (from 1) transcribes wrong text, as a shared state would
                                    # make it (0: every instance right)
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


# Native blocks come from C++ operator new (nothrow) and go back through operator delete, which call malloc and free
# through libstdc++'s own linkage, as an engine's C++ code allocates. A profiler sees them: memray patches every
# library's malloc and free entries, heaptrack preloads its own, and a preloaded allocator serves them. A ctypes
# pointer straight to libc's malloc would bypass all three (neither memray nor heaptrack records such a block).
_cxx = ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")
_new = _cxx._ZnwmRKSt9nothrow_t  # operator new(std::size_t, const std::nothrow_t&): null instead of an exception
_new.restype = ctypes.c_void_p
_new.argtypes = [ctypes.c_size_t, ctypes.c_void_p]
_NOTHROW = ctypes.addressof(ctypes.c_char.in_dll(_cxx, "_ZSt7nothrow"))
_delete = _cxx._ZdlPv  # operator delete(void*)
_delete.argtypes = [ctypes.c_void_p]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


class NativeBlock:
    """Memory from malloc (through C++ operator new), every page written so that it counts in RssAnon."""

    def __init__(self, mb: float):
        self.size = int(mb * 1024 * 1024)
        self.ptr = _new(self.size, _NOTHROW) if self.size else None
        if self.size and not self.ptr:
            raise MemoryError(f"operator new({self.size}) failed")
        if self.ptr:
            ctypes.memset(self.ptr, 0x5A, self.size)

    def free(self) -> None:
        if self.ptr:
            _delete(self.ptr)
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


SCRATCH_THREADS = 4
SCRATCH_PIECE = 64 * 1024  # below glibc's mmap threshold (128 KB at start), so pieces come from an arena


class SyntheticModel:
    def __init__(self, model: NativeBlock, number: int):
        self.model = model
        self.number = number  # the how-manieth instance this engine created, from 1
        self.clock = StreamClock()  # one per instance: instances in threads stream at the same time


class SyntheticEngine:
    name = "synthetic"

    def __init__(self, settings: SyntheticSettings):
        self.settings = settings
        self.random = random.Random(settings.seed)
        self.requests = 0
        self.leaked: list[NativeBlock] = []
        self.noise: MappedBlock | None = None
        self.pins: list[NativeBlock] = []
        self.created = 0
        self.lock = threading.Lock()  # the engine's own counters and blocks, shared by requests in threads

    def _leak(self, mb: float) -> None:
        if mb and not (self.settings.plateau_after and self.requests > self.settings.plateau_after):
            self.leaked.append(NativeBlock(mb))

    def create(self) -> SyntheticModel:
        time.sleep(self.settings.load_ms / 1000)
        with self.lock:
            self._leak(self.settings.create_leak_mb)
            self.created += 1
            number = self.created
        return SyntheticModel(NativeBlock(self.settings.model_mb), number)

    def transcribe(self, model: SyntheticModel, audio: Path) -> Transcription:
        s = self.settings
        clock = model.clock
        clock.start()
        with self.lock:
            self.requests += 1
            request = self.requests
            if request == s.crash_at:
                ctypes.string_at(0)  # a real segmentation fault, as a native engine would die
            if self.noise:
                self.noise.free()
            self.noise = MappedBlock(self.random.uniform(0, s.noise_mb)) if s.noise_mb else None
            self._leak(s.request_leak_mb)
        if request == s.hang_at:
            while True:
                time.sleep(3600)
        spike = MappedBlock(s.spike_mb) if s.spike_mb else None
        if s.scratch_mb:
            with self.lock:
                self._scratch(s.scratch_mb)
        text = s.text[::-1] if model.number == s.wrong_instance else s.text
        pieces = [text[i:i + 2] for i in range(0, len(text), 2)] or [""]
        for piece in pieces:
            time.sleep(s.work_ms / 1000 / len(pieces))  # sleeps without the GIL, as a native engine computes
            clock.chunk(piece)
        if spike:
            spike.free()
        if request != s.no_end_at:
            clock.end()
        return finish(clock, time.perf_counter())

    def _scratch(self, mb: float) -> None:
        """Work memory freed within the request that glibc keeps: SCRATCH_THREADS threads, all alive at once (so each
        gets an arena of its own), take turns to malloc `mb` in pieces, leave a small block above them (as engines leave
        small things behind) and free the pieces. The freed pieces sit below that block, so glibc cannot shrink the
        arena and keeps them resident: about SCRATCH_THREADS x mb after each request; with MALLOC_ARENA_MAX=2 the
        threads share two arenas and reuse each other's pieces (about 2 x mb); malloc_trim(0) returns them all. The
        small blocks are freed at the next request."""
        for pin in self.pins:
            pin.free()
        self.pins = []
        together, turn = threading.Barrier(SCRATCH_THREADS), threading.Lock()

        def work():
            together.wait()
            with turn:
                blocks = [NativeBlock(SCRATCH_PIECE / (1024 * 1024)) for _ in range(int(mb * 1024 * 1024) // SCRATCH_PIECE)]
                self.pins.append(NativeBlock(64 / (1024 * 1024)))
                for block in blocks:
                    block.free()

        threads = [threading.Thread(target=work, name=f"scratch-{i}") for i in range(SCRATCH_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def restart(self, model: SyntheticModel) -> None:
        with self.lock:
            self._leak(self.settings.restart_leak_mb)

    def destroy(self, model: SyntheticModel) -> int:
        model.model.free()
        return 0

    def counters(self) -> dict:
        return {}

    def describe(self) -> dict:
        return {"engine": self.name, "settings": self.settings.__dict__}


def settings_of(config) -> SyntheticSettings:
    """--synthetic, then each --engine-option (the same keys, each set by one of the two): ValueError names a bad one."""
    settings = SyntheticSettings.parse(config.synthetic)
    given = {item.partition("=")[0].strip() for item in (config.synthetic or "").split(",") if item.strip()}
    for key, value in (config.engine_options or {}).items():
        if "," in value:
            raise ValueError(f"synthetic setting {key} takes one value, got {value!r}")
        if key in given:
            raise ValueError(f"synthetic setting {key} is set by both --synthetic and --engine-option: give it once")
        parsed = SyntheticSettings.parse(f"{key}={value}")
        setattr(settings, key, getattr(parsed, key))
    return settings


def make_engine(context) -> SyntheticEngine:
    """The registered factory (asrbench.engines.registry)."""
    return SyntheticEngine(settings_of(context.config))
