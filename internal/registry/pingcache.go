package registry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// ErrOtherScheme answers a ping on one scheme when the host already answered on the other.
var ErrOtherScheme = errors.New("registry answered on the other scheme")

type pingEntry struct {
	done   chan struct{}
	ok     bool
	status int
	header http.Header
	body   []byte
}

type pingCache struct {
	inner http.RoundTripper
	mu    sync.Mutex
	m     map[string]*pingEntry // scheme://host
}

// NewPingCache remembers, for the life of the transport, each host's answer to the anonymous
// version check "GET /v2/" (200 or 401 with its challenge), so the per-repository handshakes of
// go-containerregistry cost one ping per registry instead of one per repository. When a host has
// answered on one scheme, pings on the other scheme fail at once (ggcr races https and http for
// insecure and loopback registries).
func NewPingCache(inner http.RoundTripper) http.RoundTripper {
	return &pingCache{inner: inner, m: map[string]*pingEntry{}}
}

func isPing(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/v2/" && r.URL.RawQuery == "" && r.Header.Get("Authorization") == ""
}

func other(scheme string) string {
	if scheme == "https" {
		return "http"
	}
	return "https"
}

func (p *pingCache) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isPing(r) {
		return p.inner.RoundTrip(r)
	}
	key := r.URL.Scheme + "://" + r.URL.Host
	for {
		p.mu.Lock()
		if o, ok := p.m[other(r.URL.Scheme)+"://"+r.URL.Host]; ok && isDone(o) && o.ok {
			p.mu.Unlock()
			return nil, ErrOtherScheme
		}
		e, ok := p.m[key]
		if !ok {
			e = &pingEntry{done: make(chan struct{})}
			p.m[key] = e
			p.mu.Unlock()
			resp, err := p.inner.RoundTrip(r)
			if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized) {
				body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if rerr == nil {
					e.ok, e.status, e.header, e.body = true, resp.StatusCode, resp.Header.Clone(), body
				} else {
					err = rerr
				}
			}
			if !e.ok {
				p.mu.Lock()
				delete(p.m, key) // never remember a failure
				p.mu.Unlock()
				close(e.done)
				return resp, err
			}
			close(e.done)
			return e.response(r), nil
		}
		p.mu.Unlock()
		select {
		case <-e.done:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		if e.ok {
			return e.response(r), nil
		}
		// the first ping failed; try ourselves
	}
}

func isDone(e *pingEntry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *pingEntry) response(r *http.Request) *http.Response {
	return &http.Response{
		Status: http.StatusText(e.status), StatusCode: e.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: e.header.Clone(), Body: io.NopCloser(bytes.NewReader(e.body)), ContentLength: int64(len(e.body)), Request: r,
	}
}
