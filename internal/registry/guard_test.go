package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The servers in this file are hostile servers: they misbehave in ways no real registry does on
// demand (redirect loops, oversized manifests, silence, trickling), which is what the guard is for.

// liveness bounds a test that would hang forever without the guard; it is not a timing threshold.
func liveness(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ref(t *testing.T, srv *httptest.Server, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantLimit(t *testing.T, err error, reason string) {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(le.Reason, reason) {
		t.Fatalf("err = %v, want a LimitError %q", err, reason)
	}
}

// TestGuardRedirectLoop: a hostile server redirects a manifest to itself. go-containerregistry's
// SSRF check replaces Go's 10-redirect cap, so without the guard the loop only ends when the
// server gives up (here after 500 hops, with a 404).
func TestGuardRedirectLoop(t *testing.T) {
	var hops atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if hops.Add(1) > 500 {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer srv.Close()
	_, err := remote.Get(ref(t, srv, "loop/app:v1"), remote.WithContext(liveness(t)), remote.WithTransport(NewGuard(http.DefaultTransport, Limits{})))
	wantLimit(t, err, "stopped after 10 redirects")
	if n := hops.Load(); n != 11 {
		t.Errorf("the server saw %d manifest requests, want 11 (the request and 10 redirects)", n)
	}
}

// TestGuardManifestSize: a hostile server answers a manifest GET with 5 MiB (distribution itself
// refuses to store more than 4 MiB, so no real registry can be made to serve it).
func TestGuardManifestSize(t *testing.T) {
	big := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				for i := 0; i < len(big); i += 64 << 10 {
					_, _ = io.WriteString(w, big[i:min(i+64<<10, len(big))])
					w.(http.Flusher).Flush()
				}
			}))
			defer srv.Close()
			_, err := remote.Get(ref(t, srv, "big/app:v1"), remote.WithContext(liveness(t)), remote.WithTransport(NewGuard(http.DefaultTransport, Limits{})))
			if chunked {
				wantLimit(t, err, "the manifest is larger than the 4 MiB limit")
			} else {
				wantLimit(t, err, "the manifest is larger than the 4 MiB limit (5242979 bytes)")
			}
		})
	}
	// a manifest of exactly the limit passes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("a", 4<<20))
	}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/a/manifests/v1", nil)
	resp, err := NewGuard(http.DefaultTransport, Limits{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 4<<20 {
		t.Errorf("a 4 MiB manifest: %d bytes, %v", n, err)
	}
}

var fast = Limits{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MinSpeed: 1000}

// TestGuardSilentAndTricklingServers: hostile servers that accept and never answer, trickle
// their headers, go silent after the headers, trickle their body, or stop reading an upload.
// Without the guard each request waits forever (here: until the liveness deadline).
func TestGuardSilentAndTricklingServers(t *testing.T) {
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent":
			<-release
		case "/silent-body":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-release
		case "/trickle-body":
			for {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-release:
					return
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		case "/no-read":
			<-release // never reads the upload
		}
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handlers

	// a raw listener for the header trickle: one byte of the status line every 20 ms
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				for _, b := range []byte("HTTP/1.1 200 OK\r\nX-Slow: " + strings.Repeat("y", 10000)) {
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					select {
					case <-release:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
		}
	}()

	for _, tc := range []struct {
		name, method, url string
		body              io.Reader
		want              string
	}{
		{"accepts and never answers", "GET", srv.URL + "/silent", nil, "no response headers within 300ms"},
		{"trickles headers", "GET", "http://" + ln.Addr().String() + "/", nil, "no response headers within 300ms"},
		{"silent after the headers", "GET", srv.URL + "/silent-body", nil, "no data from the server for 300ms"},
		{"trickles the body", "GET", srv.URL + "/trickle-body", nil, "slower than 1000 bytes/s"},
		{"stops reading an upload", "PUT", srv.URL + "/no-read", io.LimitReader(zeros{}, 256<<20), "took no data for 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(liveness(t), tc.method, tc.url, tc.body)
			c := &http.Client{Transport: NewGuard(&http.Transport{}, fast)}
			resp, err := c.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			wantLimit(t, err, tc.want)
			if !RetryableError(err) {
				t.Errorf("a stall should be retryable (a new connection may do better): %v", err)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestGuardPassesHealthyTraffic: a slow consumer (the guard measures only time spent waiting for
// the server) and a streamed upload pass; the request context is released when the body closes.
func TestGuardPassesHealthyTraffic(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d %s", n, strings.Repeat("z", 100<<10))
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewGuard(http.DefaultTransport, fast)}
	req, _ := http.NewRequestWithContext(t.Context(), "PUT", srv.URL+"/v2/a/blobs/uploads/x", io.LimitReader(zeros{}, 8<<20))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<10)
	total := 0
	for i := 0; ; i++ {
		n, err := resp.Body.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			time.Sleep(2 * fast.IdleTimeout) // a slow consumer, not synchronisation: nothing waits on it
		}
	}
	resp.Body.Close()
	if want := len("8388608 ") + 100<<10; total != want {
		t.Errorf("read %d bytes, want %d", total, want)
	}
}

func TestSameSite(t *testing.T) {
	for _, tc := range []struct {
		reg, realm string
		want       bool
	}{
		{"registry-1.docker.io", "auth.docker.io", true},
		{"registry.cn-hangzhou.aliyuncs.com", "dockerauth.cn-hangzhou.aliyuncs.com", true},
		{"harbor.corp.example:8443", "harbor.corp.example", true},
		{"reg.example.com:5000", "auth.example.com:5001", true},
		{"reg.example.com", "auth.evil.com", false},
		{"a.github.io", "b.github.io", false}, // github.io is a public suffix: different sites
		{"10.0.0.5:5000", "10.0.0.5:5001", true},
		{"10.0.0.5:5000", "10.0.0.6:5001", false},
		{"reg.example.com", "93.184.216.34", false},
	} {
		if got := SameSite(tc.reg, tc.realm); got != tc.want {
			t.Errorf("SameSite(%s, %s) = %v, want %v", tc.reg, tc.realm, got, tc.want)
		}
	}
}

// FuzzRealmChallenge: WWW-Authenticate values come from registries (untrusted). Parsing them
// never panics, and a learned realm always has a host.
func FuzzRealmChallenge(f *testing.F) {
	for _, c := range []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`, `Bearer realm=`, `Bearer`, `Basic realm="x"`, `bearer REALM=https://a/b, scope="x"`, `Bearer realm="unterminated`} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		g := NewRealmGuard(http.DefaultTransport, nil).(*realmGuard)
		g.learn("r.io:5000", []string{c})
		for k, regs := range g.realms {
			if !strings.Contains(k, "://") || len(regs) != 1 {
				t.Fatalf("learned %q from %q", k, c)
			}
		}
	})
}
