"""Shared code of the Qwen3-ASR memory benchmark: engines, text scoring, memory sampling, statistics, reports."""

__version__ = "1.0.0"
