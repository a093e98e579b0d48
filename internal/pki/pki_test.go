package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestIssueVerifiesAgainstTheCA(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ca, err := NewCA("test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		names     []string
		validity  time.Duration
		wantUntil time.Time
		verify    string // a name the certificate must verify for
	}{
		{"dns and ip", []string{"svc.ns.svc", "127.0.0.1"}, time.Hour, now.Add(time.Hour), "127.0.0.1"},
		{"clamped to the CA", []string{"long.example"}, 365 * 24 * time.Hour, now.Add(24 * time.Hour), "long.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, key, err := ca.Issue(tt.names, now, tt.validity)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !leaf.NotAfter.Equal(tt.wantUntil) || leaf.Subject.CommonName != tt.names[0] {
				t.Errorf("not after %v (want %v), CN %q", leaf.NotAfter, tt.wantUntil, leaf.Subject.CommonName)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tt.verify, CurrentTime: now}); err != nil {
				t.Errorf("verify for %s: %v", tt.verify, err)
			}
			if ip := net.ParseIP(tt.verify); ip != nil && !leaf.IPAddresses[0].Equal(ip) {
				t.Errorf("IP SANs %v", leaf.IPAddresses)
			}
			keyPEM, err := KeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(CertPEM(der), keyPEM); err != nil {
				t.Errorf("PEM pair does not load: %v", err)
			}
		})
	}
}
