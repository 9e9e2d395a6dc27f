#!/usr/bin/env bash
# The side-by-side benchmark in one command: builds Kelp in release mode, installs what it needs
# (cached: the Kafka 4.4 jars and tools, a Python with confluent-kafka and matplotlib, SeaweedFS's weed,
# Tansu), then runs bench/run.py, which starts each system on 127.0.0.1 in turn, runs the same
# workloads against it and stops it, and writes bench/results/<date>-<host>.{md,json,png}.
#
#   bench/run.sh                                 # every system, the default sizes (16 min; 36 on a fresh machine)
#   bench/run.sh --systems kelp,kafka --records 200000
#   bench/run.sh --help                          # run.py's options: systems, sizes, rate
#
# A component that cannot be installed (say, Tansu's build fails) leaves its system's row marked
# failed; the others still run.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
log() { printf '[bench.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then exec python3 bench/run.py --help; fi

log "building kelp and kelp-smol (release)"
cargo build --release --locked -p kelp-tokio --bin kelp -p kelp-smol --bin kelp-smol
log "Kafka jars and tools, kcat, Java (cached)"
bash tests/install.sh system kafka
venv="$CACHE/bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import confluent_kafka, matplotlib' 2>/dev/null; then
    log "Python for the load generator and the chart: $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check confluent-kafka==2.16.1 'matplotlib>=3.8,<4'
fi
if [[ " $* " != *" --systems "* || "$*" == *smq* ]]; then
    log "SeaweedFS weed (cached; the first build takes ~10 min)"
    KELP_WEED_BIN="$(bash scripts/smq/build-weed.sh | tail -n 1)" && export KELP_WEED_BIN \
        || log "weed could not be built: the SMQ rows will say so"
fi
if [[ " $* " != *" --systems "* || "$*" == *tansu* ]]; then
    log "Tansu (cached; the first build takes a while)"
    bash bench/tansu/install.sh >/dev/null || log "Tansu could not be installed: its row will say so"
fi
exec "$venv/bin/python" bench/run.py --python "$venv/bin/python" "$@"
