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

# Input set of clearly different lengths (about 2, 4, 15 and 30 s), all Mandarin digits read one by one in the same
# voice and speed, so only the length changes: a 5-digit extension, then 4 and 9 phone numbers with a pause (comma)
# between them. The 4 s clip is phoneNumber1 above.
pinyin() {  # pinyin "0912,345" -> "ling2 jiu3 yi1 er4, san1 si4 wu3"
  local out="" group digit
  local -a names=(ling2 yi1 er4 san1 si4 wu3 liu4 qi1 ba1 jiu3)
  IFS=, read -ra groups <<< "$1"
  for group in "${groups[@]}"; do
    [ -n "$out" ] && out="$out, "
    local words=""
    for ((i = 0; i < ${#group}; i++)); do
      digit=${group:i:1}
      words="$words${words:+ }${names[$digit]}"
    done
    out="$out$words"
  done
  printf '%s' "$out"
}
digits() {  # digits NUMBERS OUT-STEM: speak the comma-separated digit groups, reference = the groups, comma-separated
  speak cmn-latn-pinyin "$(pinyin "$1")" "$2.wav"
  printf '%s\n' "$(printf '%s' "$1" | sed 's/,/，/g')" > "$2.txt"
}
digits 07315 extension-zh-TW
digits 0912345678,0223581764,0987654321,0425368190,8625 phoneNumbers4-zh-TW
digits 0912345678,0223581764,0987654321,0425368190,0936271845,0355129087,0978563412,0287345619,0961827354 phoneNumbers9-zh-TW

# English sentence for the faster-whisper engine.
speak en-us "The quick brown fox jumps over the lazy dog." quickBrownFox-en.wav 120
printf 'The quick brown fox jumps over the lazy dog.\n' > quickBrownFox-en.txt
