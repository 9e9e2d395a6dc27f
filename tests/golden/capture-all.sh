#!/usr/bin/env bash
# Re-capture Kafka golden bytes for every client (or the ones named on the command line).
#
#   tests/golden/capture-all.sh                  # all clients
#   tests/golden/capture-all.sh java franz-go    # only these
#
# Clients: java java-kip848 librdkafka librdkafka-kip848 kcat franz-go franz-go-kip848
#          kafka-python sarama kafkajs
#
# Needs: Java 17 + Maven, Python 3, Go, Node + npm, kcat (apt-get install kcat).
# Downloads go to $KELP_GOLDEN_CACHE (default /work/cache/kelp-golden): broker + java jars
# (via Maven, which also fills ~/.m2), a Python venv, kafkajs node_modules. Go modules go to
# the Go module cache. Nothing is built or downloaded inside the repo.
# Output: core/tests/fixtures/golden/<client>/ (replaced wholesale per client) + SUMMARY.md.
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

setup_kafkajs() {
  local d="$CACHE/kafkajs"
  mkdir -p "$d"
  cp "$HERE/clients/kafkajs/package.json" "$HERE/clients/kafkajs/package-lock.json" "$HERE/clients/kafkajs/golden.js" "$d/"
  (cd "$d" && npm ci --no-audit --no-fund --silent)
}

broker_version() { ls "$CACHE/broker/libs" | sed -n 's/^kafka_2\.13-\(.*\)\.jar$/\1/p'; }

