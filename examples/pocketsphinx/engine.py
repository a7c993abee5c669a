"""PocketSphinx as an asrbench engine, written against the public interface only (docs/engines.md).

PocketSphinx is CMU's speech recognizer (pocketsphinx, from PyPI); its US English acoustic model, dictionary and
language model ship inside the wheel, so nothing is downloaded. Run it with:

    asrbench run --engine examples/pocketsphinx/engine.py --audio samples/quickBrownFox-en.wav --language English

Every --engine-option KEY=VALUE is a PocketSphinx configuration parameter (e.g. beam=1e-60, lw=6.5), checked when
the factory runs.
"""

import wave
from pathlib import Path

from pocketsphinx import Config, Decoder  # the parent imports this file to check it; models load only in the workers


class Instance:
    """One decoder (the models it loaded), and the cepstral mean it started with."""

    def __init__(self, config: dict):
        self.decoder = Decoder(**config)
        self.initial_cmn = self.decoder.get_cmn()


class PocketSphinxEngine:
    name = "pocketsphinx"

    def __init__(self, config: dict):
        Config(**config)  # an unknown parameter or a bad value fails here, before any model is loaded
        self.config = config

    def create(self) -> Instance:
        """Load the acoustic model, the dictionary and the language model."""
        return Instance(self.config)

    def transcribe(self, instance: Instance, path: Path) -> str:
        """One utterance: 16-bit mono WAV at the model's rate (16 kHz), decoded whole. Returns the text: the benchmark
        times the call (PocketSphinx does not stream words as it goes, so there is no time to first token)."""
        pcm = read_wav(path, int(instance.decoder.config["samprate"]))
        instance.decoder.start_utt()
        instance.decoder.process_raw(pcm, full_utt=True)
        instance.decoder.end_utt()
        hypothesis = instance.decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""

    def restart(self, instance: Instance) -> None:
        """Forget what the last request adapted: PocketSphinx carries its cepstral mean from one utterance to the next."""
        instance.decoder.set_cmn(instance.initial_cmn)

    def destroy(self, instance: Instance) -> None:
        """Drop the decoder: its models are freed when the last reference goes, which the benchmark's caller holds no
        longer once this returns."""
        instance.decoder = None

    def describe(self) -> dict:
        import pocketsphinx

        return {"model": str(pocketsphinx.get_model_path()), "config": self.config}


def read_wav(path: Path, rate: int) -> bytes:
    with wave.open(str(path), "rb") as audio:
        if audio.getsampwidth() != 2 or audio.getnchannels() != 1 or audio.getframerate() != rate:
            raise ValueError(f"{path} is not 16-bit mono WAV at {rate} Hz: convert it, e.g. ffmpeg -i IN -ar {rate} "
                             f"-ac 1 OUT.wav")
        return audio.readframes(audio.getnframes())


def make_engine(context) -> PocketSphinxEngine:
    """The factory asrbench calls in each worker: context.options are the --engine-option values."""
    return PocketSphinxEngine(dict(context.options))
