package emulator

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferrypull/ferry/internal/atomicfile"
	"github.com/ferrypull/ferry/internal/pki"
)

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
