"""Audio as every engine gets it: one ffmpeg decode to 16 kHz mono float32.

chatllm.cpp runs the same ffmpeg conversion itself (src/audio_process.cpp: `ffmpeg -nostdin -threads 0 -i PATH -f f32le
-ac 1 -ar 16000 ...`); engines that take samples (CrispASR) get them from here, decoded once per file, never inside a
measured request. Run without a shell, so no character of the path can reach a command line.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SAMPLE_RATE = 16000
FFMPEG_OUTPUT = ["-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE)]


class DecodeError(Exception):
    """The audio cannot be decoded; the message names the problem and the fix."""


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if not path:
        raise DecodeError("ffmpeg is not installed (chatllm.cpp decodes audio with it): install it, e.g. apt-get install ffmpeg")
    return path


def decode(audio) -> bytes:
    """The audio as raw little-endian float32 samples, 16 kHz, mono."""
    audio = Path(audio)
    if not audio.is_file():
        raise DecodeError(f"audio file {audio} not found: pass --audio FILE")
    if not os.access(audio, os.R_OK):
        raise DecodeError(f"audio file {audio} is not readable: fix its permissions (chmod a+r)")
    result = subprocess.run([ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(audio.resolve()),
                             *FFMPEG_OUTPUT, "-"], capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        why = (result.stderr.decode(errors="replace").strip().splitlines() or ["no audio samples"])[-1]
        raise DecodeError(f"ffmpeg cannot decode {audio} ({why}): convert it, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav")
    return result.stdout


def describe(samples: bytes) -> dict:
    """What an engine was given: how the samples were made, how many, and their sha256 (the same file always gives the
    same samples with the same ffmpeg)."""
    return {"decoder": "ffmpeg " + " ".join(FFMPEG_OUTPUT), "sample_rate": SAMPLE_RATE, "samples": len(samples) // 4,
            "seconds": len(samples) / 4 / SAMPLE_RATE, "sha256": hashlib.sha256(samples).hexdigest()}
