"""Input sets: the audio files a run sends, in a fixed order, and which file each iteration sends.

A service sees clips of many lengths, and engines size their compute buffers by the longest input seen so far, so
memory can step up whenever a longer clip arrives. One clip sent again and again never shows that.
"""

import itertools
import random
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm")
# cycle: the files in the order given, again and again; shuffle: every cycle a permutation drawn from a seeded generator
ORDERS = ("cycle", "shuffle")


class InputError(ValueError):
    """An input set that cannot be used; the message names the problem and the fix."""


def expand(specs) -> list[Path]:
    """Files in the order given; a folder stands for the audio files directly inside it, sorted by name."""
    files = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise InputError(f"folder {path} holds no audio file ({' '.join(AUDIO_SUFFIXES)}): pass --audio with "
                                 f"audio files, or a folder of them with each transcript beside it as NAME.txt")
            files += found
        else:
            files.append(path)
    if not files:
        raise InputError("--audio names no file: pass --audio FILE [FILE ...] or a folder")
    return files


def sequence(count: int, order: str = "cycle", seed: int = 0):
    """The index of the file each iteration sends (0-based), without end: a run of --duration does not know how many
    iterations it will take, and a list of ten million would cost the worker what it measures.

    Both orders send every file once per cycle, so each file gets its share however many iterations run; a shuffle
    with the same seed is the same sequence on every run and in every way."""
    if order not in ORDERS:
        raise InputError(f"unknown input order {order!r}: choose {' or '.join(ORDERS)}")
    rng = random.Random(seed)
    while True:
        cycle = list(range(count))
        if order == "shuffle":
            rng.shuffle(cycle)
        yield from cycle


def schedule(count: int, iterations: int, order: str = "cycle", seed: int = 0) -> list[int]:
    """The first `iterations` of sequence(), as a list."""
    return list(itertools.islice(sequence(count, order, seed), iterations))
