package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Host holds the connection settings of one registry host ("host:port").
type Host struct {
	// Insecure skips TLS verification and lets go-containerregistry fall back to plain HTTP.
	Insecure bool
	// PlainHTTP lets go-containerregistry fall back to plain HTTP without weakening TLS
	// verification when HTTPS answers (containerd's plain-http-registry).
	PlainHTTP bool
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
}

// Hosts maps a registry host ("host:port" as written in references) to its settings.
type Hosts map[string]Host

// NameOptions returns the name options for parsing references on host: name.Insecure when the host
// is insecure or plain HTTP (so HTTP is tried as well as HTTPS).
func (h Hosts) NameOptions(host string) []name.Option {
	if h[host].Insecure || h[host].PlainHTTP {
		return []name.Option{name.Insecure}
	}
	return nil
}

// hostTransport picks a per-host *http.Transport so TLS settings never leak between registries.
type hostTransport struct {
	hosts   Hosts
	base    *http.Transport
	mu      sync.Mutex
	byHost  map[string]*http.Transport
	loadErr map[string]error
}

// NewHostTransport returns a RoundTripper that applies each host's TLS settings. Unknown hosts use
// a default transport with the system roots.
func NewHostTransport(hosts Hosts) (http.RoundTripper, error) {
	base := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
	ht := &hostTransport{hosts: hosts, base: base, byHost: map[string]*http.Transport{}, loadErr: map[string]error{}}
	for host := range hosts {
		if _, err := ht.transportFor(host); err != nil {
			return nil, err
		}
	}
	return ht, nil
}

func (ht *hostTransport) transportFor(host string) (*http.Transport, error) {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	if t, ok := ht.byHost[host]; ok {
		return t, nil
	}
	if err, ok := ht.loadErr[host]; ok {
		return nil, err
	}
	h, ok := ht.hosts[host]
	if !ok {
		ht.byHost[host] = ht.base
		return ht.base, nil
	}
	t := ht.base.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.Insecure {
		cfg.InsecureSkipVerify = true //nolint:gosec // the user asked for insecure: true on this registry
	}
	if h.CAFile != "" {
		pem, err := os.ReadFile(h.CAFile)
		if err != nil {
			err = fmt.Errorf("registry %s: read caFile: %w", host, err)
			ht.loadErr[host] = err
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			err := fmt.Errorf("registry %s: caFile %s holds no PEM certificate", host, h.CAFile)
			ht.loadErr[host] = err
			return nil, err
		}
		cfg.RootCAs = pool
	}
	t.TLSClientConfig = cfg
	ht.byHost[host] = t
	return t, nil
}

func (ht *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t, err := ht.transportFor(req.URL.Host)
	if err != nil {
		return nil, err
	}
	return t.RoundTrip(req)
}
