#!/usr/bin/env bash
# The side-by-side benchmark in one command: builds Kelp in release mode, installs what it needs
# (cached: the Kafka 4.4 jars and tools, a Python with confluent-kafka and matplotlib, SeaweedFS's weed,
# Tansu), then runs bench/run.py, which starts each system on 127.0.0.1 in turn, runs the same
# workloads against it and stops it, and writes bench/results/<date>-<host>.{md,json,png}.
#
#   bench/run.sh                                 # every system, the default sizes (14 min; about 33 on a fresh machine)
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

log "system packages: kcat, Java, Go, Python's venv (cached)"
bash tests/install.sh system
# On a fresh machine the two peers build from source (weed about 5 min, Tansu about 11). They build in
# the background, beside each other, Kelp's build and the downloads, so that one build's serial
# stretches (a big crate, a link) leave no core idle. Nothing is measured until every build is done.
builds="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$builds"' EXIT
weed_pid="" tansu_pid=""
if [[ " $* " != *" --systems "* || "$*" == *smq* ]]; then
    log "SeaweedFS weed (cached; the first build takes ~5 min), in the background"
    bash scripts/smq/build-weed.sh >"$builds/weed.out" 2>"$builds/weed.log" &
    weed_pid=$!
fi
if [[ " $* " != *" --systems "* || "$*" == *tansu* ]]; then
    log "Tansu (cached; the first build takes ~11 min), in the background"
    bash bench/tansu/install.sh >"$builds/tansu.out" 2>"$builds/tansu.log" &
    tansu_pid=$!
fi

log "building kelp and kelp-smol (release)"
cargo build --release --locked -p kelp-tokio --bin kelp -p kelp-smol --bin kelp-smol
log "Kafka jars and tools (cached)"
bash tests/install.sh kafka
venv="$CACHE/bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import confluent_kafka, matplotlib' 2>/dev/null; then
    log "Python for the load generator and the chart: $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check confluent-kafka==2.16.1 'matplotlib>=3.8,<4'
fi
if [[ -n "$weed_pid" ]]; then
    log "waiting for weed"
    if wait "$weed_pid" && [[ -x "$(tail -n 1 "$builds/weed.out")" ]]; then
        KELP_WEED_BIN="$(tail -n 1 "$builds/weed.out")"
        export KELP_WEED_BIN
    else
        tail -n 20 "$builds/weed.log" >&2
        log "weed could not be built: the SMQ rows will say so"
    fi
fi
if [[ -n "$tansu_pid" ]]; then
    log "waiting for Tansu"
    if ! wait "$tansu_pid"; then
        tail -n 20 "$builds/tansu.log" >&2
        log "Tansu could not be installed: its row will say so"
    fi
fi
trap - EXIT
rm -rf "$builds"
log "builds done"
exec "$venv/bin/python" bench/run.py --python "$venv/bin/python" "$@"
