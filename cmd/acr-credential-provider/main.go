// Command acr-credential-provider is a kubelet image credential provider for Alibaba Cloud
// Container Registry: the kubelet runs it for each matching image, writes a
// CredentialProviderRequest on stdin and reads a temporary registry token from stdout — no
// pull Secret exists anywhere. See docs/acr-credential-provider.md.
package main

import (
	"fmt"
	"os"

	"github.com/ferrypull/ferry/cmd/acr-credential-provider/app"
	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/operator"
)

func main() {
	// Not operator.Main: the exit code says which class of failure it was (credprovider.Exit*).
	if err := operator.Execute(app.NewCommand(app.Run, operator.Stdio(), os.Args[1:])); err != nil {
		fmt.Fprintln(os.Stderr, "acr-credential-provider:", err)
		os.Exit(credprovider.ExitCode(err))
	}
}
