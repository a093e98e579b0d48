package openapi

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDepcheck keeps the emulator's cloud side free of Kubernetes and of the Alibaba SDKs:
// the emulator verifies signatures with its own code, the SDKs appear only in tests as clients.
func TestDepcheck(t *testing.T) {
	pkgs := []string{"world", "ram", "signature", "oidc", "openapi", "imds"}
	forbidden := []string{"k8s.io/", "sigs.k8s.io/controller-runtime", "github.com/alibabacloud-go/", "github.com/aliyun/"}
	for _, p := range pkgs {
		out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/ferrypull/ferry/internal/emulator/"+p).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", p, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("internal/emulator/%s depends on %s", p, dep)
				}
			}
		}
	}
}