# ------------------------------------------------------------- capture harness
# run_capture <client-dir> <client-version> <about-file> <extra-note> <command...>
# Proxy on 19092 -> broker 9093 while the command runs; frames land in a scratch dir that
# then replaces core/tests/fixtures/golden/<client-dir>, plus a generated SOURCE.md.
run_capture() {
  local name="$1" version="$2" about="$3" note="$4"; shift 4
  local tmp="$CACHE/out/$name"
  rm -rf "$tmp"; mkdir -p "$tmp"
  export GOLDEN_PAUSE_FILE="$CACHE/out/$name.pause"
  rm -f "$GOLDEN_PAUSE_FILE"
  "$VENV/bin/python" -u "$HERE/capture.py" "$tmp" --pause-file "$GOLDEN_PAUSE_FILE" > "$LOGS/$name.proxy.log" 2>&1 &
  PROXY_PID=$!
  # wait for the proxy's start line (a probe connection would show up in the capture)
  for _ in $(seq 1 100); do grep -q '^capture: ' "$LOGS/$name.proxy.log" 2>/dev/null && break; sleep 0.1; done
  local rc=0
  echo "=== $name ($version): $*"
  "$@" > "$LOGS/$name.client.log" 2>&1 || rc=$?
  sleep 1
  kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=""
  if [ "$rc" != 0 ]; then
    echo "!!! $name failed (rc=$rc), see $LOGS/$name.client.log"; tail -20 "$LOGS/$name.client.log"
    return 1
  fi
  rm -rf "$FIX/$name"; mkdir -p "$FIX/$name"
  cp "$tmp"/* "$FIX/$name/"
  local pairs=$(($(wc -l < "$FIX/$name/manifest.tsv") - 1))
  {
    echo "# Golden capture: $name"
    echo
    echo "- Client: $version"
    echo "- Broker: Apache Kafka $(broker_version) (Maven Central jars, single-node KRaft combined mode, Java $(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p'))"
    echo "- Captured: $(date -u +%Y-%m-%d) by tests/golden/capture-all.sh through tests/golden/capture.py"
    echo "- Requests captured: $pairs (see manifest.tsv; resp_len -1 = no response seen)"
    [ -n "$note" ] && echo "- $note"
    echo
    echo "Files: \`NNNN-<api>-v<version>.req\` = request header + body, \`.resp\` = response header + body,"
    echo "both without the 4-byte size prefix. NNNN = order of arrival of the request at the proxy"
    echo "(across all connections of this run)."
    echo
    cat "$about"
  } > "$FIX/$name/SOURCE.md"
  echo "--- $name: $pairs requests"
  return 0
}

# ------------------------------------------------------------------- clients
C="$HERE/clients"
java_version() { echo "Apache Kafka Java client org.apache.kafka:kafka-clients:$(ls "$CACHE/java/libs" | sed -n 's/^kafka-clients-\(.*\)\.jar$/\1/p')"; }
rdk_version() { "$VENV/bin/python" -c 'import confluent_kafka as c; v = c.version(); v = v[0] if isinstance(v, tuple) else v; print("confluent-kafka (Python) %s, bundled librdkafka %s" % (v, c.libversion()[0]))'; }
gomod_version() { (cd "$C/$1" && go list -m -f '{{.Path}} {{.Version}}' "$2"); }

c_java() {
  setup_java
  run_capture java "$(java_version)" "$C/java/ABOUT.md" "Group consumer: group.protocol=classic" \
    timeout 300 java -cp "$CACHE/java/libs/*" "$C/java/GoldenClient.java" "$BOOT" golden-java golden-java-group classic
}
c_java_kip848() {
  setup_java
  run_capture java-kip848 "$(java_version)" "$C/java/ABOUT.md" \
    "Group consumer: group.protocol=consumer (KIP-848, ConsumerGroupHeartbeat); broker has group.version=1 by default" \
    timeout 300 java -cp "$CACHE/java/libs/*" "$C/java/GoldenClient.java" "$BOOT" golden-java848 golden-java848-group consumer
}
c_librdkafka() {
  run_capture librdkafka "$(rdk_version)" "$C/librdkafka/ABOUT.md" "Group consumer: group.protocol=classic" \
    timeout 300 "$VENV/bin/python" -u "$C/librdkafka/golden_client.py" "$BOOT" classic
}
c_librdkafka_kip848() {
  run_capture librdkafka-kip848 "$(rdk_version)" "$C/librdkafka/ABOUT.md" \
    "Group consumer: group.protocol=consumer (KIP-848, ConsumerGroupHeartbeat)" \
    timeout 300 "$VENV/bin/python" -u "$C/librdkafka/golden_client.py" "$BOOT" consumer
}
c_kcat() {
  run_capture kcat "$(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1 (Debian package), librdkafka \2/p')" \
    "$C/kcat/ABOUT.md" "" timeout 300 bash "$C/kcat/run.sh" "$BOOT" "$VENV/bin/python"
}
c_franz_go() {
  run_capture franz-go "$(gomod_version franz-go github.com/twmb/franz-go), $(gomod_version franz-go github.com/twmb/franz-go/pkg/kadm)" \
    "$C/franz-go/ABOUT.md" "Group consumer: classic protocol" \
    bash -c "cd '$C/franz-go' && timeout 600 go run . '$BOOT' classic"
}
c_franz_go_kip848() {
  run_capture franz-go-kip848 "$(gomod_version franz-go github.com/twmb/franz-go), $(gomod_version franz-go github.com/twmb/franz-go/pkg/kadm)" \
    "$C/franz-go/ABOUT.md" "Group consumer: KIP-848 (kgo.ServerSideBalancer)" \
    bash -c "cd '$C/franz-go' && timeout 600 go run . '$BOOT' consumer"
}
c_kafka_python() {
  run_capture kafka-python "kafka-python $("$VENV/bin/python" -c 'import kafka; print(kafka.__version__)')" \
    "$C/kafka-python/ABOUT.md" "" timeout 300 "$VENV/bin/python" -u "$C/kafka-python/golden_client.py" "$BOOT"
}
c_sarama() {
  run_capture sarama "$(gomod_version sarama github.com/IBM/sarama)" "$C/sarama/ABOUT.md" "" \
    bash -c "cd '$C/sarama' && timeout 600 go run . '$BOOT'"
}
c_kafkajs() {
  setup_kafkajs
  run_capture kafkajs "kafkajs $(node -p "require('$CACHE/kafkajs/node_modules/kafkajs/package.json').version") (Node $(node --version))" \
    "$C/kafkajs/ABOUT.md" "" timeout 300 node "$CACHE/kafkajs/golden.js" "$BOOT"
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
