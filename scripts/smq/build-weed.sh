#!/usr/bin/env bash
# Builds SeaweedFS's `weed` binary from the Go module proxy into Kelp's test cache and prints its path.
#
#   scripts/smq/build-weed.sh            # builds the pinned version (or reuses the cached binary)
#   KELP_WEED_VERSION=v0.0.0-... scripts/smq/build-weed.sh
#
# Output: ${KELP_CACHE:-$HOME/.cache/kelp-tests}/weed/<version>/weed (the path is the last line printed).
# Idempotent: when that file exists nothing is built.
#
# `go install github.com/seaweedfs/seaweedfs/weed@VERSION` is refused because SeaweedFS's go.mod carries
# `replace` directives, so this builds from a tiny wrapper module that requires the pinned version and
# repeats the replaces that go.mod needs. Needs `go` (>= the version in SeaweedFS's go.mod) and the module
# proxy; the first build downloads a few hundred modules.
set -euo pipefail

# The SeaweedFS version Kelp's SMQ backend is tested against (weed reports 4.53 for it).
PINNED_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
VERSION="${KELP_WEED_VERSION:-$PINNED_VERSION}"
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
OUT_DIR="$CACHE/weed/$VERSION"
OUT="$OUT_DIR/weed"

if [[ -x "$OUT" ]]; then
    echo "build-weed: cached: $OUT" >&2
    echo "$OUT"
    exit 0
fi

command -v go >/dev/null || { echo "build-weed: 'go' not found on PATH (install Go >= 1.26)" >&2; exit 1; }

mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "$OUT_DIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The wrapper module. Keep the replace list in step with the `replace` lines of SeaweedFS's go.mod at
# $VERSION (only directives pointing at another module version matter; local-path ones are comments there).
cat >"$WORK/go.mod" <<GOMOD
module kelp.local/weed-build

go 1.26

require github.com/seaweedfs/seaweedfs $VERSION

// tyler-smith/go-bip39 was deleted upstream; SeaweedFS's go.mod points it at a maintained fork.
replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
GOMOD

start=$(date +%s)
echo "build-weed: building github.com/seaweedfs/seaweedfs/weed@$VERSION (first build takes minutes)" >&2
(
    cd "$WORK"
    export CGO_ENABLED="${CGO_ENABLED:-0}" GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false"
    # Resolves the full build list (and writes go.sum) from SeaweedFS's own requirements.
    go get "github.com/seaweedfs/seaweedfs/weed@$VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$WORK/weed" github.com/seaweedfs/seaweedfs/weed >&2
)
"$WORK/weed" version >&2 || { echo "build-weed: built binary does not run" >&2; exit 1; }
mv -f "$WORK/weed" "$OUT"   # atomic within one directory: a concurrent run sees a whole binary or none
echo "build-weed: built $OUT in $(( $(date +%s) - start )) s" >&2
echo "$OUT"
