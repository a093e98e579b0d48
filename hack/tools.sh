#!/usr/bin/env bash
# Installs and builds everything ferry's tests and demo need, idempotently:
#   - Debian packages: containerd, runc, docker-registry, apache2-utils (htpasswd), skopeo, openssl, curl, gcc, libc6-dev,
#     ca-certificates (the CA bundle of the images' base)
#   - envtest assets (kube-apiserver, etcd, kubectl) built from the Go module proxy (hack/envtest-assets.sh)
#   - a kubelet and kube-controller-manager built from the same scratch module (same Kubernetes version)
#   - a static pause binary built from k8s.io/kubernetes' own build/pause/linux/pause.c
#   - ko, Helm 4, Helm 3 and helm-docs from the Go module proxy (hack/go-tools.sh)
# Writes bin/tools.env (sourced by the Makefile) with KUBEBUILDER_ASSETS, FERRY_KUBELET,
# FERRY_KUBE_CONTROLLER_MANAGER and FERRY_PAUSE.
# Caches: ENVTEST_CACHE (default ~/.cache/envtest-assets), GOCACHE, GOMODCACHE. A warm re-run takes about a second.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
ENVTEST_CACHE=${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/envtest-assets}
export K8S_VERSION ENVTEST_CACHE
log() { echo "[tools] $*" >&2; }
t0=$(date +%s)

# 1. Debian packages (only when something is missing; needs root).
PKGS="containerd runc docker-registry apache2-utils skopeo openssl curl gcc libc6-dev ca-certificates"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt-get install$missing"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    log "WARNING: not root; cannot install:$missing (tests that need them will skip and say why)"
  fi
fi

# 2. envtest assets.
ASSETS=$("$HERE/envtest-assets.sh" | tail -1)

# 3. kubelet and kube-controller-manager, from the same scratch module.
SRC=$ENVTEST_CACHE/src-$K8S_VERSION
OUT=$ENVTEST_CACHE/k8s-$K8S_VERSION
MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
VPKG=k8s.io/component-base/version
build_k8s() { # binary name
  if [ ! -x "$OUT/$1" ]; then
    local t=$(date +%s)
    (cd "$SRC" && GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/$1@v$K8S_VERSION" >/dev/null 2>&1 && \
     CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
       -ldflags "-s -w -X $VPKG.gitVersion=v$K8S_VERSION -X $VPKG.gitMajor=1 -X $VPKG.gitMinor=$MINOR" \
       -o "$OUT/$1.tmp" "k8s.io/kubernetes/cmd/$1")
    mv -f "$OUT/$1.tmp" "$OUT/$1"
    log "built $1 in $(( $(date +%s) - t ))s"
  fi
}
build_k8s kubelet
build_k8s kube-controller-manager
KUBELET=$OUT/kubelet

# 4. pause, a static binary from the Kubernetes source (no registry.k8s.io here).
PAUSE=$ENVTEST_CACHE/k8s-$K8S_VERSION/pause
if [ ! -x "$PAUSE" ]; then
  KDIR=$(cd "$SRC" && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  if command -v gcc >/dev/null; then
    gcc -Os -static -DVERSION=ferry -o "$PAUSE" "$KDIR/build/pause/linux/pause.c"
    log "built pause"
  else
    log "WARNING: gcc missing; no pause binary (kubelet tests will skip)"
  fi
fi

mkdir -p "$ROOT/bin"
cat > "$ROOT/bin/tools.env" <<ENV
KUBEBUILDER_ASSETS=$ASSETS
FERRY_KUBELET=$KUBELET
FERRY_KUBE_CONTROLLER_MANAGER=$OUT/kube-controller-manager
FERRY_PAUSE=$PAUSE
ENV
"$HERE/npm-tools.sh" >> "$ROOT/bin/tools.env"
"$HERE/go-tools.sh" >> "$ROOT/bin/tools.env"   # ko, Helm 4, Helm 3, helm-docs
log "ready in $(( $(date +%s) - t0 ))s: $(cat "$ROOT/bin/tools.env" | tr '\n' ' ')"
