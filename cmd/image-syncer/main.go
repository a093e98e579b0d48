// Command image-syncer is a ferry binary; see the README for what it does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "image-syncer: not implemented yet")
	os.Exit(2)
}
