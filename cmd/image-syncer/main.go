// Command image-syncer copies images between registries; it is flag- and file-compatible with
// Alibaba's image-syncer 1.5.5 and copies byte-exactly, incrementally and in parallel.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrypull/ferry/cmd/image-syncer/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.NewCommand(app.Options{Stdout: os.Stdout, Stderr: os.Stderr}).ExecuteContext(ctx)
	stop()
	if err != nil {
		// Like upstream: the error goes to stdout and the exit code is 255 (os.Exit(-1)).
		fmt.Fprintln(os.Stdout, err)
		os.Exit(255)
	}
}
