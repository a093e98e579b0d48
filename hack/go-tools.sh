#!/usr/bin/env bash
# Builds the Go tools of the images and the chart from the Go module proxy, pinned, idempotently:
#   ko v0.19.1        (make images: container images)
#   Helm v4.3.1       (helm.sh/helm/v4: make lint, chart tests)
#   Helm v3.22.0      (helm.sh/helm/v3: the chart must pass with Helm 3 too)
#   helm-docs v1.14.2 (charts/ferry/README.md, checked by make lint)
# with the version ldflags of their own Makefiles. Each is cached in
# ${FERRY_TOOLS_CACHE:-~/.cache/ferry-tools}/<name>-<version>/; a warm run only checks four files.
# Prints the bin/tools.env lines FERRY_KO, FERRY_HELM, FERRY_HELM3, FERRY_HELM_DOCS.
set -euo pipefail
CACHE=${FERRY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-tools}
log() { echo "[go-tools] $*" >&2; }

# tool VAR BINARY VERSION PACKAGE [LDFLAGS]
tool() {
  local var=$1 bin=$2 ver=$3 pkg=$4 ldflags=${5:-}
  local dir=$CACHE/$bin-$ver
  if [ ! -x "$dir/$bin" ]; then
    local t=$(date +%s)
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$CACHE" && GOBIN="$dir.tmp" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$ver")
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    log "built $bin $ver in $(( $(date +%s) - t ))s"
  fi
  echo "$var=$dir/$bin"
}

mkdir -p "$CACHE"
tool FERRY_KO ko v0.19.1 github.com/google/ko
tool FERRY_HELM helm v4.3.1 helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=v4.3.1 -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
# Helm 3 takes its default Kubernetes version (Capabilities, lint) from ldflags: its client-go's
# minor version, as its Makefile does (client-go v0.37.0 -> 1.37).
H3=helm.sh/helm/v3
tool FERRY_HELM3 helm v3.22.0 $H3/cmd/helm \
  "-X $H3/internal/version.version=v3.22.0 -X $H3/internal/version.gitTreeState=clean -X $H3/pkg/lint/rules.k8sVersionMajor=1 -X $H3/pkg/lint/rules.k8sVersionMinor=37 -X $H3/pkg/chartutil.k8sVersionMajor=1 -X $H3/pkg/chartutil.k8sVersionMinor=37"
tool FERRY_HELM_DOCS helm-docs v1.14.2 github.com/norwoodj/helm-docs/cmd/helm-docs "-X main.version=v1.14.2"
