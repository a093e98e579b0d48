package credprovider

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoKubernetesClient: the provider runs once per image pull on every node; it speaks
// the kubelet's API types and nothing else of Kubernetes (no client-go, no controller-runtime),
// as docs/development.md's import table says.
func TestNoKubernetesClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/ferrypull/ferry/internal/credprovider").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go/", "sigs.k8s.io/controller-runtime", "k8s.io/kubernetes/"} {
			if strings.HasPrefix(p, banned) {
				t.Errorf("internal/credprovider depends on %s", p)
			}
		}
	}
}
