"""More than one Qwen3-ASR instance alive in one process, through chatllm.cpp's own binding, then exit.

Run by tests/test_sanitizer.py and tests/test_instances.py, under a libchatllm built with AddressSanitizer or
ThreadSanitizer (LD_PRELOAD of the runtime), or under the release library:

    python tests/sanitizer/instances.py CHATLLM_DIR MODEL AUDIO overlap
        create A, create B, destroy B, transcribe with A, destroy A: B must leave nothing A reads
    python tests/sanitizer/instances.py CHATLLM_DIR MODEL AUDIO threads N
        create two instances in two threads at once, then each thread sends N requests at the same time as the other
    python tests/sanitizer/instances.py CHATLLM_DIR MODEL AUDIO alive K
        create K instances one after another, then transcribe once with each

Each transcript is printed as `transcript NAME: TEXT`, for the caller to compare with one instance alone.
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from asrbench.engines.chatllm import ChatLLMEngine  # noqa: E402


PRINTING = threading.Lock()  # two threads print: each line whole


def say(line: str) -> None:
    with PRINTING:
        print(line, flush=True)


def main(chatllm_dir: str, model: str, audio: str, scenario: str, count: str = "2") -> int:
    engine = ChatLLMEngine(chatllm_dir, model, threads=1, context_length=512, language="Chinese",
                           extra_args=["-t", "0"], max_new_tokens=8)
    audio = Path(audio)
    if scenario == "overlap":
        a = engine.create()
        b = engine.create()
        say(f"destroy B returned {engine.destroy(b)}")
        say(f"transcript A: {engine.transcribe(a, audio).text}")
        say(f"destroy A returned {engine.destroy(a)}")
    elif scenario == "alive":
        alive = [engine.create() for _ in range(int(count))]
        for n, llm in enumerate(alive, start=1):
            say(f"transcript {n}: {engine.transcribe(llm, audio).text}")
    elif scenario == "threads":
        requests = int(count)
        created, failures = [None, None], []
        start = threading.Barrier(2)

        def serve(n: int) -> None:
            try:
                start.wait()
                created[n] = llm = engine.create()  # both load at once
                start.wait()
                for request in range(1, requests + 1):  # and transcribe at once
                    say(f"transcript {n + 1}.{request}: {engine.transcribe(llm, audio).text}")
                    llm.restart()
            except Exception as e:  # reported, and the exit code says so
                failures.append(f"thread {n + 1}: {e.__class__.__name__}: {e}")

        threads = [threading.Thread(target=serve, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for failure in failures:
            say(failure)
        for n, llm in enumerate(created, start=1):
            if llm is not None:
                say(f"destroy {n} returned {engine.destroy(llm)}")
        if failures:
            return 3
    else:
        say(f"unknown scenario {scenario!r}: choose overlap, alive or threads")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
