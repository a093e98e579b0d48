package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	// Register the storage driver and the token access controller.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Header names and paths of the front.
const (
	// HostHeader names the registry domain for requests addressed to a bare
	// listener address (127.0.0.1:port).
	HostHeader = "X-Ferry-Registry-Host"
	// RealmPath is the token realm on every registry listener.
	RealmPath = "/auth"
)

// Options configure a Front.
type Options struct {
	// DataDir holds one storage directory per site (DataDir/<siteID>) and the
	// realm's signing key. Required.
	DataDir string
	// TokenTTL is the lifetime of issued bearer tokens; default 10 minutes.
	TokenTTL time.Duration
	// DefaultSite is the site ID (or instance name) served when the Host
	// names no site; empty means the first site.
	DefaultSite string
	// Logger receives one line per auth decision; default discards.
	Logger *slog.Logger
	// Now is the realm's clock; default time.Now.
	Now func() time.Time
}

// Front routes registry requests by Host to the site's registry and serves
// the token realm. It implements http.Handler.
type Front struct {
	dir       Directory
	sites     []*site
	byService map[string]*site
	byHost    map[string]route
	byID      map[string]*site
	def       *site
	realm     *realm
	log       *slog.Logger
	cancel    context.CancelFunc
	closeOnce sync.Once
}

type route struct {
	site *site
	vpc  bool
}

// site is a served registry.
type site struct {
	Site
	app     *handlers.App
	rootDir string
}

var quietLogrus sync.Once

