package registry

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// KnownManifest is what a caller remembers about a manifest: enough to rebuild the answer to a
// HEAD request.
type KnownManifest struct {
	Digest    string
	MediaType string
	Size      int64
}

type knownKey struct{}

type knownValue struct {
	path string // /v2/<repository>/manifests/<tag or digest>
	m    KnownManifest
}

// WithKnownManifest marks ctx so that a conditional transport (NewConditional) sends the manifest
// HEAD for repository:identifier with If-None-Match set to the remembered digest. A registry that
// supports it (distribution answers before reading the manifest) replies 304 Not Modified, which
// the transport turns back into the 200 a client library expects, rebuilt from m.
func WithKnownManifest(ctx context.Context, repository, identifier string, m KnownManifest) context.Context {
	return context.WithValue(ctx, knownKey{}, knownValue{path: "/v2/" + repository + "/manifests/" + identifier, m: m})
}

type conditional struct{ inner http.RoundTripper }

// NewConditional wraps inner so that manifest HEADs marked by WithKnownManifest are conditional.
// Every other request, and every answer but 304, passes through unchanged.
func NewConditional(inner http.RoundTripper) http.RoundTripper { return conditional{inner} }

func (c conditional) RoundTrip(r *http.Request) (*http.Response, error) {
	k, ok := r.Context().Value(knownKey{}).(knownValue)
	if !ok || r.Method != http.MethodHead || r.URL.Path != k.path || k.m.Digest == "" || r.Header.Get("If-None-Match") != "" {
		return c.inner.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("If-None-Match", `"`+k.m.Digest+`"`)
	resp, err := c.inner.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusNotModified {
		return resp, err
	}
	// Only a strong match on the digest we sent means "unchanged"; anything else is re-asked
	// without the condition.
	if et := resp.Header.Get("Etag"); et != "" && strings.Trim(strings.TrimPrefix(et, "W/"), `"`) != k.m.Digest {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.Header.Del("If-None-Match")
		return c.inner.RoundTrip(r)
	}
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.Header.Set("Docker-Content-Digest", k.m.Digest)
	resp.Header.Set("Content-Type", k.m.MediaType)
	resp.Header.Set("Content-Length", strconv.FormatInt(k.m.Size, 10))
	resp.ContentLength = k.m.Size
	return resp, nil
}
