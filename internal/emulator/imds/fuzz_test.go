package imds

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// FuzzServeHTTP: arbitrary paths and headers never panic and never yield credentials for a
// path other than the attached role's.
func FuzzServeHTTP(f *testing.F) {
	w, err := world.Default(world.DefaultOptions{})
	if err != nil {
		f.Fatal(err)
	}
	h := New(ram.New(w), Hardened(false))
	f.Add("PUT", "/latest/api/token", "21600", "")
	f.Add("GET", credsPrefix+world.DemoWorkerRole, "", "tok")
	f.Add("GET", credsPrefix+"../x", "", "")
	f.Fuzz(func(t *testing.T, method, path, ttl, token string) {
		req, err := http.NewRequestWithContext(t.Context(), method, "http://100.100.100.200"+path, nil)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req.Header.Set(HeaderTokenTTL, ttl)
		req.Header.Set(HeaderToken, token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "AccessKeySecret") && !strings.EqualFold(strings.TrimPrefix(req.URL.Path, credsPrefix), world.DemoWorkerRole) {
			t.Fatalf("credentials served for %q", req.URL.Path)
		}
	})
}
