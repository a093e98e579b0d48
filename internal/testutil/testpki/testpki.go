// Package testpki makes throw-away certificate authorities and serving certificates for tests.
package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrypull/ferry/internal/pki"
)

// CA is a self-signed certificate authority (internal/pki) with its certificate in PEM.
type CA struct {
	*pki.CA
	CertPEM []byte
}

// NewCA creates a CA valid for ten years.
func NewCA(commonName string) (*CA, error) {
	ca, err := pki.NewCA(commonName, time.Now(), 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &CA{CA: ca, CertPEM: pki.CertPEM(ca.Cert.Raw)}, nil
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a serving certificate for the given DNS names and IP addresses.
func (ca *CA) Issue(hosts ...string) (certPEM, keyPEM []byte, err error) {
	der, key, err := ca.CA.Issue(hosts, time.Now(), 365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pki.KeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pki.CertPEM(der), keyPEM, nil
}

// TLSConfig returns a server tls.Config for the given hosts.
func (ca *CA) TLSConfig(hosts ...string) (*tls.Config, error) {
	c, k, err := ca.Issue(hosts...)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// WriteFiles writes ca.crt, server.crt and server.key for hosts into dir and returns their paths.
func (ca *CA) WriteFiles(dir string, hosts ...string) (caFile, certFile, keyFile string, err error) {
	c, k, err := ca.Issue(hosts...)
	if err != nil {
		return "", "", "", err
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for path, data := range map[string][]byte{caFile: ca.CertPEM, certFile: c, keyFile: k} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	return caFile, certFile, keyFile, nil
}
