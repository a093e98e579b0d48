#!/usr/bin/env bash
# Build a controller-runtime envtest asset dir (etcd, kube-apiserver, kubectl) from the
# Go module proxy only -- no setup-envtest, no downloads of prebuilt binaries.
#
#   usage: envtest-assets.sh [OUT_DIR]
#   prints the asset dir on the LAST line of stdout -> export KUBEBUILDER_ASSETS=$(envtest-assets.sh | tail -1)
#
# env knobs:
#   K8S_VERSION   kubernetes version to build (default 1.37.2 — the version ferry pins; the proxy serves e.g. 1.33.13 1.34.4 1.35.4 1.36.3 1.37.2)
#   ETCD_SOURCE   module (default: build go.etcd.io/etcd/server/v3 at the version k8s.io/kubernetes pins, e.g. v3.6.4 for 1.34)
#                 debian  (symlink /usr/bin/etcd from Debian's etcd-server 3.4.23; apt-get installs it if missing)
#   KUBECTL_SOURCE module (default: build k8s.io/kubernetes/cmd/kubectl, ~30 s extra)
#                 system  (symlink `command -v kubectl`)
#   ENVTEST_CACHE root of the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/envtest-assets)
#
# Idempotent: if OUT_DIR already holds the three binaries and a matching .stamp, nothing is rebuilt.
# Cache-friendly: the scratch module lives in $ENVTEST_CACHE/src-$K8S_VERSION and uses the normal
# GOMODCACHE / GOCACHE, so caching ~/.cache/go-build, ~/go/pkg/mod and $ENVTEST_CACHE keeps re-runs at ~1 s.
# Cold cost on a 2-core box: ~15 s module download, ~6-7 min kube-apiserver, ~10 s etcd, ~30 s kubectl.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
K8S_VERSION=${K8S_VERSION#v}
ETCD_SOURCE=${ETCD_SOURCE:-module}
KUBECTL_SOURCE=${KUBECTL_SOURCE:-module}
ENVTEST_CACHE=${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/envtest-assets}
OUT=${1:-$ENVTEST_CACHE/k8s-$K8S_VERSION}
SRC=$ENVTEST_CACHE/src-$K8S_VERSION
STAMP="k8s=$K8S_VERSION etcd=$ETCD_SOURCE kubectl=$KUBECTL_SOURCE"

log() { echo "[envtest-assets] $*" >&2; }

if [ -x "$OUT/kube-apiserver" ] && [ -e "$OUT/etcd" ] && [ -e "$OUT/kubectl" ] \
   && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$STAMP" ]; then
  log "up to date: $OUT ($STAMP)"
  (cd "$OUT" && pwd)
  exit 0
fi

command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
mkdir -p "$OUT" "$SRC"
OUT=$(cd "$OUT" && pwd)
MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
STAGING_VERSION="v0.${K8S_VERSION#1.}"   # 1.34.4 -> v0.34.4
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
t0=$(date +%s)

# 1. scratch module: require k8s.io/kubernetes and replace every staging module (k8s.io/api, ...)
#    with its published v0.X.Y twin (k8s.io/kubernetes' own go.mod points them at ./staging/...).
if [ ! -f "$SRC/go.mod" ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION\$" "$SRC/go.mod"; then
  log "resolving k8s.io/kubernetes@v$K8S_VERSION"
  KMOD=$(cd "$SRC" && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
         | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [ -s "$KMOD" ] || { echo "could not download k8s.io/kubernetes@v$K8S_VERSION" >&2; exit 1; }
  {
    echo "module envtestassets"; echo
    echo "go $(sed -n 's/^go //p' "$KMOD")"; echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"; echo
    echo "replace ("
    grep -oE '^[[:space:]]*k8s\.io/[A-Za-z0-9._-]+ => \./staging/' "$KMOD" \
      | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$SRC/go.mod"
  rm -f "$SRC/go.sum"
  # resolve all three main packages regardless of *_SOURCE so the shared scratch module stays complete
  (cd "$SRC" && go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION" >&2)
  # k8s.io/kubernetes already requires go.etcd.io/etcd/server/v3 (integration framework); keep that version
  EV=$(cd "$SRC" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  (cd "$SRC" && go get "go.etcd.io/etcd/server/v3@$EV" >&2)
  log "module resolution: $(( $(date +%s) - t0 ))s"
fi

VPKG=k8s.io/component-base/version
CPKG=k8s.io/client-go/pkg/version
LDFLAGS="-s -w -X $VPKG.gitVersion=v$K8S_VERSION -X $VPKG.gitMajor=1 -X $VPKG.gitMinor=$MINOR -X $VPKG.gitTreeState=clean"
LDFLAGS="$LDFLAGS -X $CPKG.gitVersion=v$K8S_VERSION -X $CPKG.gitMajor=1 -X $CPKG.gitMinor=$MINOR -X $CPKG.gitTreeState=clean"

build() { # name pkg ldflags
  local t=$(date +%s)
  (cd "$SRC" && go build -trimpath -ldflags "$3" -o "$OUT/$1.tmp" "$2")
  mv -f "$OUT/$1.tmp" "$OUT/$1"
  log "built $1 in $(( $(date +%s) - t ))s ($(du -h "$OUT/$1" | cut -f1))"
}

rm -f "$OUT/.stamp"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$LDFLAGS"

case "$ETCD_SOURCE" in
  module) build etcd go.etcd.io/etcd/server/v3 "-s -w" ;;   # its main.go is etcdmain.Main(os.Args)
  debian)
    command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || \
      { apt-get update >/dev/null 2>&1 || true; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2; }
    ln -sf /usr/bin/etcd "$OUT/etcd" ;;
  *) echo "bad ETCD_SOURCE=$ETCD_SOURCE" >&2; exit 1 ;;
esac

case "$KUBECTL_SOURCE" in
  module) build kubectl k8s.io/kubernetes/cmd/kubectl "$LDFLAGS" ;;
  system) ln -sf "$(readlink -f "$(command -v kubectl)")" "$OUT/kubectl" ;;
  *) echo "bad KUBECTL_SOURCE=$KUBECTL_SOURCE" >&2; exit 1 ;;
esac

echo "$STAMP" > "$OUT/.stamp"
log "done in $(( $(date +%s) - t0 ))s: $("$OUT/kube-apiserver" --version), $("$OUT/etcd" --version | head -1)"
echo "$OUT"
