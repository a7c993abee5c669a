"""Create, transcribe and destroy a Qwen3-ASR model N times through chatllm.cpp's own binding, then exit.

A transcription that fails is printed, and the model is destroyed all the same (exit 4 at the end).

Run by tests/test_sanitizer.py and benchmarks/history.py under a libchatllm built with AddressSanitizer (LD_PRELOAD of libasan): any leak,
invalid free or use-after-free inside libchatllm makes the process report it and exit non-zero.

    python tests/sanitizer/cycle.py CHATLLM_DIR MODEL AUDIO N
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from asrbench.engines.chatllm import ChatLLMEngine  # noqa: E402


def main(chatllm_dir: str, model: str, audio: str, cycles: str) -> int:
    engine = ChatLLMEngine(chatllm_dir, model, threads=1, context_length=512, language="Chinese",
                           extra_args=["-t", "0"], max_new_tokens=8)
    failed = 0
    for n in range(1, int(cycles) + 1):
        llm = engine.create()
        try:
            done = f"{engine.transcribe(llm, Path(audio)).chars} chars"
        except Exception as e:  # e.g. chatllm.cpp before cdb65fe: its binding refused ASR models; destroy still runs
            done, failed = "transcribing failed", failed + 1
            print(f"cycle {n}: transcribing failed ({e})", flush=True)
        rc = engine.destroy(llm)
        print(f"cycle {n}: {done}, destroy returned {rc} via {engine.release_via}", flush=True)
        if rc != 0:
            return 3
    print(f"binding objects kept: {engine.counters()['binding_objects']}", flush=True)
    return 4 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
