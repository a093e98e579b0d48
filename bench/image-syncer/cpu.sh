#!/usr/bin/env bash
# CPU spent by the source and destination registries plus the tool itself, for ferry and regsync,
# first sync and no-op (a load-independent complement to wall time on a shared machine).
#   usage: env.sh start; cpu.sh [ROUNDS]
set -euo pipefail
W=${W:-/dev/shm/ferry-bench-env}; BIN=${BIN:-$HOME/.cache/ferry-bench/bin}; HERE=$(cd "$(dirname "$0")" && pwd)
FERRY=${FERRY:-$HERE/../../bin/image-syncer}
cpu() { awk '{print $14+$15}' /proc/$(cat $W/$1.pid)/stat; }
for i in $(seq ${1:-2}); do for tool in ferry regsync; do
  W=$W $HERE/env.sh reset-dst
  if [ $tool = ferry ]; then cmd="$FERRY --auth $W/auth.yaml --images $W/images.yaml --proc 8 --log /dev/null"; else cmd="$BIN/regsync once -c $W/regsync.yaml"; fi
  for phase in first noop; do
    s=$(cpu src); d=$(cpu dst)
    /usr/bin/time -f "%e %U %S" -o $W/t $cmd >/dev/null 2>&1
    read wall u sy < $W/t
    printf "%-8s %-5s wall %6.2fs  tool-cpu %5.2fs  src-cpu %5.2fs  dst-cpu %5.2fs\n" $tool $phase $wall $(echo "$u + $sy" | bc) $(echo "($(cpu src)-$s)/100" | bc -l) $(echo "($(cpu dst)-$d)/100" | bc -l)
  done
done; done
