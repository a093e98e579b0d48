// Command acr-emulator is a ferry binary; see the README for what it does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "acr-emulator: not implemented yet")
	os.Exit(2)
}
