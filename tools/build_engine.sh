#!/usr/bin/env bash
# Builds libchatllm from the pinned chatllm.cpp source, as users have it (stock) or with this project's patches.
#
#   tools/build_engine.sh source            make sure chatllm.cpp/ holds the pinned source: the submodule, or when it
#                                           cannot be fetched, the archive named by CHATLLM_SOURCE_ARCHIVE (its sha256
#                                           is checked against the value pinned below)
#   tools/build_engine.sh build VARIANT     stock       chatllm.cpp/build -> chatllm.cpp/bindings/libchatllm.so
#                                           fixed       a copy with patches/*.patch applied, in build/engines/fixed/
#                                           fixed-NNNN  with the patches up to number NNNN only (fixed-0005: 0001-0005)
#                                           fixed-NAME  with only the patches in PATCHES (to measure each patch)
#                                           ...-asan    any of these with AddressSanitizer + LeakSanitizer
#                                           ...-tsan    any of these with ThreadSanitizer
#                                           (every variant but stock in build/engines/VARIANT/, or in
#                                           $CHATLLM_VARIANTS_DIR/VARIANT/, where the engine also looks)
#
# Sanitizer variants compile libchatllm at -O1 -g with only the model files in SANITIZE_MODELS (default: Qwen3-ASR's,
# models/qwen.cpp and models/qwen_asr.cpp; the Makefile adds the model matrix's; "all" for every model); see
# tools/sanitize.cmake.
# CHATLLM_DIR=/a/checkout builds another chatllm.cpp (e.g. an older commit) instead of the submodule.
# Environment: BUILD_THREADS (default: cores), BUILD_TYPE (Release), CCACHE=0 (do not use ccache even where it is
# installed). chatllm.cpp's own CMakeLists already compiles its C++ with -g, so native traces get symbols and lines.
# Each build writes <dir>/build/asrbench-variant.json: what was built from what, read into every run's metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=$PWD
SOURCE=${CHATLLM_DIR:-chatllm.cpp}
PINNED_COMMIT=4a4310e165cad9232a347dd299593b8ebaae1ac1
PINNED_ARCHIVE_SHA256=6c9a33b161f85c94b88919e70548e138dc5aa749c93301e3d6e20dec0a61d910
THREADS=${BUILD_THREADS:-$(nproc 2>/dev/null || echo 2)}
BUILD_TYPE=${BUILD_TYPE:-Release}
SANITIZE_MODELS=${SANITIZE_MODELS:-models/qwen.cpp;models/qwen_asr.cpp}

say() { echo "build_engine: $*" >&2; }
die() { say "$*"; exit 2; }

have_source() { [ -f "$SOURCE/CMakeLists.txt" ]; }

source_origin() {  # how chatllm.cpp/ came to hold its source: the submodule's commit, or the checked archive
  if [ -f "$SOURCE/.asrbench-archive" ]; then cat "$SOURCE/.asrbench-archive"
  elif git -C "$SOURCE" rev-parse --show-toplevel 2>/dev/null | grep -qx "$(cd "$SOURCE" && pwd -P)"; then
    echo "$([ "$SOURCE" = chatllm.cpp ] && echo submodule || echo git) $(git -C "$SOURCE" rev-parse HEAD)"
  else echo "folder $(cd "$SOURCE" && pwd -P)"; fi
}

fetch_source() {
  have_source && return 0
  if [ "$SOURCE" = chatllm.cpp ] && git submodule update --init chatllm.cpp 2>/dev/null && have_source; then
    say "chatllm.cpp: submodule at $(git -C chatllm.cpp rev-parse --short HEAD)"
    return 0
  fi
  local archive=${CHATLLM_SOURCE_ARCHIVE:-}
  if [ -z "$archive" ]; then
    say "could not fetch the chatllm.cpp submodule and CHATLLM_SOURCE_ARCHIVE is not set: the engine is not built."
    say "fix: git submodule update --init, or CHATLLM_SOURCE_ARCHIVE=/path/to/chatllm.cpp-4a4310e.tar.gz make setup"
    return 1
  fi
  [ -f "$archive" ] || die "CHATLLM_SOURCE_ARCHIVE=$archive: no such file (a git archive of chatllm.cpp $PINNED_COMMIT)"
  local sum
  sum=$(sha256 "$archive")
  [ "$sum" = "$PINNED_ARCHIVE_SHA256" ] || die "$archive has sha256 $sum, not the pinned $PINNED_ARCHIVE_SHA256: use the archive of commit ${PINNED_COMMIT:0:7}"
  [ -z "$(ls -A "$SOURCE" 2>/dev/null)" ] || die "$SOURCE is not empty but has no CMakeLists.txt: empty it, then run again"
  mkdir -p "$SOURCE"
  tar -xzf "$archive" -C "$SOURCE"
  echo "archive $PINNED_COMMIT sha256:$sum" > "$SOURCE/.asrbench-archive"
  say "chatllm.cpp: unpacked $archive (sha256 checked, commit ${PINNED_COMMIT:0:7})"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

variant_dir() {  # where a variant's chatllm.cpp folder is
  case "$1" in
    stock) echo "$SOURCE" ;;
    fixed|stock-[at]san|fixed-[a-z0-9]*) echo "${CHATLLM_VARIANTS_DIR:-build/engines}/$1/chatllm.cpp" ;;
    *) die "unknown variant '$1': choose stock, fixed, fixed-NNNN, with -asan or -tsan (e.g. fixed-tsan)" ;;
  esac
}

