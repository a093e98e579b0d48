// Package emulatorenv starts the acr-emulator in process for tests, on
// random loopback ports with a temporary data directory, and gives clients
// that reach its registry domains without /etc/hosts entries.
package emulatorenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// Options configure the emulator.
type Options struct {
	// World replaces the built-in demo world.
	World *world.World
	// Mutate edits the world (demo or World) before start; the world is
	// re-finalized afterwards.
	Mutate func(*world.World)
	// TokenTTL overrides the registry AuthorizationToken lifetime.
	TokenTTL time.Duration
	// OIDCIssuer, OIDCJWKSURL (and OIDCCAFile, OIDCBearerTokenFile)
	// configure the demo world's RRSA provider, e.g. for an envtest apiserver.
	OIDCIssuer          string
	OIDCJWKSURL         string
	OIDCCAFile          string
	OIDCBearerTokenFile string
	// DataDir reuses a data directory (restart tests); default t.TempDir().
	DataDir string
	// Now is the RAM clock (expiry tests).
	Now func() time.Time
	// Logger receives the emulator's logs; default: kept in Env.Logs.
	Logger *slog.Logger
	// ECIContainerdSocket and ECIContainerdHostsDir give the ECI service a containerd
	// (e.g. containerdenv's Socket and HostsDir).
	ECIContainerdSocket   string
	ECIContainerdHostsDir string
}

// Env is a running emulator.
type Env struct {
	Emulator *emulator.Emulator
	Info     *emulator.Info
	DataDir  string
	// CAPool trusts the emulator's CA.
	CAPool *x509.CertPool
	// Transport trusts the CA and dials every emulator registry domain
	// (any port) to 127.0.0.1; other hosts are dialled normally.
	Transport *http.Transport
	// Client uses Transport.
	Client *http.Client
	// Logs holds the emulator's log output when Options.Logger is nil.
	Logs *SyncBuffer
}

// Start starts the emulator and stops it when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	w := opts.World
	if w == nil {
		var err error
		w, err = world.Default(world.DefaultOptions{
			TokenTTL: opts.TokenTTL, OIDCIssuer: opts.OIDCIssuer, OIDCJWKSURL: opts.OIDCJWKSURL,
			OIDCCAFile: opts.OIDCCAFile, OIDCBearerTokenFile: opts.OIDCBearerTokenFile,
		})
		if err != nil {
			t.Fatalf("emulatorenv: demo world: %v", err)
		}
	} else if opts.TokenTTL > 0 {
		w.TokenTTL = world.Duration(opts.TokenTTL)
	}
	if opts.Mutate != nil {
		opts.Mutate(w)
	}
	if err := w.Finalize(); err != nil {
		t.Fatalf("emulatorenv: world: %v", err)
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	env := &Env{DataDir: dataDir, Logs: &SyncBuffer{}}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(env.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	emu, err := emulator.New(w, emulator.Options{
		DataDir: dataDir, InfoFile: filepath.Join(dataDir, "info.json"), HostsFile: filepath.Join(dataDir, "hosts"),
		Logger: logger, Now: opts.Now,
		ECIContainerdSocket: opts.ECIContainerdSocket, ECIContainerdHostsDir: opts.ECIContainerdHostsDir,
	})
	if err != nil {
		t.Fatalf("emulatorenv: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := emu.Start(ctx); err != nil {
		cancel()
		t.Fatalf("emulatorenv: start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := emu.Close(); err != nil {
			t.Logf("emulatorenv: close: %v", err)
		}
	})
	env.Emulator = emu
	env.Info = emu.Info()
	caPEM, err := os.ReadFile(env.Info.CAFile)
	if err != nil {
		t.Fatalf("emulatorenv: read CA: %v", err)
	}
	env.CAPool = x509.NewCertPool()
	if !env.CAPool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("emulatorenv: CA file %s holds no certificate", env.Info.CAFile)
	}
	env.Transport = env.newTransport()
	env.Client = &http.Client{Transport: env.Transport}
	return env
}

// Domains returns every registry domain (without port) the emulator serves.
func (e *Env) Domains() map[string]bool {
	out := map[string]bool{}
	for _, in := range e.Info.Instances {
		for _, d := range in.Domains {
			if h, _, err := net.SplitHostPort(d); err == nil {
				d = h
			}
			out[d] = true
		}
	}
	return out
}

// TransportFrom is Transport with connections made from a source address
// (e.g. 127.0.0.2, for whitelist tests).
func (e *Env) TransportFrom(src string) *http.Transport {
	tr := e.newTransport()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	domains := e.Domains()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, mapAddr(domains, addr))
	}
	return tr
}

func (e *Env) newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: e.CAPool, MinVersion: tls.VersionTLS12}
	d := &net.Dialer{Timeout: 10 * time.Second}
	domains := e.Domains()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, mapAddr(domains, addr))
	}
	return tr
}

func mapAddr(domains map[string]bool, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !domains[strings.ToLower(host)] {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Instance returns the info of an instance by ID.
func (e *Env) Instance(t testing.TB, id string) emulator.InfoInstance {
	t.Helper()
	for _, in := range e.Info.Instances {
		if in.InstanceID == id {
			return in
		}
	}
	t.Fatalf("emulatorenv: no instance %s", id)
	return emulator.InfoInstance{}
}

// Account returns the info of an account by uid.
func (e *Env) Account(t testing.TB, uid string) emulator.InfoAccount {
	t.Helper()
	for _, a := range e.Info.Accounts {
		if a.UID == uid {
			return a
		}
	}
	t.Fatalf("emulatorenv: no account %s", uid)
	return emulator.InfoAccount{}
}

// User returns the info of the user name in account uid.
func (e *Env) User(t testing.TB, uid, name string) emulator.InfoUser {
	t.Helper()
	for _, u := range e.Account(t, uid).Users {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("emulatorenv: no user %s in account %s", name, uid)
	return emulator.InfoUser{}
}

// Fault makes an OpenAPI action (e.g. "GetAuthorizationToken", "/tokens",
// emulator.RegistryTokenAction, or "*") answer status until ClearFaults.
// It is the emulator's fault switch: no real component can make the token
// API unavailable on demand.
func (e *Env) Fault(action string, status int) {
	if err := e.Emulator.Faults().Set(action, status); err != nil {
		panic(fmt.Sprintf("emulatorenv: %v", err))
	}
}

// ClearFaults removes every fault.
func (e *Env) ClearFaults() { e.Emulator.Faults().Clear() }

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer = logbuf.Buffer
