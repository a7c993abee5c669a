"""The engines the benchmark drives: the public interface (base), where engines come from (registry), and the built-in
four, each in a module of its own and registered by name like any plugin."""

from .base import EngineContext, EngineError, StreamClock, Transcription, finish
from .registry import BUILTIN, PluginError, open_engine

NAMES = tuple(BUILTIN)  # the built-in engines, by the names they are registered under

__all__ = ["EngineContext", "EngineError", "NAMES", "PluginError", "StreamClock", "Transcription", "finish",
           "open_engine"]
