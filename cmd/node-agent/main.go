// Command node-agent is a ferry binary; see the README for what it does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "node-agent: not implemented yet")
	os.Exit(2)
}
