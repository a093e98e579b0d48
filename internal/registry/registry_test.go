package registry

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// scripted answers each request with the next status of its script, then 200 (a fault a real
// registry cannot produce on demand).
func scripted(t *testing.T, codes ...int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(n.Add(1)) - 1
		if i < len(codes) {
			if codes[i] == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0")
			}
			w.WriteHeader(codes[i])
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetry(t *testing.T) {
	p := RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 2 * time.Millisecond}
	for _, tc := range []struct {
		name      string
		codes     []int
		body      func() io.Reader
		wantCode  int
		wantCalls int32
	}{
		{"5xx then ok", []int{500, 502, 503}, nil, 200, 4},
		{"429 then ok", []int{429}, nil, 200, 2},
		{"gives up", []int{500, 500, 500, 500, 500}, nil, 500, 4},
		{"404 not retried", []int{404}, nil, 404, 1},
		{"replayable body", []int{503}, func() io.Reader { return strings.NewReader("abc") }, 200, 2},
		{"streaming body sent once", []int{503}, func() io.Reader { return io.MultiReader(strings.NewReader("abc")) }, 503, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := scripted(t, tc.codes...)
			c := &http.Client{Transport: NewRetry(http.DefaultTransport, p)}
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, body)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode || n.Load() != tc.wantCalls {
				t.Errorf("got %d after %d calls, want %d after %d", resp.StatusCode, n.Load(), tc.wantCode, tc.wantCalls)
			}
		})
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"3", 3 * time.Second}, {"", 0}, {"-1", 0}, {"junk", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestRetryStopsOnCancel cancels while the transport waits (an hour) between attempts: the first
// attempt has returned its 500 before the cancel, so the cancel can only end the wait.
func TestRetryStopsOnCancel(t *testing.T) {
	srv, n := scripted(t, 500, 500, 500)
	attempted := make(chan struct{}, 3)
	inner := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		attempted <- struct{}{}
		return resp, err
	})
	ctx, cancel := context.WithCancel(t.Context())
	// The transport itself, not an http.Client: the client returns on cancel by itself and
	// would hide a transport that keeps waiting.
	rt := NewRetry(inner, RetryPolicy{Attempts: 3, Base: time.Hour, Max: time.Hour})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	done := make(chan error, 1)
	go func() { _, err := rt.RoundTrip(req); done <- err }()
	<-attempted
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled after the first attempt", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d attempts, want 1 (the cancel ends the backoff)", got)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestLimit(t *testing.T) {
	const limit = 2
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inflight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		inflight.Add(-1)
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewLimit(http.DefaultTransport, limit)}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for range 5 {
		<-arrived
		release <- struct{}{}
	}
	wg.Wait()
	if peak.Load() > limit {
		t.Errorf("peak in-flight %d > limit %d", peak.Load(), limit)
	}
}

func TestHostTransportCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hosts Hosts
		ok    bool
	}{
		{"system roots reject", Hosts{}, false},
		{"ca file", Hosts{host: {CAFile: caFile}}, true},
		{"insecure", Hosts{host: {Insecure: true}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := NewHostTransport(tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			resp, err := rt.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := NewHostTransport(Hosts{"x:1": {CAFile: "/nonexistent"}}); err == nil || !strings.Contains(err.Error(), "caFile") {
		t.Errorf("missing caFile: %v", err)
	}
}

func TestCredential(t *testing.T) {
	for _, tc := range []struct {
		c      Credential
		want   authn.AuthConfig
		secret string
	}{
		{Credential{Username: "robot$ci", Password: "pa$$"}, authn.AuthConfig{Username: "robot$ci", Password: "pa$$"}, "pa$$"},
		{Credential{Token: "s3cret-tkn"}, authn.AuthConfig{RegistryToken: "s3cret-tkn"}, "s3cret-tkn"},
		{Credential{Username: "u", IdentityToken: "idt"}, authn.AuthConfig{Username: "u", IdentityToken: "idt"}, "idt"},
		{Credential{Username: "u"}, authn.AuthConfig{}, ""},
	} {
		got, err := authn.Authorization(t.Context(), tc.c.Authenticator())
		if err != nil {
			t.Fatal(err)
		}
		if *got != tc.want {
			t.Errorf("%s: got %+v", tc.c, got)
		}
		if tc.secret != "" && strings.Contains(tc.c.String(), tc.secret) {
			t.Errorf("String leaks %q", tc.secret)
		}
	}
}

func TestPingCache(t *testing.T) {
	var pings, other atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://x/token",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		other.Add(1)
	}))
	defer srv.Close()
	rt := NewPingCache(http.DefaultTransport)
	for range 5 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("cached ping: %d %v", resp.StatusCode, resp.Header)
		}
		resp.Body.Close()
	}
	if pings.Load() != 1 {
		t.Errorf("pings = %d, want 1", pings.Load())
	}
	// the other scheme is answered at once
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.Replace(srv.URL, "http://", "https://", 1)+"/v2/", nil)
	if _, err := rt.RoundTrip(req); err != ErrOtherScheme {
		t.Errorf("other scheme: %v", err)
	}
	// non-ping requests pass through
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/x/manifests/y", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if other.Load() != 1 {
		t.Errorf("pass-through = %d", other.Load())
	}
}

func TestNameOptions(t *testing.T) {
	h := Hosts{"a.io": {Insecure: true}, "b.io": {PlainHTTP: true}, "c.io": {CAFile: "x"}}
	for host, want := range map[string]string{"a.io": "http", "b.io": "http", "c.io": "https", "d.io": "https"} {
		reg, err := name.NewRegistry(host, h.NameOptions(host)...)
		if err != nil {
			t.Fatal(err)
		}
		if reg.Scheme() != want {
			t.Errorf("%s: scheme %s, want %s", host, reg.Scheme(), want)
		}
	}
}
