#!/usr/bin/env bash
# Verifies the Docker route for real: builds the project's image from the Dockerfile, unchanged, and runs the
# comparison in a container with the workspace mounted, as the README's Docker section shows.
#
#   tools/docker_test.sh        (make docker-test) everything below
#   tools/docker_test.sh base   only steps 1 and 2: the daemon and the base image (nothing is compiled)
#
#   1. a Docker daemon: the one `docker info` reaches (DOCKER_HOST, or the default socket); where none runs and this
#      script runs as root, it starts dockerd itself, with its data root in build/docker/data (git-ignored, kept
#      between runs so that the next image build is warm) and its exec root, socket and pid file in a temporary folder
#      under /var/tmp, and stops it by its pid when done
#   2. the base image python:3.11-slim-bookworm: present, or pulled; where no registry is reachable, a local stand-in
#      with the same Debian 12 and Python 3.11 (debootstrap minbase + python3, pip and venv, `python` and `pip` as in
#      the official image), tagged with the official name so that the Dockerfile is tested unchanged. The stand-in
#      carries the host's CA certificates, so pip works inside the build where outbound TLS is intercepted; the
#      Dockerfile users get never does. It is labelled asrbench.standin=1 (docker image inspect shows it)
#   3. the pinned chatllm.cpp source in chatllm.cpp/ (tools/build_engine.sh source: the submodule, or the archive in
#      CHATLLM_SOURCE_ARCHIVE, as make setup does) and models/tiny-qwen3-asr.bin on the host (make tiny-model)
#   4. docker build -t $IMAGE --build-arg BUILD_THREADS=... --build-arg ENGINES="stock fixed" .
#   5. the README's command, with the tiny model and 3 iterations:
#        docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace $IMAGE \
#          python run_comparison.py --model models/tiny-qwen3-asr.bin --iterations 3
#      then the fixed library, one recreate way: the same with --library fixed --ways recreate
#   6. checks that each run's results are in the mounted results/, owned by and readable for the host user, and what
#      they say: stock, restart completes (recreate crashes in chatllm_destroy at 4a4310e, so that run exits 1);
#      fixed, recreate completes and every chatllm_destroy returns 0
#
# Environment: IMAGE (qwen3-asr-memory), BASE_IMAGE (python:3.11-slim-bookworm), BUILD_THREADS (cores),
# ENGINES ("stock fixed"), ITERATIONS (3), DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR (the ones apt uses here; one
# must be given where apt has none), DOCKER_TEST_NO_CACHE=1 (build the image cold: docker build --no-cache), DOCKER_TEST_PULL=0 (do
# not try the registry), DOCKER_TEST_STANDIN_CA=0 (no host CA certificates in the stand-in), DOCKER_TEST_CLEAN=1
# (remove the image, and the data root of a daemon this script started, afterwards).
# Written to build/docker/: timings.txt (one line per step), build.log (stamped with seconds since the build began),
# last-run.log (the containers' output), dockerd.log, debootstrap.log.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
case "${1:-}" in ''|base) ;; *) echo "usage: tools/docker_test.sh [base]" >&2; exit 2 ;; esac
PROJECT=$PWD
IMAGE=${IMAGE:-qwen3-asr-memory}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
THREADS=${BUILD_THREADS:-$(nproc 2>/dev/null || echo 2)}
ENGINES=${ENGINES:-stock fixed}
ITERATIONS=${ITERATIONS:-3}
MODEL=models/tiny-qwen3-asr.bin
STATE=$PROJECT/build/docker
mkdir -p "$STATE"
TMP=$(mktemp -d /var/tmp/asrbench-docker.XXXXXX)
DAEMON_PID=
LOG=$STATE/last-run.log
TIMINGS=$STATE/timings.txt
: > "$LOG"
: > "$TIMINGS"

