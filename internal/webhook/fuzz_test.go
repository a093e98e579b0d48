package webhook

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// FuzzCertSecretData feeds arbitrary certificate Secret contents (the Secret can be edited by
// anyone with write access to it) to the renewal logic: no panic, and a usable result.
func FuzzCertSecretData(f *testing.F) {
	p := &CertProvider{Namespace: "ns", SecretName: "s", DNSNames: []string{"svc.ns.svc"}, Validity: time.Hour, CAValidity: 2 * time.Hour}
	good, err := p.generate(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[KeyCACert], good[KeyCAKey], good[corev1.TLSCertKey], good[corev1.TLSPrivateKeyKey])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte("x"), []byte(nil))
	f.Fuzz(func(t *testing.T, caCert, caKey, cert, key []byte) {
		data := map[string][]byte{KeyCACert: caCert, KeyCAKey: caKey, corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}
		out, _, err := p.renew(data)
		if err != nil {
			return
		}
		if out == nil {
			out = data
		}
		if err := p.load(out); err != nil {
			t.Fatalf("renewal produced unusable data: %v", err)
		}
	})
}
