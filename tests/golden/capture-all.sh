#!/usr/bin/env bash
# Re-capture Kafka golden bytes for every client (or the ones named on the command line).
#
#   tests/golden/capture-all.sh                 # all clients
#   tests/golden/capture-all.sh java franz-go   # only these
#
# Needs: Java 17 + Maven, Python 3.11, Go, Node (for kafkajs), kcat (apt-get install kcat).
# Downloads go to $KELP_GOLDEN_CACHE (default /work/cache/kelp-golden), Go modules to the
# usual Go module cache, Maven artifacts to ~/.m2. Nothing is built inside the repo.
# Output: core/tests/fixtures/golden/<client>/ (replaced wholesale per client).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export KELP_GOLDEN_CACHE="${KELP_GOLDEN_CACHE:-/work/cache/kelp-golden}"
CACHE="$KELP_GOLDEN_CACHE"
FIX="$REPO/core/tests/fixtures/golden"
BOOT=127.0.0.1:19092
VENV="$CACHE/venv"
LOGS="$CACHE/logs"
mkdir -p "$CACHE" "$FIX" "$LOGS"

PROXY_PID=""
cleanup() {
  if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
  "$HERE/broker.sh" stop || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- setup helpers
setup_java() {
  local d="$CACHE/java"
  mkdir -p "$d"
  if [ ! -f "$d/libs/.done" ] || ! cmp -s "$HERE/clients/java/pom.xml" "$d/pom.xml"; then
    rm -rf "$d/libs"; cp "$HERE/clients/java/pom.xml" "$d/pom.xml"
    (cd "$d" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$d/libs" -DincludeScope=runtime)
    touch "$d/libs/.done"
  fi
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
  "$VENV/bin/pip" install -q -r "$HERE/clients/requirements.txt"
}

# ------------------------------------------------------------- capture harness
# run_capture <client-dir-name> <command...>: proxy on 19092 -> broker 9093 while the
# command runs; frames land in a scratch dir that then replaces the fixture dir.
run_capture() {
  local name="$1"; shift
  local tmp="$CACHE/out/$name"
  rm -rf "$tmp"; mkdir -p "$tmp"
  export GOLDEN_PAUSE_FILE="$CACHE/out/$name.pause"
  rm -f "$GOLDEN_PAUSE_FILE"
  "$VENV/bin/python" -u "$HERE/capture.py" "$tmp" --pause-file "$GOLDEN_PAUSE_FILE" > "$LOGS/$name.proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/19092) 2>/dev/null && break; sleep 0.1; done
  local rc=0
  echo "=== $name: $*"
  "$@" > "$LOGS/$name.client.log" 2>&1 || rc=$?
  sleep 1
  kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=""
  if [ "$rc" != 0 ]; then
    echo "!!! $name failed (rc=$rc), see $LOGS/$name.client.log"; tail -20 "$LOGS/$name.client.log"
    return 1
  fi
  local keep=""
  [ -f "$FIX/$name/SOURCE.md" ] && keep="$(cat "$FIX/$name/SOURCE.md")"
  rm -rf "$FIX/$name"; mkdir -p "$FIX/$name"
  cp "$tmp"/* "$FIX/$name/"
  [ -n "$keep" ] && printf '%s\n' "$keep" > "$FIX/$name/SOURCE.md"
  echo "--- $name: $(($(wc -l < "$FIX/$name/manifest.tsv") - 1)) pairs"
  return 0
}

# ------------------------------------------------------------------- clients
c_java() {
  setup_java
  run_capture java timeout 300 java -cp "$CACHE/java/libs/*" "$HERE/clients/java/GoldenClient.java" \
    "$BOOT" golden-java golden-java-group classic
}
c_java_kip848() {
  setup_java
  run_capture java-kip848 timeout 300 java -cp "$CACHE/java/libs/*" "$HERE/clients/java/GoldenClient.java" \
    "$BOOT" golden-java848 golden-java848-group consumer
}
c_librdkafka() {
  run_capture librdkafka timeout 300 "$VENV/bin/python" -u "$HERE/clients/librdkafka/golden_client.py" "$BOOT"
}
c_librdkafka_kip848() {
  run_capture librdkafka-kip848 timeout 300 "$VENV/bin/python" -u "$HERE/clients/librdkafka/golden_client.py" "$BOOT" consumer
}
c_kcat() {
  run_capture kcat timeout 300 bash "$HERE/clients/kcat/run.sh" "$BOOT" "$VENV/bin/python"
}
c_franz_go() {
  run_capture franz-go bash -c "cd '$HERE/clients/franz-go' && timeout 600 go run . '$BOOT'"
}
c_franz_go_kip848() {
  run_capture franz-go-kip848 bash -c "cd '$HERE/clients/franz-go' && timeout 600 go run . '$BOOT' consumer"
}
c_sarama() {
  run_capture sarama bash -c "cd '$HERE/clients/sarama' && timeout 600 go run . '$BOOT'"
}
c_kafka_python() {
  run_capture kafka-python timeout 300 "$VENV/bin/python" -u "$HERE/clients/kafka-python/golden_client.py" "$BOOT"
}
c_kafkajs() {
  local d="$CACHE/kafkajs"
  mkdir -p "$d"
  cp "$HERE/clients/kafkajs/package.json" "$HERE/clients/kafkajs/package-lock.json" "$HERE/clients/kafkajs/golden.js" "$d/" 2>/dev/null || true
  (cd "$d" && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
  run_capture kafkajs timeout 300 node "$d/golden.js" "$BOOT"
}

ALL=(java java-kip848 librdkafka librdkafka-kip848 kcat franz-go franz-go-kip848 kafka-python sarama kafkajs)
CLIENTS=("$@"); [ ${#CLIENTS[@]} -eq 0 ] && CLIENTS=("${ALL[@]}")

setup_venv
"$HERE/broker.sh" start
FAILED=()
for c in "${CLIENTS[@]}"; do
  fn="c_${c//-/_}"
  "$fn" || FAILED+=("$c")
done
"$VENV/bin/python" "$HERE/summarize.py" "$FIX" > "$FIX/SUMMARY.md"
echo "summary: $FIX/SUMMARY.md"
if [ ${#FAILED[@]} -gt 0 ]; then echo "FAILED: ${FAILED[*]}"; exit 1; fi