sanitizer() {  # address, thread, or nothing, from the variant's suffix
  case "$1" in *-asan) echo address ;; *-tsan) echo thread ;; esac
}

patch_list() {  # the patches a fixed variant carries: up to NNNN for fixed-NNNN, else PATCHES (a subset, to measure
                # each one), else all of them
  local p upto
  upto=$(echo "$VARIANT" | sed -n 's/^fixed-\([0-9]\{4\}\)\(-[at]san\)\{0,1\}$/\1/p')
  for p in ${PATCHES:-patches/*.patch}; do
    [ -f "$p" ] || continue
    if [ -n "$upto" ] && [ "$(basename "$p" | cut -c1-4)" \> "$upto" ]; then continue; fi
    echo "$p"
  done
}

prepare_copy() {  # the source with the variant's patches applied, in its own folder; the submodule is never touched
  local variant=$1 dir=$2 stage
  stage=$(mktemp -d)
  tar -C "$SOURCE" --exclude=./build --exclude='./bindings/*.so' --exclude=./.git --exclude=./.asrbench-archive -cf - . \
    | tar -C "$stage" -xf -
  case "$variant" in
    fixed*)
      local patch
      for patch in $(patch_list); do
        patch -s -p1 -d "$stage" --no-backup-if-mismatch < "$patch" || die "$patch does not apply to $SOURCE ($(source_origin))"
        say "applied $patch"
      done ;;
  esac
  # copy only what differs, so a rebuild after changing one patch recompiles only what that patch touches
  mkdir -p "$dir"
  (cd "$stage" && find . -type f) | while read -r f; do
    cmp -s "$stage/$f" "$dir/$f" || { mkdir -p "$(dirname "$dir/$f")"; cp -p "$stage/$f" "$dir/$f"; touch "$dir/$f"; }
  done
  (cd "$dir" && find . -path ./build -prune -o -path ./bindings -prune -o -type f -print) | while read -r f; do
    [ -e "$stage/$f" ] || rm -f "$dir/$f"
  done
  rm -rf "$stage"
}

build() {
  local variant=$1 dir flags=() sanitize
  VARIANT=$variant
  have_source || fetch_source || die "no chatllm.cpp source in $SOURCE"
  dir=$(variant_dir "$variant")
  [ "$variant" = stock ] || prepare_copy "$variant" "$dir"
  sanitize=$(sanitizer "$variant")
  if [ -n "$sanitize" ]; then
    flags+=(-DCMAKE_PROJECT_INCLUDE="$PROJECT/tools/sanitize.cmake" -DASRBENCH_SANITIZER="$sanitize"
            "-DASRBENCH_MODELS=$SANITIZE_MODELS")
  fi
  if [ "${CCACHE:-1}" != 0 ] && command -v ccache >/dev/null; then
    flags+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_BASEDIR=$PROJECT CCACHE_NOHASHDIR=1  # copies of the source in other folders share the cache
  fi
  local started=$SECONDS
  cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${flags[@]}" >/dev/null
  local log="$dir/build/asrbench-build.log"
  if ! cmake --build "$dir/build" --target libchatllm -j "$THREADS" > "$log" 2>&1; then
    grep -E "error" "$log" | head -20 >&2
    die "building $variant failed (full log: $log)"
  fi
  local lib="$dir/bindings/libchatllm.so"
  write_manifest "$variant" "$dir" $((SECONDS - started))
  say "$variant: $lib ($(( $(stat -c %s "$lib") / 1048576 )) MB) in $((SECONDS - started)) s"
}

write_manifest() {  # what this build is, for the metadata of every run that loads it
  local variant=$1 dir=$2 seconds=$3 patches="" patch sanitizer=null models=null
  case "$variant" in fixed*)
    for patch in $(patch_list); do
      patches+="${patches:+,}{\"name\": \"$(basename "$patch")\", \"sha256\": \"$(sha256 "$patch")\"}"
    done ;;
  esac
  if [ -n "$(sanitizer "$variant")" ]; then
    sanitizer="\"$(sanitizer "$variant") (libchatllm own code at -O1 -g; tools/sanitize.cmake)\""
    models="\"$SANITIZE_MODELS\""
  fi
  cat > "$dir/build/asrbench-variant.json" <<JSON
{"variant": "$variant", "source": "$(source_origin)", "build_type": "$BUILD_TYPE", "sanitizer": $sanitizer,
 "models": $models,
 "ccache": $([ "${CCACHE:-1}" != 0 ] && command -v ccache >/dev/null && echo true || echo false),
 "build_seconds": $seconds, "library_sha256": "$(sha256 "$dir/bindings/libchatllm.so")", "patches": [$patches]}
JSON
}

case "${1:-}" in
  source) fetch_source ;;
  build) [ -n "${2:-}" ] || die "which variant? stock, fixed, fixed-NNNN, with -asan or -tsan"; build "$2" ;;
  *) die "usage: tools/build_engine.sh source | build stock|fixed|fixed-NNNN[-asan|-tsan]|stock-asan|stock-tsan" ;;
esac
