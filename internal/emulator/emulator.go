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
package emulator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/atomicfile"
	"github.com/ferrypull/ferry/internal/emulator/imds"
	"github.com/ferrypull/ferry/internal/emulator/openapi"
	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/registry"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/pki"
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

// Start seeds the registries, opens every listener, serves, and writes the
// hosts and info files. The servers stop on Close (or when ctx ends).
func (e *Emulator) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("emulator: already started")
	}
	e.started = true
	e.mu.Unlock()
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()

	if _, err := e.front.SeedAll(ctx, e.seeds); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	ca, err := loadOrCreateCA(e.opts.DataDir)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.caFile = filepath.Join(e.opts.DataDir, "ca.crt")
	cert, err := issueServing(ca, e.certNames())
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	openapi := e.faults.Middleware(e.advertiseDomains(e.openAPIHandler()))
	listen := []struct {
		addr    string
		tls     bool
		handler http.Handler
		out     *string
		name    string
	}{
		{e.opts.OpenAPIAddr, false, openapi, &e.addrs.openapi, "openapi"},
		{e.opts.OpenAPITLSAddr, true, openapi, &e.addrs.openapiTLS, "openapi-tls"},
		{e.opts.MetadataAddr, false, e.faults.Middleware(e.metadataHandler()), &e.addrs.metadata, "metadata"},
		{e.opts.RegistryAddr, false, e.faults.RegistryMiddleware(e.front), &e.addrs.registry, "registry"},
		{e.opts.RegistryTLSAddr, true, e.faults.RegistryMiddleware(e.front), &e.addrs.registryTLS, "registry-tls"},
	}
	// Bind everything first: handlers read the listener addresses.
	lns := make([]net.Listener, len(listen))
	defer func() {
		if err != nil {
			for _, ln := range lns {
				if ln != nil {
					_ = ln.Close()
				}
			}
		}
	}()
	for i, l := range listen {
		if err := checkLoopback(l.addr); err != nil {
			return fmt.Errorf("emulator: %s listener: %w", l.name, err)
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("emulator: %s listener: %w", l.name, err)
		}
		*l.out = ln.Addr().String()
		if l.tls {
			ln = tls.NewListener(ln, tlsCfg)
		}
		lns[i] = ln
	}
	for i, l := range listen {
		srv := &http.Server{Handler: l.handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slogErrorLog(e.log)}
		e.mu.Lock()
		e.servers = append(e.servers, srv)
		e.mu.Unlock()
		ln := lns[i]
		go func() { _ = srv.Serve(ln) }()
		e.log.Info("listening", "listener", l.name, "addr", *l.out)
	}
	if e.opts.HostsFile != "" {
		if err := atomicfile.Write(e.opts.HostsFile, e.hostsLines(), 0o644); err != nil {
			return fmt.Errorf("emulator: hosts file: %w", err)
		}
	}
	info := e.buildInfo()
	if e.opts.InfoFile != "" {
		if err := writeInfoFile(e.opts.InfoFile, info); err != nil {
			return fmt.Errorf("emulator: info file: %w", err)
		}
	}
	e.mu.Lock()
	e.info = info
	e.mu.Unlock()
	go func() {
		<-ctx.Done()
		_ = e.Close()
	}()
	return nil
}

// Close stops every listener and the registries.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	servers := e.servers
	e.mu.Unlock()
	// Connections that never sent a request count as busy for 5 s in
	// Shutdown; after a short grace period the rest are closed hard.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			if cerr := s.Close(); cerr != nil {
				errs = append(errs, cerr)
			}
		}
	}
	errs = append(errs, e.front.Close())
	return errors.Join(errs...)
}

// openAPIHandler serves the Container Registry OpenAPI and STS.
func (e *Emulator) openAPIHandler() http.Handler {
	region := "cn-hangzhou"
	if len(e.sites) > 0 {
		region = e.sites[0].Region
	}
	return openapi.New(e.ram,
		openapi.WithLogger(e.log.With("component", "openapi")),
		openapi.WithTagLister(tagLister{e.front}),
		openapi.WithDefaultRegion(region))
}

