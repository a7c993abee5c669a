"""scipy.stats and scipy.signal, imported on their first use: a command that stops at a bad option (most of the
error paths, and the worker, which never analyses) does not pay the half second scipy.stats takes to import."""

import importlib


class _Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute):
        return getattr(importlib.import_module(self._name), attribute)


stats = _Lazy("scipy.stats")
signal = _Lazy("scipy.signal")
