package prepull

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/dockercfg"
)

func TestAuthForPrefersTheRepositoryEntry(t *testing.T) {
	cfg := dockercfg.New()
	cfg.Set("host-user", "host-pass", "reg.corp:5000")
	cfg.Set("repo-user", "repo-pass", "reg.corp:5000/team/app")
	for _, tt := range []struct{ ref, user string }{
		{"reg.corp:5000/team/app:v1", "repo-user"},
		{"reg.corp:5000/team/other:v1", "host-user"},
		{"elsewhere.corp/team/app:v1", ""},
	} {
		a := authFor(cfg, tt.ref)
		if got := ""; a != nil {
			got = a.Username
			if got != tt.user {
				t.Errorf("%s: user %q, want %q", tt.ref, got, tt.user)
			}
		} else if tt.user != "" {
			t.Errorf("%s: no credential, want %q", tt.ref, tt.user)
		}
	}
	if authFor(nil, "x/y") != nil {
		t.Error("nil config gave a credential")
	}
}

func TestRepoDigest(t *testing.T) {
	st := &runtimeapi.Image{RepoDigests: []string{"other.corp/a@sha256:1", "reg.corp:5000/team/app@sha256:2"}}
	if got := repoDigest(st, "reg.corp:5000/team/app:v1"); got != "sha256:2" {
		t.Errorf("got %q", got)
	}
	if got := repoDigest(&runtimeapi.Image{RepoDigests: []string{"docker.io/library/nginx@sha256:3"}}, "nginx:1"); got != "sha256:3" {
		t.Errorf("got %q", got)
	}
}