// endpointActions are the OpenAPI actions whose responses name registry domains.
var endpointActions = map[string]bool{"ListInstanceEndpoint": true, "GetInstanceEndpoint": true, "GetInstanceVpcEndpoint": true}

// advertiseDomains rewrites the registry domains in endpoint responses to
// the advertised form (with the TLS registry port), so that pull-secret keys
// written from ListInstanceEndpoint match image references. Called in Start,
// after the listeners have their ports.
func (e *Emulator) advertiseDomains(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !endpointActions[requestAction(r)] {
			next.ServeHTTP(w, r)
			return
		}
		var pairs []string
		for _, s := range e.sites {
			for _, d := range append(append([]string{}, s.PublicDomains...), s.VPCDomains...) {
				if a := e.Advertise(d); a != d {
					pairs = append(pairs, `"`+d+`"`, `"`+a+`"`)
				}
			}
		}
		if len(pairs) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		buf := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(buf, r)
		body := strings.NewReplacer(pairs...).Replace(buf.body.String())
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(buf.status)
		_, _ = io.WriteString(w, body)
	})
}

// bufferedResponse is an http.ResponseWriter that keeps the response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(status int) {
	if !b.wrote {
		b.status, b.wrote = status, true
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

// tagLister adapts the registry front to the OpenAPI's ListRepoTag.
type tagLister struct{ front *registry.Front }

func (t tagLister) ListTags(ctx context.Context, inst *world.Instance, ns, repo string, offset, limit int) ([]openapi.Tag, int, error) {
	site := inst.ID
	if inst.Edition() == world.EditionPersonal {
		site = registry.PersonalSiteID(inst.Region)
	}
	tags, total, err := t.front.ListTagsPage(ctx, site, ns, repo, offset, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]openapi.Tag, 0, len(tags))
	for _, tg := range tags {
		out = append(out, openapi.Tag{Tag: tg.Tag, Digest: tg.Digest, ImageID: tg.Config, Size: tg.Size, Created: tg.Updated, Updated: tg.Updated})
	}
	return out, total, nil
}

// metadataHandler serves ECS instance metadata (also as an HTTP proxy
// target for http://100.100.100.200/).
func (e *Emulator) metadataHandler() http.Handler {
	return imds.New(e.ram, imds.WithLogger(e.log.With("component", "imds")))
}

// certNames lists the names the TLS certificate covers: every registry
// domain, the OpenAPI and STS endpoints of every region, localhost and
// 127.0.0.1.
func (e *Emulator) certNames() []string {
	set := map[string]bool{"localhost": true, "127.0.0.1": true, "sts.aliyuncs.com": true, "cr.aliyuncs.com": true}
	for _, s := range e.sites {
		for _, d := range append(append([]string{}, s.PublicDomains...), s.VPCDomains...) {
			set[d] = true
		}
		set["cr."+s.Region+".aliyuncs.com"] = true
		set["cr-vpc."+s.Region+".aliyuncs.com"] = true
		set["sts."+s.Region+".aliyuncs.com"] = true
		set["sts-vpc."+s.Region+".aliyuncs.com"] = true
		set["dockerauth."+s.Region+".aliyuncs.com"] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: only loopback addresses (127.0.0.0/8, ::1) may be used", addr)
	}
	return nil
}

func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}

// writeAPIError writes an Alibaba Cloud RPC error body.
func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"RequestId": newRequestID(), "HostId": "acr-emulator", "Code": code, "Message": message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code),
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// --- fault switch ---

// FaultsPath is the admin endpoint of the fault switch.
const FaultsPath = "/_ferry/faults"

// RegistryTokenAction is the fault key that fails the registry token realm.
const RegistryTokenAction = "RegistryToken"

// Fault is one injected failure: requests for Action answer Status.
type Fault struct {
	// Action is an OpenAPI action (x-acs-action or Action parameter, e.g.
	// GetAuthorizationToken, AssumeRole), a request path (e.g. /tokens),
	// RegistryTokenAction, or "*" for every OpenAPI request.
	Action string `json:"action"`
	Status int    `json:"status"`
}

// Faults is the emulator's fault switch. It exists because no real
// component can make the token API unavailable on demand: tests switch an
// action to fail with a status, then back.
type Faults struct {
	mu     sync.RWMutex
	byName map[string]int
}

