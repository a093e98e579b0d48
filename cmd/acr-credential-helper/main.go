// Command acr-credential-helper is a ferry binary; see the README for what it does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "acr-credential-helper: not implemented yet")
	os.Exit(2)
}
