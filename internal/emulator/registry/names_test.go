package registry_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// TestHostileRepositoryNames (issue 15, hostile input): repository paths with "..", ".",
// upper case, unicode, an empty component or a third level are refused by the registry —
// with the admin's valid token, so only the name is at fault — and never reach storage; a
// valid name with the same token works.
func TestHostileRepositoryNames(t *testing.T) {
	f := newFixture(t, t.TempDir())
	tok := f.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou)
	// a bearer token for apps/hello, sent by ggcr's transport with every request to the registry
	reg := f.ref(t, hzDomain, "apps/hello:v1").Context()
	rt, err := transport.NewWithContext(t.Context(), reg.Registry, tok, f.transport(""), []string{reg.Scope(transport.PushScope)})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: rt}
	do := func(method, path string) int {
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+hzDomain+":"+f.port+path, nil)
		if err != nil {
			return -1 // refused by net/http itself: never sent
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(http.MethodHead, "/v2/apps/hello/manifests/v1"); got != http.StatusOK {
		t.Fatalf("valid name: %d, want 200", got)
	}
	for _, repo := range []string{
		"apps/../public/hello", "apps/./hello", "../apps/hello", "Apps/Hello", "apps/HELLO",
		"apps/h\u00e9llo", "apps/%2e%2e/hello", "apps//hello", "apps/hello/extra", "apps",
	} {
		for _, req := range []struct{ method, path string }{
			{http.MethodHead, "/v2/" + repo + "/manifests/v1"},
			{http.MethodPost, "/v2/" + repo + "/blobs/uploads/"},
			{http.MethodGet, "/v2/" + repo + "/tags/list"},
		} {
			got := do(req.method, req.path)
			if got < 400 || got >= 500 {
				t.Errorf("%s %s: %d, want a 4xx refusal", req.method, req.path, got)
			}
		}
	}
	if strings.Contains(f.logs.String(), "panic") {
		t.Error("a hostile name made the registry panic")
	}
}
