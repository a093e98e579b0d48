package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/ferrypull/ferry/internal/atomicfile"
)

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
	if err := e.startECI(ctx); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}

	openapi := e.faults.Middleware(e.openAPIHandler())
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
	if e.eciRT != nil {
		var hosts []string
		for _, s := range e.sites {
			for _, d := range append(append([]string{}, s.PublicDomains...), s.VPCDomains...) {
				hosts = append(hosts, e.Advertise(d))
			}
		}
		e.eciRT.Trust(e.caFile, hosts...)
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
	if e.eci != nil {
		e.eci.Close()
	}
	if e.eciRT != nil {
		errs = append(errs, e.eciRT.Close())
	}
	errs = append(errs, e.front.Close())
	return errors.Join(errs...)
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
