"""Command lines of run_comparison.py and run_asr.py."""

import argparse
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

from . import allocators, inputs, native_trace, report, results, text
from .config import (DEFAULT_AUDIO, DEFAULT_GGUF, DEFAULT_MODEL, PROJECT_DIR, WAYS, RunConfig, UsageError, check_output,
                     checked_int, env_int, validate)
from .engines import NAMES as ENGINES, EngineError, open_engine
from .engines.chatllm import DECODING_OPTIONS, library_dir
from .paths import shown
from .runner import compare_ways


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(name: str):
    def parse(raw):
        try:
            return checked_int(raw, name, 1, 10**7)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


DURATION_CAP = 10_000_000  # --duration without --iterations: a cap no 2-core run reaches in a day at 1 ms each


def duration(raw: str) -> float:
    """'90', '90s', '30m', '2h', '1h30m' -> seconds."""
    found = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", raw or "")
    if not raw or not found or not any(found.groups()):
        raise argparse.ArgumentTypeError(f"--duration must be a length of time such as 90s, 30m, 2h or 1h30m, got {raw!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def number(name: str):
    def parse(raw):
        try:
            return float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {raw!r}") from None
    return parse


def engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="chatllm", metavar="NAME|MODULE:CALLABLE|FILE.py[:CALLABLE]",
                        help=f"engine to drive: a registered name ({', '.join(ENGINES)}, or one an installed package "
                             f"registers), a factory module:callable, or a file path.py[:callable] (default callable "
                             f"make_engine; docs/engines.md). Default chatllm")
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option handed to the engine's factory as a string, repeatable; recorded in the results "
                             "(synthetic takes the keys of --synthetic)")
    parser.add_argument("--model", help=f"chatllm.cpp model file or downloader spec such as :qwen3-asr:0.6b "
                                        f"(default {shown(DEFAULT_MODEL)}); for --engine crispasr a "
                                        f"GGUF (default {shown(DEFAULT_GGUF)})")
    parser.add_argument("--audio", nargs="+", metavar="FILE|FOLDER",
                        help="audio to transcribe (anything ffmpeg reads): one file, several, or a folder (its audio "
                             f"files by name); each file's reference is NAME.txt beside it (default "
                             f"{shown(DEFAULT_AUDIO)})")
    parser.add_argument("--reference", help="reference transcript of a single --audio file (default: its name with .txt)")
    parser.add_argument("--threads", help="inference threads (default $INFERENCE_THREADS or the core count)")
    parser.add_argument("--context-length", help="context length (default $CONTEXT_LENGTH or 4096)")
    parser.add_argument("--language", help="language passed to the model (default $ASR_LANGUAGE or Chinese)")
    parser.add_argument("--chatllm-dir", help="chatllm.cpp checkout (default $CHATLLM_DIR or ./chatllm.cpp)")
    parser.add_argument("--engine-args", default="",
                        help="extra chatllm.cpp options, after the decoding options: chatllm.cpp keeps the last value of "
                             "a repeated option, so e.g. '-t 0.3' here wins over --decoding greedy (and is recorded)")
    parser.add_argument("--decoding", choices=list(DECODING_OPTIONS), default="greedy",
                        help="greedy (default: chatllm.cpp gets -t 0, since its own default samples with top_p, "
                             "temperature 0.7 and a new random seed per request) or engine-default (no option added)")
    parser.add_argument("--library", help="libchatllm to load: stock (as released) or fixed (with patches/; make "
                                          "engine-fixed, found in $CHATLLM_VARIANTS_DIR or build/engines); default "
                                          "$CHATLLM_LIBRARY or stock")
    parser.add_argument("--max-new-tokens", type=int, help="stop generation after N tokens (default: unlimited; 16 for a "
                                                           "model with seeded weights, which never ends on its own)")


