#!/usr/bin/env bash
# Installs the Tansu broker (crates.io `tansu`, Rust, Kafka-compatible) once, for the benchmarks, into
#   ${KELP_CACHE:-~/.cache/kelp-tests}/tansu/<version>/bin/tansu
# built with the `dynostore` feature (in-memory storage: `--storage-engine memory://tansu/`).
# Does nothing when that binary is already there. The last line of stdout is the binary's path.
#
#   bench/tansu/install.sh            # TANSU_VERSION (0.6.0), KELP_CACHE
#
# The build is slow (10 minutes on 2 cores, 22 with one job): it runs with `nice -n 10`
# (CARGO_BUILD_JOBS, default: every core; set 1 to leave the machine usable meanwhile).
set -euo pipefail

VERSION="${TANSU_VERSION:-0.6.0}"
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
ROOT="$CACHE/tansu/$VERSION"
BIN="$ROOT/bin/tansu"

die() { echo "tansu/install.sh: $*" >&2; exit 1; }

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi

command -v cargo >/dev/null || die "cargo not found (install a Rust toolchain first)"
mkdir -p "$ROOT"

# --locked: build with the Cargo.lock published in the crate, so the dependency set is reproducible.
# It works for 0.6.0 (cargo only warns that a few locked crates, e.g. lz4_flex 0.12.0, were since yanked).
# On a fresh 2-core machine the build took 10 minutes (22 with one job); the build tree is kept on failure, so a
# retry picks up where it stopped.
echo "tansu/install.sh: building tansu $VERSION into $ROOT (slow; log: $ROOT/build.log)" >&2
if ! CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}" CARGO_TARGET_DIR="$ROOT/target" \
        nice -n 10 cargo install tansu --version "$VERSION" --locked --features dynostore \
        --root "$ROOT" >"$ROOT/build.log" 2>&1; then
    tail -n 30 "$ROOT/build.log" >&2
    die "cargo install tansu $VERSION failed (full log: $ROOT/build.log)"
fi
[[ -x "$BIN" ]] || die "cargo install succeeded but $BIN is missing"
rm -rf "$ROOT/target"   # only the binary is needed, not the (large) build tree
echo "$BIN"
