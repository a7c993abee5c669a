"""The asrbench command: run, report, compare and asr (run_comparison.py and run_asr.py are run and asr)."""

import sys

from .cli import OneLineParser, main_asr, main_comparison, number, positive_int, reanalyse
from .config import UsageError

COMMANDS = {
    "run": "recreate vs restart (and more ways), each in its own worker: the table, results JSON and plot",
    "report": "the table and verdicts again from a results file or run folder, as text or Markdown",
    "compare": "two results files side by side; fails when a slope grew",
    "asr": "transcribe one file with the benchmark's engine code, to check a setup",
}
USAGE = "usage: asrbench {" + ",".join(COMMANDS) + "} [options]   (asrbench COMMAND --help for its options)"


def report_parser() -> OneLineParser:
    p = OneLineParser(prog="asrbench report", description=COMMANDS["report"])
    p.add_argument("results", metavar="RESULTS", help="a comparison_results.json, or the run folder holding one")
    p.add_argument("--format", choices=["text", "markdown"], default="text",
                   help="text (as a run prints it; default) or markdown (GitHub-flavoured, to paste into an issue)")
    p.add_argument("--warmup", type=int, help="iterations to drop before fitting (default: as recorded, else detected)")
    p.add_argument("--leak-threshold", type=number("--leak-threshold"), help="MB/iteration below which growth is minor")
    p.add_argument("--horizon", type=positive_int("--horizon"), help="requests growth is projected over")
    p.add_argument("--budget", type=number("--budget"), metavar="MB", help="growth allowed over --horizon requests")
    p.add_argument("--no-plot", action="store_true", help="do not redraw memory.png")
    return p


def compare_parser() -> OneLineParser:
    p = OneLineParser(prog="asrbench compare", description=COMMANDS["compare"])
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--fail-above", type=number("--fail-above"), help="fail when a slope exceeds this MB/iter")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + "\n".join(f"  {name:8} {what}" for name, what in COMMANDS.items()),
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return main_comparison(rest, prog="asrbench run")
    if command == "asr":
        return main_asr(rest, prog="asrbench asr")
    if command == "compare":
        args = compare_parser().parse_args(rest)
        return main_comparison(["--compare", args.old, args.new]
                               + ([] if args.fail_above is None else ["--fail-above", str(args.fail_above)]),
                               prog="asrbench compare")
    if command == "report":
        args = report_parser().parse_args(rest)
        from . import results

        try:
            return reanalyse(args.results, args, args.format)
        except (UsageError, results.ResultsError) as e:
            print(f"asrbench report: error: {e}", file=sys.stderr)
            return 2
    print(f"asrbench: error: unknown command {command!r}: choose {', '.join(COMMANDS)} (asrbench --help)",
          file=sys.stderr)
    return 2


def entry() -> None:
    """The console script: the engine's C++ destructors are not run at exit (run_asr.py's reason: at the pinned
    chatllm.cpp they abort), so output is flushed and the process leaves with the command's code."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)
