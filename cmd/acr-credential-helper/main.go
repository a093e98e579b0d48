// Command acr-credential-helper keeps ACR pull Secrets fresh in watched namespaces, merges them
// into ServiceAccounts and serves the ServiceAccount-creation webhook; it reads the same
// kube-system/acr-configuration ConfigMap as Alibaba Cloud's aliyun-acr-credential-helper.
package main

import (
	"os"

	"github.com/ferrypull/ferry/cmd/acr-credential-helper/app"
	"github.com/ferrypull/ferry/internal/operator"
)

func main() {
	operator.Main("acr-credential-helper", app.NewCommand(app.Run, operator.Stdio(), os.Args[1:]))
}
