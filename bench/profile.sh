#!/usr/bin/env bash
# Where Kelp's CPU goes under load, as a flame graph: builds the gateways with frame pointers and
# line tables (cargo profile `profiling`, target/profiling/), installs what it needs (cached: perf,
# inferno, the Kafka 4.4 tools), then runs bench/profile.py: ProducerPerformance against the gateway
# under `perf record -g`, and writes bench/results/profile-<date>-<host>-<label>.{md,svg,folded}.
#
#   bench/profile.sh                                   # kelp, 1M x 1 KiB at acks=all (fsync per ack)
#   bench/profile.sh --flag=--fsync-acks-all=false     # the same with Kafka's durability
#   bench/profile.sh --bin target/profiling/kelp-smol --acks 1
#   bench/profile.sh --help
#
# perf needs to sample another process: as root, or with kernel.perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[profile.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then exec python3 bench/profile.py --help; fi

if ! perf --version >/dev/null 2>&1; then
    log "perf (apt: linux-perf)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
    log "inferno (cargo install, ~1 min)"
    cargo install --locked inferno --version 0.12.8 >/dev/null
fi
log "Kafka jars and tools, Java (cached)"
bash tests/install.sh system kafka
log "building kelp and kelp-smol (profile 'profiling': release with frame pointers and line tables)"
RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" \
    cargo build --profile profiling --locked -p kelp-tokio --bin kelp -p kelp-smol --bin kelp-smol
exec python3 bench/profile.py "$@"