// NewFaults returns an empty fault switch.
func NewFaults() *Faults { return &Faults{byName: map[string]int{}} }

// Set makes action fail with status.
func (f *Faults) Set(action string, status int) error {
	if action == "" {
		return errors.New("fault: action is required")
	}
	if status < 400 || status > 599 {
		return fmt.Errorf("fault: status %d is not an HTTP error status (400..599)", status)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byName[action] = status
	return nil
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.byName)
}

// List returns the active faults sorted by action.
func (f *Faults) List() []Fault {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Fault, 0, len(f.byName))
	for a, s := range f.byName {
		out = append(out, Fault{Action: a, Status: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Action < out[j].Action })
	return out
}

func (f *Faults) empty() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.byName) == 0
}

func (f *Faults) lookup(keys ...string) (int, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.byName) == 0 {
		return 0, false
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if s, ok := f.byName[k]; ok {
			return s, true
		}
	}
	return 0, false
}

// Middleware serves the admin endpoint and fails requests whose action has
// a fault; everything else goes to next.
func (f *Faults) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == FaultsPath {
			f.serveAdmin(w, r)
			return
		}
		if f.empty() {
			next.ServeHTTP(w, r)
			return
		}
		if status, ok := f.lookup(requestAction(r), r.URL.Path, "*"); ok {
			writeAPIError(w, status, faultCode(status), "fault injected by the acr-emulator fault switch")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RegistryMiddleware fails registry token requests when RegistryTokenAction
// has a fault.
func (f *Faults) RegistryMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == registry.RealmPath {
			if status, ok := f.lookup(RegistryTokenAction); ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"fault injected by the acr-emulator fault switch","detail":null}]}`+"\n")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func faultCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusTooManyRequests:
		return "Throttling"
	case http.StatusForbidden:
		return "Forbidden"
	default:
		if status >= 500 {
			return "InternalError"
		}
		return "InvalidParameter"
	}
}

// requestAction finds the OpenAPI action of a request without consuming its
// body: the x-acs-action header, the Action query parameter, or the Action
// field of a form body (restored for the next handler).
func requestAction(r *http.Request) string {
	if a := r.Header.Get("x-acs-action"); a != "" {
		return a
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if r.Body == nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("Action")
}

func (f *Faults) serveAdmin(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "the fault switch answers loopback clients only", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		var in Fault
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil {
			http.Error(w, "fault: body must be JSON {\"action\":…,\"status\":…}", http.StatusBadRequest)
			return
		}
		if err := f.Set(in.Action, in.Status); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	case http.MethodDelete:
		f.Clear()
	default:
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"faults": f.List()})
}

// --- certificate authority ---

// loadOrCreateCA reads dataDir/ca.crt and ca.key, or creates them, so the
// CA stays the same across restarts. The key stays in SEC 1 form ("EC PRIVATE
// KEY"), as earlier data directories hold it.
func loadOrCreateCA(dataDir string) (*pki.CA, error) {
	certPath, keyPath := filepath.Join(dataDir, "ca.crt"), filepath.Join(dataDir, "ca.key")
	certPEM, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return nil, fmt.Errorf("CA files %s, %s: no PEM block", certPath, keyPath)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
		}
		key, err := x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
		}
		return &pki.CA{Cert: cert, Key: key}, nil
	}
	if (err1 != nil && !errors.Is(err1, fs.ErrNotExist)) || (err2 != nil && !errors.Is(err2, fs.ErrNotExist)) {
		return nil, fmt.Errorf("read CA: %w", errors.Join(err1, err2))
	}
	ca, err := pki.NewCA("acr-emulator CA", time.Now(), 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := atomicfile.Write(certPath, pki.CertPEM(ca.Cert.Raw), 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return ca, nil
}

// issueServing makes the emulator's serving certificate for names (DNS names or IP addresses)
// and ::1, chained to the CA.
func issueServing(ca *pki.CA, names []string) (tls.Certificate, error) {
	der, key, err := ca.Issue(append(names, net.IPv6loopback.String()), time.Now(), 365*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key}, nil
}
