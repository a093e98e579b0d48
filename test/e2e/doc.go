// Package e2e holds end-to-end runs of ferry's binaries against the local stack: acr-emulator,
// kube-apiserver+etcd, containerd, a kubelet and registries. The demo (build tag demo) is `make demo`.
package e2e
