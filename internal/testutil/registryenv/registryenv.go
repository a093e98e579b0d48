// Package registryenv starts real OCI registries for tests: distribution/v3 in process and Debian's
// docker-registry (distribution 2.8) as a separate "Harbor-like" process, with optional self-signed TLS
// and htpasswd users.
package registryenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // htpasswd access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // filesystem storage
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferrypull/ferry/internal/testutil/testpki"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Options configure a registry.
type Options struct {
	// TLS serves HTTPS with a certificate from a fresh self-signed CA (CAFile) for 127.0.0.1, localhost and Hosts.
	TLS bool
	// Hosts are extra DNS names for the TLS certificate.
	Hosts []string
	// Users enables htpasswd (bcrypt) basic auth with these user → password pairs.
	Users map[string]string
	// SparseIndexes (distribution only) accepts an image index whose children are not all present
	// (validation.manifests.indexes.platforms: none), as registries that store sparse indexes do.
	SparseIndexes bool
}

// Registry is a running registry.
type Registry struct {
	Addr   string // host:port
	URL    string // http(s)://host:port
	CAFile string // set when TLS
	Dir    string // storage and config directory
	TLS    bool
	ca     *testpki.CA
}

// Transport returns an HTTP transport that trusts the registry's CA.
func (r *Registry) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.ca.Pool(), MinVersion: tls.VersionTLS12}
	}
	return tr
}

// Ref parses "repo:tag" (or "repo@digest") below this registry.
func (r *Registry) Ref(t testing.TB, repoRef string) name.Reference {
	t.Helper()
	var opts []name.Option
	if !r.TLS {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(r.Addr+"/"+repoRef, opts...)
	if err != nil {
		t.Fatalf("parse reference %q: %v", repoRef, err)
	}
	return ref
}

// Options returns go-containerregistry remote options for this registry with the given basic credentials
// (empty user = anonymous).
func (r *Registry) Options(ctx context.Context, user, pass string) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.Transport())}
	if user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	}
	return opts
}

// Push writes img to repoRef ("repo:tag") with the given credentials and returns its digest.
func (r *Registry) Push(t testing.TB, repoRef string, img v1.Image, user, pass string) v1.Hash {
	t.Helper()
	ref := r.Ref(t, repoRef)
	if err := remote.Write(ref, img, r.Options(t.Context(), user, pass)...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d
}

func prepare(t testing.TB, opts Options) (*Registry, string) {
	t.Helper()
	dir := t.TempDir()
	r := &Registry{Dir: dir, TLS: opts.TLS}
	htpasswd := ""
	if len(opts.Users) > 0 {
		htpasswd = filepath.Join(dir, "htpasswd")
		users := make([]string, 0, len(opts.Users))
		for u := range opts.Users {
			users = append(users, u)
		}
		sort.Strings(users)
		var b strings.Builder
		for _, u := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(opts.Users[u]), bcrypt.MinCost)
			if err != nil {
				t.Fatalf("bcrypt: %v", err)
			}
			fmt.Fprintf(&b, "%s:%s\n", u, h)
		}
		if err := os.WriteFile(htpasswd, []byte(b.String()), 0o600); err != nil {
			t.Fatalf("write htpasswd: %v", err)
		}
	}
	if opts.TLS {
		ca, err := testpki.NewCA("ferry-test-registry-ca")
		if err != nil {
			t.Fatal(err)
		}
		r.ca = ca
	}
	return r, htpasswd
}

// StartDistribution starts distribution/v3 in this process on 127.0.0.1 with filesystem storage.
func StartDistribution(t testing.TB, opts Options) *Registry {
	t.Helper()
	r, htpasswd := prepare(t, opts)
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": filepath.Join(r.Dir, "data")},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	if htpasswd != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "ferry-test", "path": htpasswd}}
	}
	if opts.SparseIndexes {
		cfg.Validation.Manifests.Indexes.Platforms = "none"
	}
	cfg.Log.AccessLog.Disabled = true
	logrus.SetOutput(io.Discard) // handlers.NewApp ignores cfg.Log
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	app := handlers.NewApp(ctx, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	r.Addr = ln.Addr().String()
	scheme := "http"
	if opts.TLS {
		tc, err := r.ca.TLSConfig(append([]string{"127.0.0.1", "localhost"}, opts.Hosts...)...)
		if err != nil {
			t.Fatal(err)
		}
		r.CAFile = filepath.Join(r.Dir, "ca.crt")
		if err := os.WriteFile(r.CAFile, r.ca.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, tc)
		scheme = "https"
	}
	r.URL = scheme + "://" + r.Addr
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); cancel() })
	return r
}

// StartDocker starts Debian's docker-registry (distribution 2.8) as a child process.
func StartDocker(t testing.TB, opts Options) *Registry {
	t.Helper()
	tools.Rig(t, "Debian's docker-registry")
	bin := tools.LookPath(t, "docker-registry")
	r, htpasswd := prepare(t, opts)
	r.Addr = fmt.Sprintf("127.0.0.1:%d", tools.FreePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n")
	fmt.Fprintf(&cfg, "storage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\n", filepath.Join(r.Dir, "data"))
	fmt.Fprintf(&cfg, "http:\n  addr: %s\n", r.Addr)
	scheme := "http"
	if opts.TLS {
		caFile, certFile, keyFile, err := r.ca.WriteFiles(r.Dir, append([]string{"127.0.0.1", "localhost"}, opts.Hosts...)...)
		if err != nil {
			t.Fatal(err)
		}
		r.CAFile = caFile
		fmt.Fprintf(&cfg, "  tls: {certificate: %s, key: %s}\n", certFile, keyFile)
		scheme = "https"
	}
	if htpasswd != "" {
		fmt.Fprintf(&cfg, "auth:\n  htpasswd: {realm: ferry-test, path: %s}\n", htpasswd)
	}
	r.URL = scheme + "://" + r.Addr
	cfgPath := filepath.Join(r.Dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := tools.StartProcess(t, "docker-registry", filepath.Join(r.Dir, "registry.log"), bin, "serve", cfgPath)
	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	if err := WaitReady(t.Context(), client, r.URL+"/v2/", proc.Exited); err != nil {
		t.Fatalf("docker-registry at %s did not become ready: %v\n%s", r.Addr, err, proc.Log())
	}
	return r
}

// WaitReady polls url until it answers 200 or 401, exited reports an error, or 30 s pass.
func WaitReady(ctx context.Context, client *http.Client, url string, exited func() error) error {
	return tools.Poll(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return true, nil
			}
		}
		return false, exited()
	})
}
