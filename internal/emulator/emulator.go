// Package emulator assembles the acr-emulator: the registries with their
// token realm, the OpenAPI (Container Registry, STS) and the ECS metadata
// service over one emulated world, on loopback listeners, and reports where
// everything is in an info file.
//
//	w, _ := world.Default(world.DefaultOptions{})
//	emu, err := emulator.New(w, emulator.Options{DataDir: dir, InfoFile: dir + "/info.json"})
//	if err != nil { ... }
//	if err := emu.Start(ctx); err != nil { ... }
//	defer emu.Close()
//	info := emu.Info() // endpoints, CA file, identities, instances
//
// Files by concern: emulator.go (options, construction), lifecycle.go
// (listeners, Start, Close), handlers.go (the services composed over the
// world), faults.go (the fault switch), tls.go (the CA and serving
// certificate), info.go (the info and hosts files).
package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/eci"
	"github.com/ferrypull/ferry/internal/emulator/eci/cri"
	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/registry"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Options configure an Emulator. Addresses default to 127.0.0.1:0 (a random
// free port); only loopback addresses are accepted.
type Options struct {
	// DataDir holds registry storage (DataDir/<instanceId>), the CA
	// (ca.crt, ca.key) and the token signing key. Required.
	DataDir string

	OpenAPIAddr     string
	OpenAPITLSAddr  string
	MetadataAddr    string
	RegistryAddr    string
	RegistryTLSAddr string

	// InfoFile, when set, receives the info document once every listener
	// is ready.
	InfoFile string
	// HostsFile, when set, receives "127.0.0.1 <domain>" lines for every
	// registry domain, ready to append to /etc/hosts.
	HostsFile string
	// BareDomains advertises domains without a port (the TLS registry
	// listener is then expected on :443).
	BareDomains bool
	// DefaultInstance serves requests addressed to a bare IP with no other
	// routing hint (instance ID or name); default the first instance.
	DefaultInstance string
	// RegistryTokenTTL is the lifetime of registry bearer tokens (JWTs);
	// default 10 minutes. The AuthorizationToken lifetime is the world's.
	RegistryTokenTTL time.Duration
	// Logger receives one line per API call and auth decision; default discards.
	Logger *slog.Logger
	// Now is the clock of the RAM service (STS sessions, registry tokens).
	Now func() time.Time
	// ECIContainerdSocket is the CRI socket of the containerd that runs ECI container groups
	// and image caches; empty: the ECI actions answer ECIRuntimeNotConfigured.
	ECIContainerdSocket string
	// ECIContainerdHostsDir is that containerd's registry config_path: the emulator trusts its
	// CA there for its registry domains and configures PlainHttpRegistry / InsecureRegistry
	// hosts for the duration of a pull.
	ECIContainerdHostsDir string
}

// Emulator is a running (or ready to start) acr-emulator.
type Emulator struct {
	opts   Options
	world  *world.World
	ram    *ram.Service
	dir    *registry.WorldDirectory
	front  *registry.Front
	sites  []registry.Site
	seeds  []registry.Seed
	faults *Faults
	log    *slog.Logger
	eci    *eci.Service
	eciRT  *cri.Runtime

	caFile  string
	servers []*http.Server
	addrs   struct{ openapi, openapiTLS, metadata, registry, registryTLS string }
	info    *Info

	mu      sync.Mutex
	started bool
	closed  bool
}

// New builds an emulator over w. Nothing listens until Start.
func New(w *world.World, opts Options) (*Emulator, error) {
	if w == nil {
		return nil, errors.New("emulator: world is nil")
	}
	if opts.DataDir == "" {
		return nil, errors.New("emulator: DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("emulator: data dir: %w", err)
	}
	opts.DataDir = dataDir
	for _, a := range []*string{&opts.OpenAPIAddr, &opts.OpenAPITLSAddr, &opts.MetadataAddr, &opts.RegistryAddr, &opts.RegistryTLSAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var ramOpts []ram.Option
	if opts.Now != nil {
		ramOpts = append(ramOpts, ram.WithClock(opts.Now))
	}
	svc := ram.New(w, ramOpts...)
	dir := registry.NewWorldDirectory(svc)
	seeds, err := dir.Seeds()
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	front, err := registry.New(dir, registry.Options{
		DataDir: dataDir, TokenTTL: opts.RegistryTokenTTL,
		DefaultSite: opts.DefaultInstance, Logger: opts.Logger.With("component", "registry"), Now: opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	return &Emulator{
		opts: opts, world: w, ram: svc, dir: dir, front: front, sites: dir.Sites(), seeds: seeds,
		faults: NewFaults(), log: opts.Logger,
	}, nil
}

// RAM returns the emulator's RAM service (identities, STS sessions and
// registry tokens).
func (e *Emulator) RAM() *ram.Service { return e.ram }

// World returns the emulated world.
func (e *Emulator) World() *world.World { return e.world }

// Registry returns the registry front; it implements ListTags for ListRepoTag.
func (e *Emulator) Registry() *registry.Front { return e.front }

// Faults returns the fault switch.
func (e *Emulator) Faults() *Faults { return e.faults }

// Info returns the info document; nil before Start.
func (e *Emulator) Info() *Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info
}