// New builds the front and one distribution registry per site of dir.
func New(dir Directory, opts Options) (*Front, error) {
	if opts.DataDir == "" {
		return nil, fmt.Errorf("registry front: DataDir is required")
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// distribution logs through the global logrus logger; the emulator's own
	// log lines are the auth decisions.
	quietLogrus.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.PanicLevel)
	})
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("registry front: create data dir: %w", err)
	}
	key, jwksPath, err := loadOrCreateSigningKey(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("registry front: %w", err)
	}
	rl, err := newRealm(dir, key, opts.TokenTTL, opts.Now, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("registry front: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{
		dir: dir, realm: rl, log: opts.Logger, cancel: cancel,
		byService: map[string]*site{}, byHost: map[string]route{}, byID: map[string]*site{},
	}
	secret := randomID()
	for _, st := range dir.Sites() {
		if st.ID == "" || strings.ContainsAny(st.ID, `/\`) || st.ID == "." || st.ID == ".." {
			cancel()
			return nil, fmt.Errorf("registry front: site ID %q is not a valid directory name", st.ID)
		}
		if _, dup := f.byID[st.ID]; dup {
			cancel()
			return nil, fmt.Errorf("registry front: duplicate site ID %q", st.ID)
		}
		s := &site{Site: st, rootDir: filepath.Join(opts.DataDir, st.ID)}
		app, err := newApp(ctx, s.rootDir, s.Service(), jwksPath, secret)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("registry front: site %s: %w", st.ID, err)
		}
		s.app = app
		f.sites = append(f.sites, s)
		f.byID[st.ID] = s
		f.byService[s.Service()] = s
		for _, d := range st.PublicDomains {
			if err := f.addHost(d, s, false); err != nil {
				cancel()
				return nil, err
			}
		}
		for _, d := range st.VPCDomains {
			if err := f.addHost(d, s, true); err != nil {
				cancel()
				return nil, err
			}
		}
	}
	if len(f.sites) == 0 {
		cancel()
		return nil, fmt.Errorf("registry front: the directory has no sites")
	}
	f.def = f.sites[0]
	if opts.DefaultSite != "" {
		f.def = f.lookupSite(opts.DefaultSite)
		if f.def == nil {
			cancel()
			return nil, fmt.Errorf("registry front: default site %q: no such instance", opts.DefaultSite)
		}
	}
	return f, nil
}

func (f *Front) addHost(domain string, s *site, vpc bool) error {
	h := normalizeHost(domain)
	if prev, dup := f.byHost[h]; dup && prev.site != s {
		return fmt.Errorf("registry front: domain %q is served by both %s and %s", domain, prev.site.ID, s.ID)
	}
	f.byHost[h] = route{site: s, vpc: vpc}
	return nil
}

// lookupSite finds a site by ID, instance name or domain.
func (f *Front) lookupSite(key string) *site {
	if s, ok := f.byID[key]; ok {
		return s
	}
	for _, s := range f.sites {
		if s.Name != "" && s.Name == key {
			return s
		}
	}
	if r, ok := f.byHost[normalizeHost(key)]; ok {
		return r.site
	}
	return nil
}

// newApp builds one distribution registry on rootDir; an empty service
// disables authentication (benchmark baseline only).
func newApp(ctx context.Context, rootDir, service, jwksPath, secret string) (app *handlers.App, err error) {
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": rootDir},
		"delete":      configuration.Parameters{"enabled": true},
		"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		"redirect":    configuration.Parameters{"disable": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	if service != "" {
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":             RealmPath, // unused: autoredirect builds the realm from the request
			"autoredirect":      true,
			"autoredirectpath":  RealmPath,
			"issuer":            Issuer,
			"service":           service,
			"jwks":              jwksPath,
			"signingalgorithms": []any{"RS256"},
		}}
	}
	cfg.HTTP.Secret = secret
	cfg.Catalog.MaxEntries = 1000
	cfg.Log.AccessLog.Disabled = true
	defer func() {
		// NewApp reports configuration errors by panicking.
		if r := recover(); r != nil {
			app, err = nil, fmt.Errorf("distribution: %v", r)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// Close stops the registries.
func (f *Front) Close() error {
	f.closeOnce.Do(func() {
		for _, s := range f.sites {
			_ = s.app.Shutdown()
		}
		f.cancel()
	})
	return nil
}

// ServeHTTP routes the request. The registry is chosen by the Host header;
// for a bare address (127.0.0.1:port, localhost) by the X-Ferry-Registry-Host
// header, then the "ns" query parameter that containerd adds for mirrors,
// then the default site. Requests for /auth are token requests; their site
// comes from the "service" parameter.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := sourceAddr(r)
	rt, found := f.route(r)
	if r.URL.Path == RealmPath || r.URL.Path == RealmPath+"/token" {
		f.realm.serve(w, r, f.byService, src, func(s *site) bool { return found && rt.vpc && rt.site == s })
		return
	}
	if !found {
		writeRegistryError(w, http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf("no registry is served at %q", truncate(r.Host)))
		return
	}
	// A repository path with ".", ".." or an empty component is not a name (the distribution spec's
	// grammar): refuse it, as ACR does, instead of letting net/http clean it into another repository.
	if p := r.URL.Path; strings.HasPrefix(p, "/v2/") && (strings.Contains(p, "//") || path.Clean(p) != strings.TrimSuffix(p, "/") && p != "/v2/") {
		writeRegistryError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository path %q: '.', '..' and empty components are not allowed", truncate(p)))
		return
	}
	if !rt.vpc {
		if reason := rt.site.internetDenied(src); reason != "" {
			f.log.Info("registry access", "site", rt.site.ID, "decision", "deny", "reason", reason, "source", src.String(), "path", truncate(r.URL.Path))
			writeRegistryError(w, http.StatusForbidden, "DENIED", reason)
			return
		}
	}
	// The token access controller builds the realm URL from the Host and
	// X-Forwarded-Proto; make the latter tell the truth.
	if r.TLS != nil {
		r.Header.Set("X-Forwarded-Proto", "https")
	} else {
		r.Header.Set("X-Forwarded-Proto", "http")
	}
	r.Header.Del("Forwarded")
	rt.site.app.ServeHTTP(w, r)
}

func (f *Front) route(r *http.Request) (route, bool) {
	h := normalizeHost(r.Host)
	if rt, ok := f.byHost[h]; ok {
		return rt, true
	}
	if !isBareAddress(h) {
		return route{}, false
	}
	if v := r.Header.Get(HostHeader); v != "" {
		if rt, ok := f.byHost[normalizeHost(v)]; ok {
			return rt, true
		}
	}
	if v := r.URL.Query().Get("ns"); v != "" {
		if rt, ok := f.byHost[normalizeHost(v)]; ok {
			return rt, true
		}
	}
	return route{site: f.def}, true
}

// normalizeHost lower-cases a host and drops the port and a trailing dot.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func isBareAddress(h string) bool {
	if h == "" || h == "localhost" {
		return true
	}
	_, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil
}

func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// internetDenied says why src may not use the site's public domain, or "".
func (s *site) internetDenied(src netip.Addr) string {
	if !s.InternetEnabled {
		return "internet access to this instance is disabled"
	}
	if len(s.Whitelist) == 0 {
		return ""
	}
	for _, p := range s.Whitelist {
		if src.IsValid() && p.Contains(src) {
			return ""
		}
	}
	return fmt.Sprintf("source address %s is not in the internet access whitelist", src)
}

func (s *site) instanceARN() string {
	return fmt.Sprintf("acs:cr:%s:%s:instance/%s", s.Region, s.OwnerUID, s.ID)
}

func (s *site) repositoryARN(owner, ns, repo string) string {
	if s.Personal {
		return fmt.Sprintf("acs:cr:%s:%s:repository/%s/%s", s.Region, owner, ns, repo)
	}
	return fmt.Sprintf("acs:cr:%s:%s:repository/%s/%s/%s", s.Region, owner, s.ID, ns, repo)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
