#!/usr/bin/env bash
# Runs a one-process SeaweedFS stack with the MQ broker on 127.0.0.1 and prints the broker leader's address
# once it is ready (see "Ready" below).
#
#   scripts/smq/run-weed.sh [--detach] [--free-ports] DIR [EXTRA_WEED_SERVER_FLAGS...]
#
# DIR holds the data and weed.log. Default ports are weed's own: master 9333, volume 8080, filer 8888,
# broker gRPC 17777 (gRPC of the others: HTTP port + 10000); pass e.g. -mq.broker.port=N -master.port=N
# -volume.port=N -filer.port=N to move them, or --free-ports to have every port picked free. Telemetry is
# always off (-master.telemetry=false comes last, so it wins over anything passed): nothing leaves the
# machine.
#
# Foreground (default): prints the address, then runs until weed exits or the script is interrupted, and
# stops weed on the way out (SIGTERM, SIGKILL after 15 s). --detach: prints the address, writes DIR/weed.pid
# and leaves weed running (stop it with `kill "$(cat DIR/weed.pid)"`; weed then leaves its gRPC sockets
# /tmp/seaweedfs-*-grpc-<port>.sock behind if killed hard).
#
# Ready means FindBrokerLeader names a leader AND a control-plane call (ListTopics) goes through: the
# filer names the lock owner up to a few seconds before the broker itself knows it, and until then its
# control-plane calls fail with "dial tcp: missing address". From a cold start this takes about 33 s.
#
# Environment: KELP_WEED_BIN (default: the binary scripts/smq/build-weed.sh builds or finds in the cache),
# KELP_SMQ_READY_TIMEOUT (seconds to wait for a leader, default 120).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

detach=0 free=0
while [[ "${1:-}" == --* ]]; do
    case "$1" in
        --detach) detach=1 ;;
        --free-ports) free=1 ;;
        *) echo "run-weed: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 1 ]]; then
    echo "usage: $0 [--detach] [--free-ports] DIR [EXTRA_WEED_SERVER_FLAGS...]" >&2
    exit 2
fi
dir="$1"; shift
extra=("$@")
if [[ $free == 1 ]]; then
    # every HTTP and gRPC port picked free on 127.0.0.1, so that this weed runs beside anything
    read -r -a p < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
    extra+=(-master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}"
        -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}"
        -mq.broker.port="${p[6]}")
fi
timeout="${KELP_SMQ_READY_TIMEOUT:-120}"

# Ports (flags must be written -name=value to be seen here): the broker's for the probe, the others to
# remove the gRPC unix sockets weed creates in /tmp (/tmp/seaweedfs-<svc>-grpc-<port>.sock) after it.
broker_port=17777 master_port=9333 volume_port=8080 filer_port=8888
master_grpc="" volume_grpc="" filer_grpc=""
for a in "${extra[@]}"; do
    b="${a#-}"; b="${b#-}"
    case "$b" in
        mq.broker.port=*) broker_port="${a#*=}" ;;
        master.port=*) master_port="${a#*=}" ;;
        volume.port=*) volume_port="${a#*=}" ;;
        filer.port=*) filer_port="${a#*=}" ;;
        master.port.grpc=*) master_grpc="${a#*=}" ;;
        volume.port.grpc=*) volume_grpc="${a#*=}" ;;
        filer.port.grpc=*) filer_grpc="${a#*=}" ;;
    esac
done
broker="127.0.0.1:$broker_port"
sockets=(
    "/tmp/seaweedfs-master-grpc-${master_grpc:-$((master_port + 10000))}.sock"
    "/tmp/seaweedfs-volume-grpc-${volume_grpc:-$((volume_port + 10000))}.sock"
    "/tmp/seaweedfs-filer-grpc-${filer_grpc:-$((filer_port + 10000))}.sock"
)

weed="${KELP_WEED_BIN:-}"
if [[ -z "$weed" ]]; then weed="$("$here/build-weed.sh" | tail -n 1)"; fi
[[ -x "$weed" ]] || { echo "run-weed: no weed binary at '$weed'" >&2; exit 1; }

# Build the readiness probe before weed starts, so the wait below is not spent compiling.
(cd "$root" && cargo build -q -p kelp-proto --example smq_probe)

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
log="$dir/weed.log"

"$weed" server -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.peers=none -filer -mq.broker \
    -filer.localSocket="$dir/filer.sock" "${extra[@]}" -master.telemetry=false >"$log" 2>&1 &
pid=$!

# weed takes 10-15 s to finish on SIGTERM (and does not flush the broker's buffer on it either).
stop_weed() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "${sockets[@]}"
}
trap stop_weed EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s)
if ! leader="$(cd "$root" && cargo run -q -p kelp-proto --example smq_probe -- --wait "$timeout" "$broker")"; then
    echo "run-weed: no broker leader at $broker after ${timeout}s; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi
if ! kill -0 "$pid" 2>/dev/null; then
    echo "run-weed: weed exited; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
fi
echo "run-weed: ready in $(( $(date +%s) - start )) s (pid $pid, log $log)" >&2
echo "$leader"

if [[ $detach == 1 ]]; then
    echo "$pid" >"$dir/weed.pid"
    trap - EXIT
    exit 0
fi
wait "$pid"
