#!/usr/bin/env python3
"""Transcribe one audio file with the benchmark's engine code, to check a setup. See README.md."""

import os
import sys

from asrbench.cli import main_asr

if __name__ == "__main__":
    code = main_asr()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without running the engine's C++ destructors: at the pinned chatllm.cpp they abort
    # ("free(): invalid pointer"), which would turn a good check into a crash. run_comparison.py measures that.
    os._exit(code)
