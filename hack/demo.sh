#!/usr/bin/env bash
# `make demo`: runs test/e2e/demo_test.go (build tag demo), which starts bin/acr-emulator, kube-apiserver+etcd,
# bin/acr-credential-helper and — as root — containerd, a kubelet and a Harbor-like registry, and narrates a
# secret-free pull, an image sync and (as root) an ECI container group created with AcrRegistryInfo on a
# containerd (test/e2e/demo_eci_test.go). Everything it starts is stopped and removed when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
set +e
go test -tags demo -count=1 -timeout 15m -run '^TestDemo$' -v ./test/e2e/ 2>&1 \
  | grep --line-buffered -Ev '^(=== RUN|=== PAUSE|=== CONT|--- PASS|PASS$|ok  )'
exit "${PIPESTATUS[0]}"
