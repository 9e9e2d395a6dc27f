#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) after replaying its corpus.
# The corpus starts from real client bytes (core/tests/fixtures/golden) and grows in fuzz/corpus/
# (not committed); inputs that once failed are kept in fuzz/regressions/ and replayed every run.
# Long runs: SECONDS_PER_TARGET=600 fuzz/run.sh  (or one target: fuzz/run.sh request)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SECONDS_PER_TARGET:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request response record_batch log_files)

# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
# A run without it caches a failure in target/.rustc_info.json, so always go through this script.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

KELP_FUZZ_SEEDS="$PWD/fuzz/corpus" cargo test -q -p kelp-core --test golden >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== fuzz $t for ${seconds}s"
  (cd fuzz && cargo fuzz run "$t" "corpus/$t" "regressions/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 25 | grep -E "stat::|Done|ERROR|SUMMARY|crash|panicked" || true)
  if compgen -G "fuzz/artifacts/$t/*" >/dev/null; then
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t/"; exit 1
  fi
done
