#!/usr/bin/env bash
# A real Apache Kafka 4.4 broker (single-node KRaft, from the jars of `tests/install.sh kafka`) to
# develop and check the end-to-end tests against, since they must pass against Kafka too:
#
#   tests/clients/kafka/dev-broker.sh start     # fresh storage; prints the KELP_E2E_BOOTSTRAP to use
#   KELP_E2E_BOOTSTRAP=127.0.0.1:39092 cargo test -p kelp-tests
#   tests/clients/kafka/dev-broker.sh stop
#
# Ports: $KELP_DEV_BROKER_PORT (default 39092) for clients, the next one for the controller.
# State and log: $KELP_CACHE/dev-broker/ (broker.log).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
LIBS="$CACHE/kafka/libs"
D="$CACHE/dev-broker"
PORT="${KELP_DEV_BROKER_PORT:-39092}"
PIDF="$D/broker.pid"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop() {
  if [ -f "$PIDF" ]; then
    local pid; pid="$(cat "$PIDF")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDF"
  fi
}

start() {
  [ -d "$LIBS" ] || { echo "$LIBS missing: run tests/install.sh kafka" >&2; exit 1; }
  stop
  if port_open "$PORT"; then echo "127.0.0.1:$PORT is taken by another process" >&2; exit 1; fi
  rm -rf "$D/data"; mkdir -p "$D/data"
  sed -e "s#@LOG_DIR@#$D/data#" -e "s#@CONTROLLER_PORT@#$((PORT + 1))#g" -e "s#@PORT@#$PORT#g" \
    "$HERE/dev-broker.properties" > "$D/server.properties"
  local jopts=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="$HERE/log4j2-broker.yaml")
  java "${jopts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format -t kelp-dev-broker-cluster1 \
    -c "$D/server.properties" > "$D/format.log" 2>&1 || { cat "$D/format.log"; exit 1; }
  nohup java "${jopts[@]}" -cp "$LIBS/*" kafka.Kafka "$D/server.properties" > "$D/broker.log" 2>&1 &
  echo $! > "$PIDF"
  for _ in $(seq 1 90); do
    if port_open "$PORT"; then
      sleep 2
      echo "broker up (pid $(cat "$PIDF"), log $D/broker.log)"
      echo "KELP_E2E_BOOTSTRAP=127.0.0.1:$PORT"
      return 0
    fi
    kill -0 "$(cat "$PIDF")" 2>/dev/null || break
    sleep 1
  done
  echo "broker did not open $PORT" >&2; tail -50 "$D/broker.log" >&2; stop; exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
