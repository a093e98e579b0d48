package containerdenv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// TestCRIPull pulls through containerd's CRI from a self-signed, htpasswd-protected docker-registry,
// configured by hosts.toml, and checks that missing credentials fail.
func TestCRIPull(t *testing.T) {
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	reg := registryenv.StartDocker(t, registryenv.Options{TLS: true, Users: map[string]string{"testuser": "testpass"}})
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest := reg.Push(t, "private/app:v1", img, "testuser", "testpass")
	ctrd.WriteHostsTOML(t, reg.Addr, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
		reg.URL, reg.URL, reg.CAFile))
	ref := reg.Addr + "/private/app:v1"

	if _, err := ctrd.PullImage(t.Context(), ref, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("pull without credentials: got %v, want a 401 error", err)
	}
	got, err := ctrd.PullImage(t.Context(), ref, &runtimeapi.AuthConfig{Username: "testuser", Password: "testpass"})
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	if got == "" {
		t.Fatal("empty image ref")
	}
	st, err := ctrd.Images.ImageStatus(t.Context(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil || st.Image == nil {
		t.Fatalf("image status: %v %v", st, err)
	}
	found := false
	for _, d := range st.Image.RepoDigests {
		found = found || strings.HasSuffix(d, digest.String())
	}
	if !found {
		t.Fatalf("repo digests %v do not contain %s", st.Image.RepoDigests, digest)
	}
}
