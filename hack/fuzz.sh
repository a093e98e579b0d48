#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (make fuzz), then keeps the corpus: new
# interesting inputs found in Go's fuzz cache are copied into the package's testdata/fuzz/<Target>/
# (where `go test` also replays them as regression cases), so a nightly run grows the committed
# corpora. A failing input is written there by `go test` itself. Exits non-zero if any target
# failed, after running all of them.
#
#   FUZZTIME=30s      time per target (any `go test -fuzztime` value, e.g. 10m or 5000x)
#   FUZZ_PKGS=./...   packages to fuzz
#   FUZZ_MATCH=.      only targets whose name matches this regular expression
#   FUZZ_PARALLEL=    fuzzing workers per target (default: GOMAXPROCS)
#   FUZZ_KEEP=1       copy new corpus entries into testdata/fuzz (0: leave the tree alone)
set -uo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
FUZZ_PKGS=${FUZZ_PKGS:-./...}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_KEEP=${FUZZ_KEEP:-1}
cache="$($GO env GOCACHE)/fuzz"
parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")
failed=() ran=0 kept=0
while read -r pkg dir; do
  for f in $($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' | grep -E -- "$FUZZ_MATCH"); do
    ran=$((ran + 1))
    echo "== $pkg $f ($FUZZTIME)"
    if ! $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "${parallel[@]}" "$pkg"; then
      failed+=("$pkg $f")
    fi
    if [ "$FUZZ_KEEP" = 1 ] && [ -d "$cache/$pkg/$f" ]; then
      mkdir -p "$dir/testdata/fuzz/$f"
      for c in "$cache/$pkg/$f"/*; do
        [ -e "$dir/testdata/fuzz/$f/$(basename "$c")" ] && continue
        cp "$c" "$dir/testdata/fuzz/$f/" && kept=$((kept + 1))
      done
    fi
  done
done < <($GO list -f '{{.ImportPath}} {{.Dir}}' $FUZZ_PKGS)
echo "fuzz: $ran targets for $FUZZTIME each; $kept new corpus entries kept in testdata/fuzz"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: FAILED %s (the failing input is in its testdata/fuzz)\n' "${failed[@]}"
  exit 1
fi
