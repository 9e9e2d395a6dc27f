#!/usr/bin/env bash
# Runs one Tansu broker in the foreground (exec), for the benchmarks:
#
#   bench/tansu/start.sh PORT DATA_DIR
#
# Storage is in memory (`memory://tansu/`, Tansu's dynostore engine over an in-memory object store):
# nothing is written to DATA_DIR (only its working directory), everything is lost when it stops, and
# its memory grows with what is produced. No postgres, S3 or schema registry. It listens on
# 127.0.0.1:PORT and advertises 127.0.0.1:TANSU_ADVERTISED_PORT (default PORT; set it when clients go
# through a proxy such as bench/smq/kafka_shim.py). The node id is fixed at 111 by Tansu; the
# cluster id is a flag. Topics must be created first: Tansu does not auto-create them.
# The binary comes from bench/tansu/install.sh (TANSU_BIN overrides it).
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 PORT DATA_DIR" >&2; exit 2; }
port="$1" dir="$2"
adv="${TANSU_ADVERTISED_PORT:-$port}"
bin="${TANSU_BIN:-${KELP_CACHE:-$HOME/.cache/kelp-tests}/tansu/${TANSU_VERSION:-0.6.0}/bin/tansu}"
[[ -x "$bin" ]] || { echo "start.sh: no tansu at $bin (run bench/tansu/install.sh)" >&2; exit 1; }

mkdir -p "$dir"
cd "$dir"   # Tansu loads a .env file (dotenv) from its working directory at start
# Errors only: an inherited RUST_LOG=info/debug makes it log every request (span events), which
# costs far more than the work measured. TANSU_RUST_LOG overrides.
export RUST_LOG="${TANSU_RUST_LOG:-error}"
unset SCHEMA_REGISTRY OTEL_EXPORTER_OTLP_ENDPOINT   # env defaults of flags not given below
exec "$bin" broker \
    --cluster-id kelp-bench \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$adv" \
    --storage-engine memory://tansu/
