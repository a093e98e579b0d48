// Command image-syncer copies images between registries; it is flag- and file-compatible with
// Alibaba's image-syncer 1.5.5 and copies byte-exactly, incrementally and in parallel.
package main

import (
	"fmt"
	"os"

	"github.com/ferrypull/ferry/cmd/image-syncer/app"
	"github.com/ferrypull/ferry/internal/operator"
)

func main() {
	if err := operator.Execute(app.NewCommand(app.Run, operator.Stdio(), os.Args[1:])); err != nil {
		// Like upstream: the error goes to stdout and the exit code is 255 (os.Exit(-1)).
		fmt.Fprintln(os.Stdout, err)
		os.Exit(255)
	}
}
