// Command hello is the program of the rig's runnable test image (testimage.Hello): it prints a
// greeting, its arguments and $HELLO_MESSAGE, then exits with $HELLO_EXIT (default 0).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	fmt.Printf("hello from %s\n", os.Args[0])
	if len(os.Args) > 1 {
		fmt.Printf("args: %s\n", strings.Join(os.Args[1:], " "))
	}
	if m := os.Getenv("HELLO_MESSAGE"); m != "" {
		fmt.Println(m)
	}
	code, _ := strconv.Atoi(os.Getenv("HELLO_EXIT"))
	os.Exit(code)
}
