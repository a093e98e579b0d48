// Command node-agent runs on every node (DaemonSet) and writes containerd
// registry host configuration (certs.d/<host>/hosts.toml, merged, never
// clobbering) for Pods annotated with k8s.aliyun.com/plain-http-registry or
// k8s.aliyun.com/insecure-registry, limited to an allow-list.
package main

import (
	"os"

	"github.com/ferrypull/ferry/cmd/node-agent/app"
	"github.com/ferrypull/ferry/internal/operator"
)

func main() {
	operator.Main("node-agent", app.NewCommand(app.Run, operator.Stdio(), os.Args[1:]))
}
