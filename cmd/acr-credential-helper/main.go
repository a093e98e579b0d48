// Command acr-credential-helper keeps ACR pull Secrets fresh in watched namespaces, merges them
// into ServiceAccounts and serves the ServiceAccount-creation webhook; it reads the same
// kube-system/acr-configuration ConfigMap as Alibaba Cloud's aliyun-acr-credential-helper.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrypull/ferry/cmd/acr-credential-helper/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := app.NewCommand(app.Run, os.Args[1:])
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "acr-credential-helper:", err)
		os.Exit(1)
	}
}
