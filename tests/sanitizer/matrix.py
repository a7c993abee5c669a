"""One tiny model per way chatllm.cpp's models own their position helpers (the model matrix, models/matrix/rows.json,
written by tools/make_matrix.py), driven through chatllm.cpp's own binding, under a sanitizer build or the release one:

    python tests/sanitizer/matrix.py CHATLLM_DIR output ROW
        create, answer the row's prompt (greedy, 8 new tokens), print `output ROW: [...]`; exit without freeing
    python tests/sanitizer/matrix.py CHATLLM_DIR lifecycle ROW NEXT
        three times: create ROW, answer, destroy; then create NEXT, answer, destroy (state one family leaves behind
        is caught by the next); exit normally, so LeakSanitizer looks at what is left
    python tests/sanitizer/matrix.py CHATLLM_DIR chain ROW [ROW ...]
        for each row in turn, three times create, answer, destroy: every family after every other in one process
    python tests/sanitizer/matrix.py CHATLLM_DIR after-failure ROW NEXT
        create ROW, which must fail to load (a mismatched file), then create, use and destroy NEXT
    python tests/sanitizer/matrix.py CHATLLM_DIR slope ROW N
        N times create ROW, answer, destroy, malloc_trim(0); print the RssAnon (kB) after each as `rss_anon: [...]`

Each answer is printed as `output ROW: TEXT` (an embedding as its first 6 values, rounded to 5 digits), each destroy as
`destroy ROW returned N` (through ChatLLM.destroy(), or on the released binding, which has none, chatllm_destroy),
so the caller can compare libraries and read what happened.
"""

import ctypes
import json
import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
MATRIX = PROJECT / "models" / "matrix"
NEW_TOKENS = 8


def rows() -> dict:
    return {row["row"]: row for row in json.loads((MATRIX / "rows.json").read_text())}


def say(line: str) -> None:
    print(line, flush=True)


class Model:
    """A row's model through chatllm.cpp's binding; output collected from the callbacks."""

    def __init__(self, binding, lib, row: dict):
        collected = self.collected = []

        class Collect(binding.ChatLLM):
            def callback_print(self, s: str) -> None:
                collected.append(s)

            def callback_print_meta(self, s: str) -> None:
                pass

            def callback_print_log(self, s: str) -> None:
                pass

        self.row, self.lib = row, lib
        args = ["-m", str(MATRIX / row["file"]), "-t", "0", "--max_new_tokens", str(NEW_TOKENS), "--seed", "1",
                *row.get("run_args", [])]
        self.llm = Collect(lib, args)

    def answer(self) -> str:
        row = self.row
        if row["kind"] == "embedding":
            embed = getattr(self.llm, "embedding", None) or self.llm.text_embedding  # older bindings name it so
            return json.dumps([round(v, 5) for v in embed(row["prompt"])[:6]])
        prompt = row["prompt"]
        if isinstance(prompt, list):
            prompt = [dict(p, file=str(MATRIX / p["file"])) if isinstance(p, dict) and "file" in p else p
                      for p in prompt]
        self.collected.clear()
        self.llm.chat(prompt)
        text = "".join(self.collected)
        self.llm.restart()
        return text

    def destroy(self) -> int:
        """The patched binding's ChatLLM.destroy(); the released binding has none, so its users (and this) call the C
        API's chatllm_destroy on the object's handle, as asrbench.engines.chatllm does."""
        if hasattr(self.llm, "destroy"):
            return self.llm.destroy()
        destroy = self.lib._lib.chatllm_destroy
        destroy.argtypes, destroy.restype = [ctypes.c_void_p], ctypes.c_int
        return destroy(self.llm._chat)


def rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return -1


def main(chatllm_dir: str, scenario: str, *names: str) -> int:
    sys.path.insert(0, str(PROJECT))
    from asrbench.engines.chatllm import load_binding

    binding = load_binding(Path(chatllm_dir))
    lib = binding.LibChatLLM(str(Path(chatllm_dir) / "bindings"))
    table = rows()
    unknown = [n for n in names if n not in table and not n.isdigit()]
    if unknown:
        say(f"unknown row {unknown[0]!r}: rows are {', '.join(table)} (models/matrix/rows.json)")
        return 2
    if scenario == "output":
        say(f"output {names[0]}: {Model(binding, lib, table[names[0]]).answer()!r}")
        os._exit(0)  # the released library may abort freeing a model: the output is what is compared

    def once(name: str) -> None:  # create, answer, destroy: each printed
        model = Model(binding, lib, table[name])
        say(f"output {name}: {model.answer()!r}")
        say(f"destroy {name} returned {model.destroy()}")

    if scenario in ("lifecycle", "chain"):
        rounds = [(name, 3) for name in names] if scenario == "chain" else [(names[0], 3), (names[1], 1)]
        for name, times in rounds:
            for _ in range(times):
                once(name)
        return 0
    if scenario == "after-failure":
        row, following = table[names[0]], table[names[1]]
        try:
            Model(binding, lib, row)
            say(f"create {row['row']}: loaded, but it should not have")
            return 3
        except Exception as e:  # the binding raises a bare Exception when start fails
            say(f"create {row['row']} failed: {e}")
        once(following["row"])
        return 0
    if scenario == "slope":
        row, count = table[names[0]], int(names[1])
        trim = ctypes.CDLL("libc.so.6").malloc_trim
        series = []
        for _ in range(count):
            model = Model(binding, lib, row)
            model.answer()
            code = model.destroy()
            if code != 0:
                say(f"destroy {row['row']} returned {code}")
                return 4
            trim(0)
            series.append(rss_anon_kb())
        say(f"rss_anon: {json.dumps(series)}")
        return 0
    say(f"unknown scenario {scenario!r}: choose output, lifecycle, chain, after-failure or slope")
    return 2


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
