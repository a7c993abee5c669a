#!/usr/bin/env python3
"""Repeated Qwen3-ASR transcription through chatllm.cpp: does memory grow, recreate vs restart? See README.md."""

import sys

from asrbench.cli import main_comparison

if __name__ == "__main__":
    sys.exit(main_comparison())