def base_config(args) -> RunConfig:
    """Flags override environment variables, which override defaults; every value is checked."""
    threads = (checked_int(args.threads, "--threads", 1, 1024) if args.threads is not None
               else env_int("INFERENCE_THREADS", os.cpu_count() or 1, 1, 1024))
    context = (checked_int(args.context_length, "--context-length", 256, 1 << 20) if args.context_length is not None
               else env_int("CONTEXT_LENGTH", 4096, 256, 1 << 20))
    language = args.language or os.environ.get("ASR_LANGUAGE", "").strip() or None
    engine = args.engine
    if engine == "faster-whisper":
        from .engines.whisper import DEFAULT_AUDIO as EN_AUDIO

        audio = args.audio or [str(EN_AUDIO)]
        language = language or "English"
    else:
        audio = args.audio or [str(DEFAULT_AUDIO)]
    library = args.library or os.environ.get("CHATLLM_LIBRARY", "").strip() or "stock"
    try:
        extra = shlex.split(args.engine_args)
    except ValueError as e:
        raise UsageError(f"--engine-args cannot be split into options ({e}): quote it as a shell would") from None
    return RunConfig(
        engine=engine,
        engine_options=option_pairs(args.engine_option),
        engine_args=extra,
        library=library,
        chatllm_dir=str(library_dir(library, args.chatllm_dir or os.environ.get("CHATLLM_DIR") or PROJECT_DIR / "chatllm.cpp")),
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_why="--max-new-tokens" if args.max_new_tokens is not None else "",
        model=args.model or str(DEFAULT_GGUF if engine == "crispasr" else DEFAULT_MODEL),
        audio=audio[0],
        audio_set=list(audio),
        reference=args.reference or "",
        language=language or "Chinese",
        threads=threads,
        context_length=context,
        decoding=args.decoding,
    )


def option_pairs(raw: list[str]) -> dict:
    """['beam=5', 'lm=x.bin'] -> {'beam': '5', 'lm': 'x.bin'}: each KEY=VALUE once."""
    options = {}
    for item in raw:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--engine-option takes KEY=VALUE, got {item!r}: e.g. --engine-option beam=5")
        if key in options:
            raise UsageError(f"--engine-option {key} is given twice: give each key once")
        options[key] = value
    return options


DEFAULT_MAX_RSS_WHY = "default: 75% of the memory available at start"


def default_max_rss_mb() -> float:
    """A cap that stops a growing worker well before the kernel's out-of-memory killer, which may take more with it."""
    import psutil

    return round(psutil.virtual_memory().available / (1024 * 1024) * 0.75)


def comparison_parser(prog: str = "run_comparison.py") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog,
                      description="Does memory grow over repeated transcriptions? recreate vs restart, each in its own process.")
    p.add_argument("--iterations", type=positive_int("--iterations"),
                   help=f"iterations per way (default 100; with --duration, the cap, default {DURATION_CAP:,})")
    p.add_argument("--duration", type=duration, metavar="TIME",
                   help="run each way until this much wall-clock time has passed, e.g. 90s, 30m, 2h, 1h30m")
    p.add_argument("--ways", default=",".join(WAYS), help="comma-separated: recreate,restart (default both)")
    engine_options(p)
    p.add_argument("--output", default=str(PROJECT_DIR / "results"), help="results folder (default results/)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.add_argument("--timeout", type=number("--timeout"), default=300.0,
                   help="seconds an iteration may take before its worker is killed (default 300)")
    p.add_argument("--max-rss-mb", type=number("--max-rss-mb"),
                   help="stop a way when its worker's RSS passes this (default: 75%% of the memory available at start; 0: no cap)")
    p.add_argument("--uss-every", type=int, default=10, help="sample USS every N iterations (0: never; default 10)")
    p.add_argument("--malloc-trim", action="store_true", help="also sample after malloc_trim(0) to separate retention from leaks")
    p.add_argument("--tracemalloc", action="store_true", help="trace the Python heap (slower; for attribution)")
    p.add_argument("--warmup", type=int, help="iterations to drop before fitting (default: detected)")
    p.add_argument("--leak-threshold", type=number("--leak-threshold"),
                   help="MB/iteration below which significant growth is 'minor' (default 0.05)")
    p.add_argument("--horizon", type=positive_int("--horizon"),
                   help="requests every verdict's growth is projected over (default 1000000)")
    p.add_argument("--budget", type=number("--budget"), metavar="MB",
                   help="growth a process may accumulate over --horizon requests, e.g. 256: sets the threshold to "
                        "MB / horizon per request (instead of --leak-threshold)")
    p.add_argument("--until-decided", action="store_true",
                   help="stop each way once its verdict is LEAK or no leak, judged at planned looks; --iterations is the maximum")
    p.add_argument("--min-iterations", type=positive_int("--min-iterations"),
                   help="with --until-decided: the first look (default 20, or --iterations if fewer)")
    p.add_argument("--trace-native", action="store_true",
                   help="record native allocations with memray from after the warm-up to the end: top sites of what "
                        "stays live, and a leak flame graph per way (slower; see README)")
    p.add_argument("--trace-native-after", type=int, metavar="N",
                   help="iterations before tracing starts (implies --trace-native; default --warmup, else 3)")
    p.add_argument("--synthetic", default="", help="synthetic engine settings, e.g. request_leak_mb=0.5,noise_mb=2")
    p.add_argument("--input-order", choices=list(inputs.ORDERS), default="cycle",
                   help="how several --audio files are sent: cycle (in order, again and again; default) or shuffle "
                        "(a seeded permutation per cycle)")
    p.add_argument("--input-seed", type=int, default=0, help="seed of --input-order shuffle (default 0)")
    p.add_argument("--peak", choices=["hwm", "sampling", "off"], default="hwm",
                   help="peak RSS per load and request: hwm (default: the kernel's high-water mark, reset through "
                        "/proc/self/clear_refs; a 10 ms sampling thread where that is refused), sampling, or off")
    p.add_argument("--allocators", metavar="LIST",
                   help=f"run each way once per allocator setting, each in a fresh worker: {', '.join(allocators.SETTINGS)}"
                        " or all (comma-separated)")
    p.add_argument("--instances", type=positive_int("--instances"),
                   help="restart keeps a pool of K instances in its worker, created at start; each request takes the "
                        "one free longest (default: one per thread of --concurrency)")
    p.add_argument("--concurrency", metavar="LIST", default="1",
                   help="requests in flight at once, in threads of one worker (recreate: up to C instances alive); each "
                        "value above 1 is also served by C worker processes of one instance each; comma-separated, "
                        "e.g. 1,2 (default 1)")
    p.add_argument("--no-plot", action="store_true", help="do not draw memory.png")
    p.add_argument("--report", metavar="FILE", help="re-analyse a results file or run folder; runs no engine")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two results files")
    p.add_argument("--fail-above", type=number("--fail-above"), help="with --compare: fail when a slope exceeds this MB/iter")
    return p


