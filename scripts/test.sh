#!/usr/bin/env bash
# The project's test command (README): installs the clients, then formatting, lints, every workspace
# test (unit, property, simulation, golden bytes, crash tests, end-to-end with real clients), the end-to-end
# and crash suites again on `kelp-smol`, then on both binaries with a real SeaweedFS `weed` as the
# backend, then a short run of
# every fuzz target over its corpus (seeded from real client bytes) and the saved regressions.
# The last line counts the tests run (each fuzz target that finds nothing counts as one).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the Kafka clients the end-to-end tests use (cached)"
bash tests/install.sh
echo "== building SeaweedFS's weed for the SMQ contract test (cached; the first build takes ~10 min)"
KELP_WEED_BIN="$(bash scripts/smq/build-weed.sh | tail -n 1)"
export KELP_WEED_BIN

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test --workspace"
# The end-to-end tests run the debug `kelp` that this build makes (then `kelp-smol`: KELP_BIN is the one
# parameter), and may not skip a client.
cargo build --locked -p kelp-tokio --bin kelp -p kelp-smol --bin kelp-smol
cargo build --locked -p kelp-core --example event_loop   # the embedding example, served to librdkafka in clients.rs
bin_dir="${CARGO_TARGET_DIR:-$PWD/target}/debug"
export KELP_BIN="$bin_dir/kelp" KELP_E2E_REQUIRE=1
log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$log"

# The gateway suites (end-to-end with real clients, kill -9 crash tests; on SMQ also an SMQ-native reader).
gateway_suites() {
    cargo test --locked -p kelp-tests 2>&1 | tee -a "$log"
    cargo test --locked -p kelp-tokio --test crash --test metrics --test settings ${KELP_E2E_SMQ:+--test smq_native} 2>&1 | tee -a "$log"
}
echo "== the end-to-end and crash suites again on kelp-smol (embedded log)"
KELP_BIN="$bin_dir/kelp-smol" gateway_suites

echo "== the end-to-end and crash suites again, on SeaweedMQ (--backend smq://, one weed for both binaries)"
smq_dir=$(mktemp -d)
bash scripts/smq/run-weed.sh --free-ports "$smq_dir" >"$smq_dir/broker" &
weed_runner=$!
stop_weed() { kill -TERM "$weed_runner" 2>/dev/null || true; wait "$weed_runner" 2>/dev/null || true; }
trap stop_weed EXIT
for _ in $(seq 1 300); do
    [[ -s "$smq_dir/broker" ]] && break
    kill -0 "$weed_runner" 2>/dev/null || { echo "weed did not start" >&2; exit 1; }
    sleep 1
done
KELP_E2E_SMQ="$(tail -n 1 "$smq_dir/broker")"
export KELP_E2E_SMQ
echo "SMQ broker at $KELP_E2E_SMQ"
for bin in kelp kelp-smol; do
    echo "== $bin on SeaweedMQ"
    KELP_BIN="$bin_dir/$bin" gateway_suites
done
stop_weed
trap - EXIT
unset KELP_E2E_SMQ
echo "== fuzz smoke (${FUZZ_SECONDS:-20}s per target)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}" fuzz/run.sh
# One closing line for the whole run (cargo prints one per test binary, the last often "0 passed").
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p + 3, f }' "$log"
rm -f "$log"
