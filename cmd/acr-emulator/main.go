// Command acr-emulator is a local Alibaba Cloud Container Registry: real OCI
// registries behind a Docker token realm, the Container Registry OpenAPI,
// STS and ECS instance metadata, on loopback listeners. See
// docs/acr-emulator.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrypull/ferry/cmd/acr-emulator/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := app.NewCommand(ctx, os.Stdout, os.Stderr)
	cmd.SetArgs(os.Args[1:])
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "acr-emulator:", err)
		os.Exit(1)
	}
}
