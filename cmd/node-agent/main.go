// Command node-agent runs on every node (DaemonSet) and writes containerd
// registry host configuration (certs.d/<host>/hosts.toml, merged, never
// clobbering) for Pods annotated with k8s.aliyun.com/plain-http-registry or
// k8s.aliyun.com/insecure-registry, limited to an allow-list.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrypull/ferry/cmd/node-agent/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := app.NewCommand(app.Run, os.Args[1:])
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}
