package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrypull/ferry/internal/registry"
)

// Hostile servers: registries that misbehave in ways distribution cannot be made to (a next link
// back to the same page, endless bodies). Each gives up on its own after a bound so that the test
// ends — with a wrong answer — when the defence is missing.

func hostileEngine(t *testing.T) *Engine {
	t.Helper()
	ht, err := registry.NewHostTransport(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newEngine(t, registry.NewGuard(ht, registry.Limits{}), Options{})
	return e
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestHostileListLinkLoop: a tags list or catalog whose Link rel="next" points back at the same
// page. Without a loop check the listing grows without end (the server stops after 5000 pages).
func TestHostileListLinkLoop(t *testing.T) {
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if pages.Add(1) < 5000 {
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, r.URL.RequestURI()))
		}
		if r.URL.Path == "/v2/_catalog" {
			fmt.Fprint(w, `{"repositories":["p/a","p/b"]}`)
			return
		}
		fmt.Fprint(w, `{"name":"p/a","tags":["v1","v2"]}`)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	e := hostileEngine(t)

	tags, err := e.Tags(bounded(t), host+"/p/a")
	if err == nil || !strings.Contains(err.Error(), "back to a page already read") {
		t.Fatalf("tags: %d tags, err %v", len(tags), err)
	}
	if n := pages.Load(); n > 3 {
		t.Errorf("%d pages read for a one-page loop", n)
	}
	pages.Store(0)
	repos, err := e.Catalog(bounded(t), host)
	if err == nil || !strings.Contains(err.Error(), "the catalog of "+host+": the registry links page") {
		t.Fatalf("catalog: %d repositories, err %v", len(repos), err)
	}
}

// TestHostileListEndlessPages: every page links to a new one (?last=<n>): the page cap stops it.
func TestHostileListEndlessPages(t *testing.T) {
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		n := pages.Add(1)
		if n < 3*MaxListPages {
			w.Header().Set("Link", fmt.Sprintf(`</v2/p/a/tags/list?last=%d>; rel="next"`, n))
		}
		fmt.Fprintf(w, `{"name":"p/a","tags":["t%d"]}`, n)
	}))
	defer srv.Close()
	_, err := hostileEngine(t).Tags(bounded(t), strings.TrimPrefix(srv.URL, "http://")+"/p/a")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d pages", MaxListPages)) {
		t.Fatalf("err = %v", err)
	}
	if n := pages.Load(); n > MaxListPages {
		t.Errorf("%d pages read", n)
	}
}

// TestHostileEndlessTagsBody: a tags list body that never ends (the server stops after 64 MiB).
// go-containerregistry decodes it without a size cap; the guard stops it at the page limit.
func TestHostileEndlessTagsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		_, _ = io.WriteString(w, `{"name":"p/a","tags":["v0"`)
		chunk := strings.Repeat(`,"v1234567"`, 6000)
		for sent := 0; sent < 64<<20; sent += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `]}`)
	}))
	defer srv.Close()
	tags, err := hostileEngine(t).Tags(bounded(t), strings.TrimPrefix(srv.URL, "http://")+"/p/a")
	if err == nil || !strings.Contains(err.Error(), "the tags list page is larger than the 16 MiB limit") {
		t.Fatalf("%d tags, err %v", len(tags), err)
	}
}

// TestPlanBytesDoNotWrap: a manifest whose layer sizes add up past int64 (a registry may claim
// any size) gives the largest int64 as the dry-run total, not a negative number.
func TestPlanBytesDoNotWrap(t *testing.T) {
	e := hostileEngine(t)
	var layers []string
	for i := range 3 {
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064d","size":%d}`, i+1, int64(math.MaxInt64/2)))
	}
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2},"layers":[` + strings.Join(layers, ",") + `]}`)
	repo, _ := e.repo("s.io/p/a")
	n, err := e.planBytes(t.Context(), repo, "d.io", raw, types.OCIManifestSchema1, nil)
	if err != nil || n != math.MaxInt64 {
		t.Errorf("planBytes = %d, %v; want %d", n, err, int64(math.MaxInt64))
	}
}

// corruptingProxy is a hostile server: a reverse proxy in front of a real registry that flips
// one byte of every blob it serves whose digest is in bad, and of every manifest if manifests.
func corruptingProxy(t *testing.T, target string, bad map[string]bool, manifests bool) *httptest.Server {
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		p := resp.Request.URL.Path
		corrupt := strings.Contains(p, "/blobs/sha256:") && bad[p[strings.LastIndex(p, "/")+1:]] ||
			manifests && strings.Contains(p, "/manifests/")
		if !corrupt || resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			b[len(b)/2] ^= 0x20
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

// TestHostileContentNotMatchingDigest: blobs and manifests whose bytes do not match their
// digest. The copy fails, nothing is written under the tag, and the error says what happened
// (before: a PATCH URL with the upload state of the fallback upload).
func TestHostileContentNotMatchingDigest(t *testing.T) {
	f := corpus(t)
	img, _ := remote.Image(mustRef(t, f.src.Addr+"/proj/app:v1"), remote.WithContext(t.Context()))
	layers, _ := img.Layers()
	ld := mustDigest(layers[0]).String()
	blobProxy := corruptingProxy(t, f.src.Addr, map[string]bool{ld: true}, false)
	manifestProxy := corruptingProxy(t, f.src.Addr, nil, true)
	e, c := newEngine(t, nil, Options{})
	for _, tc := range []struct {
		src, dst, want string
	}{
		{strings.TrimPrefix(blobProxy.URL, "http://") + "/proj/app:v1", f.dst.Addr + "/bad/blob:v1",
			"blob " + ld + ": the source sent content that does not match its digest " + ld},
		{strings.TrimPrefix(manifestProxy.URL, "http://") + "/proj/app@" + f.digests["proj/app:v1"].String(), f.dst.Addr + "/bad/manifest:v1",
			"does not match"},
	} {
		c.reset()
		tasks := rules(t, e, [2]string{tc.src, tc.dst})
		r := e.Copy(t.Context(), tasks[0])
		if r.Status != Failed || r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("%s: %s %v, want an error saying %q", tc.src, r.Status, r.Err, tc.want)
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), "_state=") {
			t.Errorf("the error shows the upload state: %v", r.Err)
		}
		if got := digestOf(t, tc.dst); !strings.HasPrefix(got, "missing") {
			t.Errorf("%s was written: %s", tc.dst, got)
		}
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
