#!/usr/bin/env bash
# Writes the bundled samples from text with espeak-ng (Debian 12) and ffmpeg: 16 kHz mono 16-bit WAV.
# Same espeak-ng and ffmpeg versions -> same bytes; the sha256 of each file is in samples/README.md.
set -euo pipefail
cd "$(dirname "$0")"

speak() {  # speak VOICE TEXT OUT.wav [WORDS_PER_MINUTE]
  espeak-ng -v "$1" -s "${4:-140}" -w "$3.raw.wav" "$2"
  ffmpeg -nostdin -loglevel error -y -i "$3.raw.wav" -ar 16000 -ac 1 -c:a pcm_s16le -fflags +bitexact -flags:a +bitexact "$3"
  rm -f "$3.raw.wav"
}

# Mandarin phone number 0900073331, read digit by digit; the 'cmn' voice reads Latin letters as English,
# so the text is given in pinyin to the 'cmn-latn-pinyin' voice.
speak cmn-latn-pinyin "ling2 jiu3 ling2 ling2 ling2 qi1 san1 san1 san1 yi1" phoneNumber1-zh-TW.wav
printf '0900073331\n' > phoneNumber1-zh-TW.txt

# English sentence for the faster-whisper engine.
speak en-us "The quick brown fox jumps over the lazy dog." quickBrownFox-en.wav 120
printf 'The quick brown fox jumps over the lazy dog.\n' > quickBrownFox-en.txt
