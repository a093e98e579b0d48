#!/usr/bin/env bash
# Alternate ferry's image-syncer and regsync N times on the env.sh registries (destination reset
# before every first sync) and print min/median wall seconds for first sync and no-op re-sync.
# The machine is shared: alternating runs and taking the minimum keeps the comparison fair.
#   usage: env.sh start; compare.sh [N] [FERRY_BIN] [extra ferry flags...]; env.sh stop
set -euo pipefail
N=${1:-5}; FERRY=${2:-$(cd "$(dirname "$0")/../.." && pwd)/bin/image-syncer}; shift $(( $# < 2 ? $# : 2 ))
W=${W:-/dev/shm/ferry-bench-env}; BIN=${BIN:-$HOME/.cache/ferry-bench/bin}; HERE=$(cd "$(dirname "$0")" && pwd)
repos=$(awk -F'[/:]' '{print $4}' $W/images.yaml)
{ echo "version: 1"; echo "creds: [{registry: 127.0.0.1:5201, tls: disabled}, {registry: 127.0.0.1:5202, tls: disabled}]"
  echo "defaults: {parallel: 4}"; echo "sync:"
  for r in $repos; do echo "  - {source: 127.0.0.1:5201/library/$r, target: 127.0.0.1:5202/library/$r, type: repository}"; done; } > $W/regsync.yaml
# wall seconds with millisecond precision (/usr/bin/time rounds to 10 ms, too coarse for a no-op)
t() { local s=$EPOCHREALTIME; "$@" >/dev/null 2>&1 || echo "  ($* failed)" >&2; echo "$EPOCHREALTIME $s" | awk '{printf "%.3f", $1-$2}'; }
declare -A F; for k in ferry1 ferry0 reg1 reg0; do F[$k]=""; done
for i in $(seq $N); do
  W=$W $HERE/env.sh reset-dst; F[ferry1]+="$(t $FERRY --auth $W/auth.yaml --images $W/images.yaml --proc 8 "$@") "; F[ferry0]+="$(t $FERRY --auth $W/auth.yaml --images $W/images.yaml --proc 8 "$@") "
  W=$W $HERE/env.sh reset-dst; F[reg1]+="$(t $BIN/regsync once -c $W/regsync.yaml) "; F[reg0]+="$(t $BIN/regsync once -c $W/regsync.yaml) "
done
stat() { echo $1 | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "min %.3f median %.3f", a[1], a[int((NR+1)/2)]}'; }
for k in ferry1 reg1 ferry0 reg0; do printf "%-7s %s   (%s)\n" $k "$(stat "${F[$k]}")" "${F[$k]}"; done