def concurrency_list(raw: str) -> list[int]:
    values = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        values.append(checked_int(part, "each --concurrency value", 1, 64))
    if not values:
        raise UsageError(f"--concurrency needs at least one whole number (e.g. 2, or 1,2), got {raw!r}")
    return values


def threshold(args, horizon: int) -> tuple[float | None, float | None]:
    """The threshold per request the options ask for, and the budget it came from (None, None: neither given)."""
    if args.budget is not None and args.leak_threshold is not None:
        raise UsageError("--budget and --leak-threshold both set the threshold: give one (--budget MB is MB / --horizon "
                         "per request)")
    if args.budget is not None:
        if args.budget <= 0:
            raise UsageError(f"--budget must be a positive number of MB over --horizon requests, got {args.budget:g}")
        return args.budget / horizon, args.budget
    if args.leak_threshold is not None and args.leak_threshold <= 0:
        raise UsageError(f"--leak-threshold must be a positive number of MB per iteration, got {args.leak_threshold:g}")
    return args.leak_threshold, None


def reanalyse(path: str, args, form: str = "text") -> int:
    """--report FILE (asrbench report): the verdicts again from the iterations recorded, as text or Markdown."""
    document = results.load(Path(path))
    if args.warmup is not None:
        document["config"]["warmup"] = args.warmup
    if args.horizon is not None:
        document["config"]["horizon"] = args.horizon
    per_request, budget = threshold(args, document["config"].get("horizon") or RunConfig.horizon)
    if per_request is not None:
        document["config"]["leak_threshold_mb"], document["config"]["budget_mb"] = per_request, budget
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    native_trace.reanalyse(document, folder)  # first: the verdict weighs what the trace found (asrbench.evidence)
    results.summarise(document)
    drawn = report.plot(document, folder / "memory.png") if not args.no_plot and any(document["iterations"].values()) else None
    if form == "markdown":
        from .markdown import render

        shown_plot = drawn or (folder / document["plot"] if document.get("plot") and (folder / document["plot"]).is_file() else None)
        print(render(document, shown_plot), end="")
        return 0
    print(report.printed(document))
    if drawn:
        print(f"\nplot: {drawn}")
    return 0


