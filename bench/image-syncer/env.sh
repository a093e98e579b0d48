#!/usr/bin/env bash
# Start two Debian docker-registry instances on 127.0.0.1:5201 (source, with the bench corpus) and
# :5202 (empty destination) under $W for profiling ferry's image-syncer by hand.
#   usage: env.sh start|stop|reset-dst [REPOS] [TAGS]
# The registries' storage lives on tmpfs (/dev/shm) by default: on this VM's ext4 root, repeatedly
# deleting and recreating the destination tree makes ext4's inode allocator scan past recently
# deleted inodes (find_inode_bit / recently_deleted), which adds seconds of kernel time to every
# first sync, drifting upwards run after run, whatever the tool.
set -euo pipefail
W=${W:-/dev/shm/ferry-bench-env}; BIN=${BIN:-$HOME/.cache/ferry-bench/bin}
cfg() { mkdir -p $W; cat > $W/$1.yml <<Y
version: 0.1
storage: {filesystem: {rootdirectory: $W/$1}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2}
log: {level: error, accesslog: {disabled: true}}
Y
}
up() { cfg $1 $2; docker-registry serve $W/$1.yml >/dev/null 2>&1 & echo $! > $W/$1.pid; }
down() { [ -f $W/$1.pid ] && kill $(cat $W/$1.pid) 2>/dev/null || true; rm -f $W/$1.pid; }
case ${1:-start} in
start)
  up src 5201; up dst 5202; sleep 0.5
  [ -x $BIN/gencorpus ] || (cd /work/shared/bench/gencorpus && go build -o $BIN/gencorpus .)
  $BIN/gencorpus -registry 127.0.0.1:5201 -repos ${2:-20} -tags ${3:-5} -multi 4 >/dev/null
  : > $W/images.yaml
  for i in $(seq 0 $((${2:-20}-1))); do r=$(printf app%02d $i); echo "127.0.0.1:5201/library/$r: 127.0.0.1:5202/library/$r" >> $W/images.yaml; done
  echo "127.0.0.1:5201/library/multi: 127.0.0.1:5202/library/multi" >> $W/images.yaml
  printf '127.0.0.1:5201: {insecure: true}\n127.0.0.1:5202: {insecure: true}\n' > $W/auth.yaml
  echo "images: $W/images.yaml auth: $W/auth.yaml" ;;
stop) down src; down dst; rm -rf $W ;;
reset-dst) down dst; rm -rf $W/dst; up dst 5202; sleep 0.5 ;;
esac