say() { echo "docker-test: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
timing() { echo "$1: $2 s" >> "$TIMINGS"; say "$1 took $2 s"; }

cleanup() {
  local rc=$?
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    say "stopping the dockerd this script started (pid $DAEMON_PID)"
    kill -TERM "$DAEMON_PID"
    for _ in $(seq 60); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$DAEMON_PID" 2>/dev/null && { say "dockerd $DAEMON_PID did not stop within 30 s: killing it"; kill -KILL "$DAEMON_PID"; }
  fi
  unmount_under "$TMP"
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unmount_under() {  # anything still mounted below a folder (debootstrap's /proc, a container's rootfs), deepest first
  local dir mounts
  dir=$(readlink -f "$1" 2>/dev/null) || return 0
  mounts=$(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
  [ -z "$mounts" ] || echo "$mounts" | xargs -r -n1 umount -l
}

# 1. the daemon ----------------------------------------------------------------------------------------------------
command -v docker >/dev/null || die "the docker command is not installed (Debian: apt-get install docker.io)"
if docker info >/dev/null 2>&1; then
  say "using the running Docker daemon (${DOCKER_HOST:-default socket})"
else
  [ "$(id -u)" = 0 ] || die "no Docker daemon is reachable and starting one needs root: start dockerd, or set DOCKER_HOST"
  command -v dockerd >/dev/null || die "no Docker daemon is running and dockerd is not installed (Debian: apt-get install docker.io)"
  mkdir -p "$STATE/data"
  export DOCKER_HOST=unix://$TMP/docker.sock
  dockerd --data-root "$STATE/data" --exec-root "$TMP/exec" --pidfile "$TMP/dockerd.pid" --host "$DOCKER_HOST" \
    > "$STATE/dockerd.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { tail -5 "$STATE/dockerd.log" >&2; DAEMON_PID=; die "dockerd exited (log: $STATE/dockerd.log)"; }
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s (log: $STATE/dockerd.log)"
  say "started dockerd (pid $DAEMON_PID, data root $STATE/data, socket $TMP/docker.sock, log $STATE/dockerd.log)"
fi
say "daemon: $(docker info --format 'Docker {{.ServerVersion}}, {{.Driver}}, cgroup {{.CgroupDriver}}, runtime {{.DefaultRuntime}}' 2>/dev/null)"

# 2. the base image ------------------------------------------------------------------------------------------------
debian_mirror() {  # the Debian mirror apt uses on this host for $1 (bookworm, or bookworm-security)
  local suite=$1 variable=$2
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null | awk -v s="$suite" '$1 == s {print $2; exit}' \
    | grep . || die "apt on this host has no $suite source to build the stand-in from: set $variable to a Debian mirror"
}

build_standin() {
  command -v debootstrap >/dev/null || die "no $BASE_IMAGE and no registry: apt-get install debootstrap (for the stand-in)"
  [ "$(id -u)" = 0 ] || die "no $BASE_IMAGE and no registry: building the stand-in needs root (debootstrap)"
  local mirror security rootfs=$TMP/rootfs started=$SECONDS
  mirror=${DEBIAN_MIRROR:-$(debian_mirror bookworm DEBIAN_MIRROR)}
  security=${DEBIAN_SECURITY_MIRROR:-$(debian_mirror bookworm-security DEBIAN_SECURITY_MIRROR)}
  [ -n "$mirror" ] && [ -n "$security" ] || exit 1  # debian_mirror said why
  say "building a stand-in for $BASE_IMAGE: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" \
    > "$STATE/debootstrap.log" 2>&1 || { tail -5 "$STATE/debootstrap.log" >&2; die "debootstrap failed (log: $STATE/debootstrap.log)"; }
  unmount_under "$rootfs"
  # the official image's sources, on this host's mirrors
  cat > "$rootfs/etc/apt/sources.list" <<EOF
deb ${mirror%/} bookworm main
deb ${mirror%/} bookworm-updates main
deb ${security%/} bookworm-security main
EOF
  # as the official image: `python` and `pip` on PATH, and pip installs into the system (no PEP 668 marker)
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
  rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
  if [ "${DOCKER_TEST_STANDIN_CA:-1}" != 0 ]; then
    # the host's CA certificates, so that pip inside the build trusts an intercepting proxy; also the single
    # certificates, so that an update-ca-certificates during the build keeps them
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  fi
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'LABEL asrbench.standin=1' \
        --change "LABEL asrbench.standin.source=\"debootstrap minbase bookworm $mirror\"" \
        --change 'CMD ["python3"]' \
        - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  docker run --rm "$BASE_IMAGE" sh -c 'python --version && pip --version' | sed 's/^/docker-test:   /' >&2
  timing "stand-in base image (debootstrap + import)" $((SECONDS - started))
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE is present$(docker image inspect -f '{{if index .Config.Labels "asrbench.standin"}} (the local stand-in){{end}}' "$BASE_IMAGE")"
elif [ "${DOCKER_TEST_PULL:-1}" != 0 ] && timeout 600 docker pull -q "$BASE_IMAGE" >/dev/null 2>"$TMP/pull.err"; then
  say "pulled $BASE_IMAGE"
else
  [ -s "$TMP/pull.err" ] && say "cannot pull $BASE_IMAGE: $(tail -1 "$TMP/pull.err")"
  build_standin
fi

if [ "${1:-}" = base ]; then
  say "base image ready: $(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c1-19)"
  exit 0
fi

# 3. the source and the model on the host --------------------------------------------------------------------------
if [ ! -f chatllm.cpp/CMakeLists.txt ]; then
  # as .ci/run: the archive the project provides next to the checkout, where the submodule cannot be fetched
  vendored=../shared/vendor/chatllm.cpp-4a4310e.tar.gz
  if [ -z "${CHATLLM_SOURCE_ARCHIVE:-}" ] && [ -f "$vendored" ]; then
    CHATLLM_SOURCE_ARCHIVE=$(readlink -f "$vendored")
    export CHATLLM_SOURCE_ARCHIVE
  fi
  tools/build_engine.sh source || die "no chatllm.cpp source: git submodule update --init, or set CHATLLM_SOURCE_ARCHIVE"
fi
if [ ! -f "$MODEL" ]; then
  say "making $MODEL (make tiny-model)"
  make -s tiny-model || die "could not write $MODEL: pip install -e '.[models]', then make tiny-model"
fi

# 4. the image -----------------------------------------------------------------------------------------------------
say "docker build -t $IMAGE --build-arg BUILD_THREADS=$THREADS --build-arg ENGINES=\"$ENGINES\" . (log: $STATE/build.log)"
started=$SECONDS
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
cold=()
[ "${DOCKER_TEST_NO_CACHE:-0}" = 1 ] && cold=(--no-cache)
# each line of the build's output stamped with the seconds since it started, to see where a cold build spends its time
if ! docker build "${cold[@]}" -t "$IMAGE" --build-arg BUILD_THREADS="$THREADS" --build-arg ENGINES="$ENGINES" . 2>&1 \
     | while IFS= read -r line; do printf '%5d %s\n' $((SECONDS - started)) "$line"; done > "$STATE/build.log"; then
  tail -20 "$STATE/build.log" >&2
  die "docker build failed (log: $STATE/build.log)"
fi
timing "image build ($(grep -c 'Using cache' "$STATE/build.log" || true) cached steps)" $((SECONDS - started))
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true  # the image this build replaced, unless something still uses it
fi
say "image $IMAGE: $(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19), $(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1048576 )) MB"

# 5. and 6. the runs -----------------------------------------------------------------------------------------------
HOST_UID=$(id -u)
HOST_GID=$(id -g)

run_in_container() {  # label, exit codes allowed, run_comparison.py's options. Prints the host path of the results.
  local what=$1 allowed=$2 out=$TMP/run.out started=$SECONDS
  shift 2
  local cmd=(docker run --rm --user "$HOST_UID:$HOST_GID" -v "$PWD":/workspace "$IMAGE" python run_comparison.py "$@")
  say "$what: ${cmd[*]}"
  echo "\$ ${cmd[*]}" >> "$LOG"
  local rc=0
  "${cmd[@]}" > "$out" 2>&1 || rc=$?
  cat "$out" >> "$LOG"
  timing "container run, $what" $((SECONDS - started))
  say "$what: exit code $rc; the container's last lines:"
  tail -5 "$out" | sed 's/^/    /' >&2
  case " $allowed " in *" $rc "*) ;; *) die "$what: run_comparison.py exited with $rc (output: $LOG)" ;; esac
  local inside
  inside=$(sed -n 's|^results: \(/workspace/[^ ]*/comparison_results.json\) (copied to .*|\1|p' "$out" | tail -1)
  [ -n "$inside" ] || die "$what: the output names no results file (output: $LOG)"
  echo "$PROJECT/${inside#/workspace/}"
}

check_on_host() {  # the results file, and what it must say: stock or fixed
  local file=$1 expect=$2 dir foreign
  dir=$(dirname "$file")
  [ -f "$file" ] || die "$file is not on the host"
  [ -r "$file" ] || die "$file is not readable by $(id -un)"
  # everything the container wrote is the host user's (docker run --user), so the next run on the host can write too
  foreign=$(find "$dir" results/comparison_results.json results/memory.png \( ! -uid "$HOST_UID" -o ! -readable \) \
              -print 2>/dev/null | head -3)
  [ -z "$foreign" ] || die "not owned by or not readable for uid $HOST_UID: $foreign"
  python3 - "$file" "$expect" <<'PY' || die "$file does not say what it should"
import json, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
ways, iterations, library = doc["ways"], doc["iterations"], doc["metadata"]["chatllm_library"]
n = int(doc["config"]["iterations"])
if sys.argv[2] == "stock":
    # at chatllm.cpp 4a4310e chatllm_destroy aborts (FINDINGS.md), so recreate crashes in destroy; restart completes
    assert library["variant"] == "stock" and set(ways) == {"recreate", "restart"}, (library["variant"], list(ways))
    assert ways["restart"]["status"] == "completed" and len(iterations["restart"]) == n, ways["restart"]["status"]
    assert ways["recreate"]["status"] == "completed" or ways["recreate"].get("died_in") == "destroy", ways["recreate"]
else:
    assert library["variant"] == "fixed" and list(ways) == ["recreate"], (library["variant"], list(ways))
    assert ways["recreate"]["status"] == "completed", ways["recreate"]["status"]
    assert [r["release_rc"] for r in iterations["recreate"]] == [0] * n, "chatllm_destroy did not return 0"
    assert library["build"]["patches"], "the fixed library's manifest lists no patches"
    assert library["library"]["path"].startswith("/opt/asrbench/build/engines/fixed/"), library["library"]["path"]
for way, info in ways.items():
    print(f"docker-test:   {way}: {info.get('message') or info['status']}; "
          f"{doc['summary'].get(way, {}).get('verdict', 'no data')}", file=sys.stderr)
PY
  say "on the host: $(stat -c '%n, owner %U:%G (%u:%g), %s bytes, mode %A' "$file")"
  echo "results on the host: $(stat -c '%n, owner %U:%G (%u:%g), %s bytes' "$file")" >> "$TIMINGS"
}

# the stock library as released: recreate is expected to crash in chatllm_destroy (exit 1), restart to complete
stock=$(run_in_container "stock library" "0 1" --model "$MODEL" --iterations "$ITERATIONS")
check_on_host "$stock" stock
case " $ENGINES " in
  *" fixed "*)
    fixed=$(run_in_container "fixed library, recreate" 0 --model "$MODEL" --iterations "$ITERATIONS" --library fixed --ways recreate)
    check_on_host "$fixed" fixed ;;
  *) say "ENGINES=\"$ENGINES\" has no fixed library: its run is skipped" ;;
esac

if [ "${DOCKER_TEST_CLEAN:-0}" = 1 ]; then
  docker image rm "$IMAGE" >/dev/null
  [ -z "$DAEMON_PID" ] || { kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=; rm -rf "$STATE/data"; }
fi
say "passed. Timings: $TIMINGS; the containers' output: $LOG"
