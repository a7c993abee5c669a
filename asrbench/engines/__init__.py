"""The engines the benchmark drives, each in a module of its own, opened by name from a run's config."""

from pathlib import Path

from .base import EngineError, StreamClock, Transcription, finish

NAMES = ("chatllm", "synthetic", "faster-whisper", "crispasr")


def open_engine(config):
    """The engine a run's config names; heavy imports happen here, in the worker, not in the parent."""
    if config.engine == "chatllm":
        from .chatllm import ChatLLMEngine

        return ChatLLMEngine(config.chatllm_dir, config.model, config.threads, config.context_length, config.language,
                             config.engine_args, config.decoding, config.max_new_tokens)
    if config.engine == "synthetic":
        from .synthetic import SyntheticEngine, SyntheticSettings

        return SyntheticEngine(SyntheticSettings.parse(config.synthetic))
    if config.engine == "faster-whisper":
        from .whisper import FasterWhisperEngine

        return FasterWhisperEngine(config.threads)
    if config.engine == "crispasr":
        from .crispasr import CrispASREngine

        engine = CrispASREngine(config.model, config.threads, config.language, config.max_new_tokens, config.decoding)
        for source in config.input_list():  # every file of the input set decoded now, before anything is measured
            engine.pcm(Path(source["audio"]))
        return engine
    raise ValueError(f"unknown engine {config.engine}")


__all__ = ["EngineError", "NAMES", "StreamClock", "Transcription", "finish", "open_engine"]
