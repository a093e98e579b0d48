package registry

import (
	"net/http"
	"sync"
)

type limitTransport struct {
	inner http.RoundTripper
	n     int
	mu    sync.Mutex
	sems  map[string]chan struct{}
}

// NewLimit bounds the number of requests in flight per host to n (n <= 0 means no limit). A slot
// is held until the response headers arrive, so long streaming downloads never block uploads to the
// same host (no deadlock when source and destination share a registry).
func NewLimit(inner http.RoundTripper, n int) http.RoundTripper {
	if n <= 0 {
		return inner
	}
	return &limitTransport{inner: inner, n: n, sems: map[string]chan struct{}{}}
}

func (lt *limitTransport) sem(host string) chan struct{} {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	s, ok := lt.sems[host]
	if !ok {
		s = make(chan struct{}, lt.n)
		lt.sems[host] = s
	}
	return s
}

func (lt *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := lt.sem(req.URL.Host)
	select {
	case s <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	defer func() { <-s }()
	return lt.inner.RoundTrip(req)
}
