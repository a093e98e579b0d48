package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const condDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// TestConditional drives the conditional transport against a scripted server (a fake: a real
// registry cannot be made to answer 304 with a foreign ETag on demand). Real distribution answering
// 304 is covered by the image-syncer engine's state test.
func TestConditional(t *testing.T) {
	known := KnownManifest{Digest: condDigest, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 123}
	tests := []struct {
		name      string
		method    string
		path      string
		mark      bool
		etag      string // ETag on the 304; "-" answers 200 instead
		wantINM   []string
		wantCode  int
		wantClen  int64
		wantDigst string
	}{
		{"marked HEAD answered 304", "HEAD", "/v2/proj/app/manifests/v1", true, "", []string{`"` + condDigest + `"`}, 200, 123, condDigest},
		{"304 with the matching ETag", "HEAD", "/v2/proj/app/manifests/v1", true, `"` + condDigest + `"`, []string{`"` + condDigest + `"`}, 200, 123, condDigest},
		{"304 with another ETag is re-asked", "HEAD", "/v2/proj/app/manifests/v1", true, `"sha256:other"`, []string{`"` + condDigest + `"`, ""}, 200, 0, "sha256:server"},
		{"changed manifest answers 200", "HEAD", "/v2/proj/app/manifests/v1", true, "-", []string{`"` + condDigest + `"`}, 200, 0, "sha256:server"},
		{"unmarked request untouched", "HEAD", "/v2/proj/app/manifests/v1", false, "", []string{""}, 200, 0, "sha256:server"},
		{"other path untouched", "HEAD", "/v2/proj/app/manifests/v2", true, "", []string{""}, 200, 0, "sha256:server"},
		{"GET untouched", "GET", "/v2/proj/app/manifests/v1", true, "", []string{""}, 200, -1, "sha256:server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inm := r.Header.Get("If-None-Match")
				mu.Lock()
				got = append(got, inm)
				mu.Unlock()
				if inm != "" && tt.etag != "-" {
					if tt.etag != "" {
						w.Header().Set("Etag", tt.etag)
					}
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Docker-Content-Digest", "sha256:server")
				w.WriteHeader(http.StatusOK)
			}))
			defer srv.Close()
			ctx := context.Background()
			if tt.mark {
				ctx = WithKnownManifest(ctx, "proj/app", "v1", known)
			}
			req, _ := http.NewRequestWithContext(ctx, tt.method, srv.URL+tt.path, nil)
			resp, err := NewConditional(http.DefaultTransport).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || resp.Header.Get("Docker-Content-Digest") != tt.wantDigst {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), tt.wantCode, tt.wantDigst)
			}
			if tt.wantClen > 0 && (resp.ContentLength != tt.wantClen || resp.Header.Get("Content-Type") != known.MediaType) {
				t.Errorf("rebuilt answer: length %d type %q", resp.ContentLength, resp.Header.Get("Content-Type"))
			}
			if strings.Join(got, "|") != strings.Join(tt.wantINM, "|") {
				t.Errorf("If-None-Match sent %q, want %q", got, tt.wantINM)
			}
			if req.Header.Get("If-None-Match") != "" {
				t.Error("the caller's request was modified")
			}
		})
	}
}