def main_comparison(argv=None, prog: str = "run_comparison.py") -> int:
    args = comparison_parser(prog).parse_args(argv)
    try:
        if args.compare:
            old, new = (results.summarise(results.load(Path(p))) for p in args.compare)
            text_, failed = report.compare(old, new, args.fail_above)
            print(text_)
            return 1 if failed else 0
        if args.report:
            return reanalyse(args.report, args)
        config = base_config(args)
        config.iterations = args.iterations or (DURATION_CAP if args.duration else 100)
        config.duration_s = args.duration
        config.ways = [w.strip() for w in args.ways.split(",") if w.strip()]
        config.timeout_s = args.timeout
        config.max_rss_mb, config.max_rss_mb_why = ((args.max_rss_mb or None, "--max-rss-mb") if args.max_rss_mb is not None
                                                    else (default_max_rss_mb(), DEFAULT_MAX_RSS_WHY))
        config.uss_every, config.malloc_trim, config.tracemalloc = args.uss_every, args.malloc_trim, args.tracemalloc
        config.warmup, config.synthetic = args.warmup, args.synthetic
        config.trace_native = args.trace_native or args.trace_native_after is not None
        config.trace_native_after = args.trace_native_after
        config.input_order, config.input_seed, config.peak = args.input_order, args.input_seed, args.peak
        config.instances = args.instances
        config.concurrency = concurrency_list(args.concurrency)
        if args.allocators is not None:
            try:
                config.allocators = allocators.parse(args.allocators)
            except allocators.AllocatorError as e:
                raise UsageError(str(e)) from None
        if args.horizon is not None:
            config.horizon = args.horizon
        per_request, budget = threshold(args, config.horizon)
        if per_request is not None:
            config.leak_threshold_mb, config.budget_mb = per_request, budget
        if args.min_iterations is not None and not args.until_decided:
            raise UsageError("--min-iterations only applies with --until-decided: add --until-decided or drop it")
        config.until_decided = args.until_decided
        config.min_iterations = args.min_iterations or min(config.min_iterations, config.iterations)
        validate(config)
        output = Path(args.output)
        check_output(output)
        document, code = compare_ways(config, output, quiet=args.quiet, plot=not args.no_plot)
    except (UsageError, results.ResultsError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any worker started: nothing measured yet
        print(f"{prog}: interrupted before the first worker started", file=sys.stderr)
        return 130
    print(report.printed(document))
    if not args.quiet:
        print(f"\nresults: {Path(document['run_dir']) / 'comparison_results.json'} (copied to {output / 'comparison_results.json'})")
    if document.get("plot"):
        shutil.copyfile(Path(document["run_dir"]) / document["plot"], output / document["plot"])
    return code


def asr_parser(prog: str = "run_asr.py") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Transcribe one file with the benchmark's own engine code, to check a setup.")
    engine_options(p)
    return p


def main_asr(argv=None, prog: str = "run_asr.py") -> int:
    args = asr_parser(prog).parse_args(argv)
    try:
        config = base_config(args)
        config.ways = ["restart"]
        validate(config, need_reference=bool(args.reference))
        if len(config.inputs) > 1:
            raise UsageError(f"{prog} transcribes one file and --audio gives {len(config.inputs)}: pass one file "
                             f"({'asrbench run' if prog.startswith('asrbench') else 'run_comparison.py'} sends several)")
        engine = open_engine(config)
        started = time.perf_counter()
        handle = engine.create()
        load_s = time.perf_counter() - started
        result = engine.transcribe(handle, Path(config.audio))
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except EngineError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    print(f"transcript:       {result.text}")
    texts = text.score(result.text, config.reference_text, config.language) if config.reference_text else \
        text.normalize_transcript(result.text, config.language)
    if texts.get("text_zh_tw") is not None:
        print(f"zh-TW:            {texts['text_zh_tw']}")
    print(f"normalised:       {texts['text_itn']}")
    if config.reference_text:
        print(f"reference:        {config.reference_text}")
        print(f"WER / CER:        {texts['wer']:.3f} / {texts['cer']:.3f}")
    described = engine.describe()
    if described.get("decoding"):
        print(f"decoding:         {report.decoding_label(described['decoding'])}")
    whole = described.get("ttft") or (result.chars and result.chunks == 1)
    ttft = (f"{result.ttft_s * 1000:.0f} ms" if result.ttft_s is not None else
            "not measured (the engine returns the transcript whole)" if whole else "no output")
    print(f"load:             {load_s:.2f} s")
    print(f"first token:      {ttft}; request {result.request_s:.2f} s; audio {config.audio_seconds or 0:.2f} s")
    if not result.ended:
        print(f"{prog}: error: generation stopped without its end callback", file=sys.stderr)
        return 1
    return 0
