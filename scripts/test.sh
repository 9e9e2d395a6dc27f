#!/usr/bin/env bash
# The project's test command (README): formatting, lints, every workspace test, then a short run of
# every fuzz target over its corpus (seeded from real client bytes) and the saved regressions.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test --workspace"
cargo test --workspace --locked
echo "== fuzz smoke (${FUZZ_SECONDS:-20}s per target)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}" fuzz/run.sh
echo "all checks passed"
