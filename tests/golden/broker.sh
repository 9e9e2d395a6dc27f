#!/usr/bin/env bash
# Start/stop a single-node KRaft (combined mode) Apache Kafka broker from Maven Central jars.
#   tests/golden/broker.sh fetch   # resolve jars into $KELP_GOLDEN_CACHE/broker/libs
#   tests/golden/broker.sh start   # fresh storage, start, wait for 9093
#   tests/golden/broker.sh stop
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${KELP_GOLDEN_CACHE:-/work/cache/kelp-golden}"
B="$CACHE/broker"
LIBS="$B/libs"
DATA="$B/data"
PIDF="$B/broker.pid"

fetch() {
  mkdir -p "$B"
  if [ ! -f "$LIBS/.done" ] || ! cmp -s "$HERE/broker/pom.xml" "$B/pom.xml"; then
    rm -rf "$LIBS"
    cp "$HERE/broker/pom.xml" "$B/pom.xml"
    (cd "$B" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime)
    touch "$LIBS/.done"
  fi
}

wait_port() { # port timeout_s
  for _ in $(seq 1 "$2"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 1
  done
  return 1
}

start() {
  fetch
  stop || true
  rm -rf "$DATA"; mkdir -p "$DATA/logs"
  sed "s#@LOG_DIR@#$DATA/logs#" "$HERE/broker/server.properties" > "$B/server.properties"
  CP="$LIBS/*"
  JOPTS=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="$HERE/broker/log4j2.yaml")
  java "${JOPTS[@]}" -cp "$CP" kafka.tools.StorageTool format \
      -t "kelp-golden-cluster-1A" -c "$B/server.properties" > "$B/format.log" 2>&1 \
    || { cat "$B/format.log"; exit 1; }
  nohup java "${JOPTS[@]}" -cp "$CP" kafka.Kafka "$B/server.properties" > "$B/broker.log" 2>&1 &
  echo $! > "$PIDF"
  if ! wait_port 9093 90; then echo "broker did not open 9093"; tail -50 "$B/broker.log"; exit 1; fi
  sleep 3
  echo "broker up (pid $(cat "$PIDF")), log: $B/broker.log"
}

stop() {
  if [ -f "$PIDF" ]; then
    pid="$(cat "$PIDF")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDF"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 fetch|start|stop"; exit 2 ;;
esac
