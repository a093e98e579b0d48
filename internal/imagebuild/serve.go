package imagebuild

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/pki"
)

// BaseHost is the registry name under which ko sees the base. The .invalid top-level domain
// never resolves (RFC 2606), so the name cannot reach anything but the proxy below.
const BaseHost = "base.ferry.invalid"

// BaseRepo is the base's repository below BaseHost.
const BaseRepo = BaseHost + "/ferry/base"

// Stage is an in-process registry for one build: it holds the base under BaseHost (reached
// through Proxy, with a certificate from a throw-away CA in CAFile) and receives ko's pushes
// on Addr (plain HTTP on loopback).
type Stage struct {
	// Addr is the loopback host:port of the registry (plain HTTP).
	Addr string
	// Proxy is the http://127.0.0.1:port CONNECT proxy to put in HTTPS_PROXY.
	Proxy string
	// CAFile is a PEM bundle: the system roots (SystemRoots) plus the throw-away CA, for SSL_CERT_FILE.
	CAFile string

	closers []func()
}

// StartStage starts the registry, its TLS front for BaseHost and the proxy; dir holds CAFile.
// systemRoots is the PEM bundle to keep trusting (the machine's CA bundle), may be empty.
func StartStage(dir string, systemRoots []byte) (*Stage, error) {
	s := &Stage{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	quiet := log.New(io.Discard, "", 0)
	reg := registry.New(registry.Logger(quiet))

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stage registry: %w", err)
	}
	s.serve(plain, reg)
	s.Addr = plain.Addr().String()

	now := time.Now()
	ca, err := pki.NewCA("ferry image build (throw-away)", now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	der, key, err := ca.Issue([]string{BaseHost}, now, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(pki.CertPEM(der), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("stage certificate: %w", err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stage registry: %w", err)
	}
	s.serve(tls.NewListener(tl, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), reg)
	tlsAddr := tl.Addr().String()

	bundle := append(append([]byte{}, systemRoots...), '\n')
	bundle = append(bundle, pki.CertPEM(ca.Cert.Raw)...)
	s.CAFile = filepath.Join(dir, "stage-ca.pem")
	if err := os.WriteFile(s.CAFile, bundle, 0o644); err != nil {
		return nil, fmt.Errorf("stage CA bundle: %w", err)
	}

	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stage proxy: %w", err)
	}
	s.serve(pl, connectProxy(BaseHost+":443", tlsAddr))
	s.Proxy = "http://" + pl.Addr().String()
	ok = true
	return s, nil
}

func (s *Stage) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(l) }()
	s.closers = append(s.closers, func() { _ = srv.Close(); wg.Wait() })
}

// Close stops everything.
func (s *Stage) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// PushBase puts the base index into the stage under BaseRepo and returns its digest reference.
func (s *Stage) PushBase(ctx context.Context, idx v1.ImageIndex) (string, error) {
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	// Written through the plain loopback address; the registry is the same behind both names.
	ref, err := name.NewDigest(s.Addr+"/ferry/base@"+d.String(), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("stage base image: %w", err)
	}
	return BaseRepo + "@" + d.String(), nil
}

// connectProxy answers CONNECT requests: hijack (host:port) goes to target, any other host is
// dialled as asked (an ordinary forward proxy, so HTTPS_PROXY may apply to every process ko runs).
func connectProxy(hijack, target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
			return
		}
		dest := r.Host
		if dest == hijack {
			dest = target
		}
		up, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(r.Context(), "tcp", dest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			up.Close()
			http.Error(w, "no hijacking", http.StatusInternalServerError)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			conn.Close()
			up.Close()
			return
		}
		go pipe(up, rw.Reader, conn)
	})
}

// pipe copies both ways until either side closes.
func pipe(up net.Conn, buffered *bufio.Reader, down net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, buffered); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(down, up); closeWrite(down); done <- struct{}{} }()
	<-done
	<-done
	up.Close()
	down.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
