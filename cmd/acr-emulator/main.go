// Command acr-emulator is a local Alibaba Cloud Container Registry: real OCI
// registries behind a Docker token realm, the Container Registry OpenAPI,
// STS and ECS instance metadata, on loopback listeners. See
// docs/acr-emulator.md.
package main

import (
	"os"

	"github.com/ferrypull/ferry/cmd/acr-emulator/app"
	"github.com/ferrypull/ferry/internal/operator"
)

func main() {
	operator.Main("acr-emulator", app.NewCommand(app.Run, operator.Stdio(), os.Args[1:]))
}
