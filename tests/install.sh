#!/usr/bin/env bash
# Installs every Kafka client the end-to-end tests (`cargo test -p kelp-tests`) drive.
# Idempotent and cached: a second run only checks stamps (a second or two).
#
#   tests/install.sh                 # everything
#   tests/install.sh kcat java       # only these components
#
# Components:
#   system    apt packages for whatever is missing: kcat, Java 17, Maven, python3-venv, Go, Node + npm
#   kcat      (part of system; listed for clarity)
#   kafka     Apache Kafka 4.4 jars from Maven Central: the CLI tools (clients/kafka/kafka.sh) and
#             the dev broker (clients/kafka/dev-broker.sh)
#   java      kafka-clients 4.4 jars for clients/java/KelpClient.java
#   python    venv with confluent-kafka (librdkafka) and kafka-python (+ codecs)
#   franz-go  go build of clients/franz-go
#   kafkajs   npm ci of clients/kafkajs
#
# Everything goes under $KELP_CACHE (default ~/.cache/kelp-tests), plus Maven's ~/.m2, the Go module
# and build caches and npm's cache. Nothing is written inside the repository.
# Each component writes $KELP_CACHE/stamps/<component> holding a hash of its inputs; the Rust harness
# reads these stamps to tell "not installed" (test SKIPPED) from "broken" (test fails).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
C="$HERE/clients"
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
STAMPS="$CACHE/stamps"
mkdir -p "$CACHE" "$STAMPS"

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# hash of the given files (+ the component name); a stamp holding it means "installed from these"
inputs_hash() { { echo "$1"; shift; cat "$@"; } | sha256sum | cut -d' ' -f1; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { echo "$2" > "$STAMPS/$1"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ------------------------------------------------------------------------------------------ system
install_system() {
  local pkgs=()
  have kcat || pkgs+=(kcat)
  have java || pkgs+=(openjdk-17-jdk-headless)
  have mvn || pkgs+=(maven)
  have go || pkgs+=(golang-go)
  have node || pkgs+=(nodejs)
  have npm || pkgs+=(npm)
  have python3 || pkgs+=(python3)
  if have python3 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then pkgs+=(python3-venv); fi
  have sha256sum || pkgs+=(coreutils)
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  if [ "${v:-0}" -lt 17 ]; then
    log "Java $v found; the Kafka 4.x tools need 17+"
    apt_install openjdk-17-jdk-headless
  fi
  stamp system "$(kcat -V 2>&1 | head -1)"
  stamp kcat "$(kcat -V 2>&1 | head -1)"
}

# ------------------------------------------------------------------------------------ maven jars
# mvn_libs <name> <pom>: resolve the pom's runtime dependencies into $CACHE/<name>/libs
mvn_libs() {
  local name="$1" pom="$2" d="$CACHE/$1" h
  h="$(inputs_hash "$name" "$pom")"
  if fresh "$name" "$h" && [ -d "$d/libs" ]; then log "$name: up to date"; return; fi
  log "$name: resolving jars with Maven"
  rm -rf "$d/libs" "$d/libs.tmp"
  mkdir -p "$d"
  cp "$pom" "$d/pom.xml"
  (cd "$d" && mvn -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$d/libs.tmp" \
      -DincludeScope=runtime > "$d/mvn.log" 2>&1) || { tail -40 "$d/mvn.log" >&2; exit 1; }
  mv "$d/libs.tmp" "$d/libs"
  stamp "$name" "$h"
}

install_kafka() { mvn_libs kafka "$C/kafka/pom.xml"; }
install_java() { mvn_libs java "$C/java/pom.xml"; }

# ------------------------------------------------------------------------------------------ python
install_python() {
  local h venv="$CACHE/venv"
  h="$(inputs_hash python "$C/requirements.txt")"
  if fresh python "$h" && [ -x "$venv/bin/python" ]; then log "python: up to date"; return; fi
  log "python: venv + pip install"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$C/requirements.txt"
  "$venv/bin/python" -c 'import confluent_kafka, kafka, snappy, lz4, zstandard'
  stamp python "$h"
}

# ---------------------------------------------------------------------------------------- franz-go
install_franz_go() {
  local h bin="$CACHE/bin/kelp-franz-go"
  h="$(inputs_hash franz-go "$C/franz-go/go.mod" "$C/franz-go/go.sum" "$C/franz-go/main.go")"
  if fresh franz-go "$h" && [ -x "$bin" ]; then log "franz-go: up to date"; return; fi
  log "franz-go: go build"
  mkdir -p "$CACHE/bin"
  (cd "$C/franz-go" && go mod download && go build -o "$bin" .)
  stamp franz-go "$h"
}

# ----------------------------------------------------------------------------------------- kafkajs
install_kafkajs() {
  local h d="$CACHE/kafkajs"
  h="$(inputs_hash kafkajs "$C/kafkajs/package.json" "$C/kafkajs/package-lock.json")"
  if fresh kafkajs "$h" && [ -d "$d/node_modules/kafkajs" ]; then log "kafkajs: up to date"; return; fi
  log "kafkajs: npm ci"
  mkdir -p "$d"
  cp "$C/kafkajs/package.json" "$C/kafkajs/package-lock.json" "$d/"
  (cd "$d" && npm ci --no-audit --no-fund --silent)
  stamp kafkajs "$h"
}

ALL=(system kafka java python franz-go kafkajs)
WANT=("$@")
[ ${#WANT[@]} -eq 0 ] && WANT=("${ALL[@]}")
start=$SECONDS
install_system   # always: the other components need its tools, and it is only a few checks when warm
for comp in "${WANT[@]}"; do
  case "$comp" in
    system|kcat) ;;
    kafka) install_kafka ;;
    java) install_java ;;
    python|librdkafka|kafka-python) install_python ;;
    franz-go) install_franz_go ;;
    kafkajs) install_kafkajs ;;
    *) echo "unknown component: $comp (one of: ${ALL[*]})" >&2; exit 2 ;;
  esac
done
log "done in $((SECONDS - start))s; cache: $CACHE"
