"""chatllm_destroy on the fixed library refuses what it cannot free safely, and the binding refuses a destroyed object
(patches 0007 and 0008). On the series before them each of these killed the process: a null streamer dereferenced,
an object freed under its own running request, a NULL object passed to the library.
"""

import os
import subprocess
import sys

from conftest import PROJECT, SAMPLE


def in_fresh_process(code: str, *args) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr[-3000:]}"
    return proc.stdout


ENGINE = """
import sys, threading, time
from pathlib import Path
from asrbench.engines.chatllm import ChatLLMEngine
engine = ChatLLMEngine(sys.argv[1], sys.argv[2], 1, 512, "Chinese", max_new_tokens=4)
lib = engine.lib
"""


def test_destroy_refuses_an_object_that_never_started(tiny_model, fixed_dir):
    out = in_fresh_process(ENGINE + """
obj = lib._chatllm_create()
print("never started:", lib._chatllm_destroy(obj))
""", fixed_dir, tiny_model)
    assert "never started: -2" in out


def test_destroy_from_another_thread_is_refused_while_a_request_runs(tiny_model, fixed_dir):
    """A request's prefill (here: the audio decoded by ffmpeg, then encoded) runs with is_prompt still true, which was
    all chatllm_destroy checked: a destroy from another thread then freed the object under the running call."""
    out = in_fresh_process(ENGINE + """
llm = engine.create()
reference = engine.transcribe(llm, Path(sys.argv[3])).text
llm.restart()
running, codes, text = threading.Event(), [], []
def request():
    running.set()
    text.append(engine.transcribe(llm, Path(sys.argv[3])).text)
    running.clear()
worker = threading.Thread(target=request)
worker.start()
running.wait()
while running.is_set():
    before = running.is_set()
    code = engine.destroy(llm)
    if before and running.is_set():  # the request ran before and after this destroy returned
        codes.append(code)
    if code == 0:
        break
worker.join()
print("during the request:", sorted(set(codes)), len(codes))
print("same transcript:", text == [reference])
print("destroy after it:", engine.destroy(llm))
""", fixed_dir, tiny_model, SAMPLE)
    assert "during the request: [-1]" in out, out
    assert "same transcript: True" in out
    assert "destroy after it: 0" in out


def test_methods_raise_after_destroy_instead_of_passing_null(tiny_model, fixed_dir):
    out = in_fresh_process(ENGINE + """
llm = engine.create()
assert llm.destroy() == 0
for call in (lambda: llm.chat("hello"), llm.restart, lambda: llm.set_max_gen_tokens(3), lambda: llm.text_tokenize("a")):
    try:
        call()
        print("no error")
    except RuntimeError as e:
        print("raised:", e)
print("second destroy:", llm.destroy())
""", fixed_dir, tiny_model)
    assert out.count("raised: ChatLLM: the object has been destroyed") == 4, out
    assert "second destroy: 0" in out
