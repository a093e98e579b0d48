package webhook

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ferrypull/ferry/internal/pki"
)

// Keys of the certificate Secret (type kubernetes.io/tls, so it can also be mounted).
const (
	KeyCACert     = "ca.crt"
	KeyCAKey      = "ca.key"
	KeyPreviousCA = "ca-previous.crt"
)

// LabelComponent marks the certificate Secret; it never carries the pull-secret instance label.
const LabelComponent = "app.kubernetes.io/component"

// CertProvider keeps a self-signed CA and a serving certificate for the webhook in a Secret.
// Every replica runs one: the first to find no Secret creates it, the others read it; whoever
// sees it close to expiry renews it (conflict-safe update). Certificates are renewed when less
// than a third of their life is left. After a CA renewal the bundle carries the previous CA too,
// so replicas still serving the old certificate keep working.
type CertProvider struct {
	// Client reads uncached and writes; it needs get/create/update on the one Secret.
	Client     client.Client
	Namespace  string
	SecretName string
	// DNSNames and IPs are the serving certificate's subject alternative names.
	DNSNames []string
	IPs      []net.IP
	// Validity of the serving certificate (default 1 year) and of the CA (default 10 years).
	Validity, CAValidity time.Duration
	// Now defaults to time.Now.
	Now func() time.Time

	mu     sync.RWMutex
	cert   *tls.Certificate
	bundle []byte
}

// ServiceDNSNames returns the names a Service is reached by from the apiserver.
func ServiceDNSNames(service, namespace string) []string {
	return []string{service, service + "." + namespace, service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (p *CertProvider) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.cert == nil {
		return nil, errors.New("webhook serving certificate not loaded yet")
	}
	return p.cert, nil
}

// CABundle returns the PEM CA bundle for the webhook configuration (nil before Ensure).
func (p *CertProvider) CABundle() []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.bundle)
}

// Leaf returns the parsed serving certificate, or nil before Ensure.
func (p *CertProvider) Leaf() *x509.Certificate {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.cert == nil {
		return nil
	}
	return p.cert.Leaf
}

func (p *CertProvider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Ensure creates, renews or just loads the certificate Secret and makes its certificate the one
// served. It is cheap when nothing needs doing.
func (p *CertProvider) Ensure(ctx context.Context) error {
	key := types.NamespacedName{Namespace: p.Namespace, Name: p.SecretName}
	s := &corev1.Secret{}
	err := p.Client.Get(ctx, key, s)
	switch {
	case apierrors.IsNotFound(err):
		data, err := p.generate(nil)
		if err != nil {
			return err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.SecretName,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "ferry", LabelComponent: "webhook-cert"}},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if err := p.Client.Create(ctx, s); err != nil {
			if apierrors.IsAlreadyExists(err) { // another replica was first
				return p.Ensure(ctx)
			}
			return fmt.Errorf("create webhook certificate Secret %s: %w", key, err)
		}
		log.FromContext(ctx).Info("created webhook CA and serving certificate", "secret", key.String())
		return p.load(s.Data)
	case err != nil:
		return fmt.Errorf("get webhook certificate Secret %s: %w", key, err)
	}

	renewed, why, err := p.renew(s.Data)
	if err != nil {
		return err
	}
	if renewed == nil {
		return p.load(s.Data)
	}
	s.Data = renewed
	if err := p.Client.Update(ctx, s); err != nil {
		if apierrors.IsConflict(err) { // another replica renewed it
			return p.Ensure(ctx)
		}
		return fmt.Errorf("renew webhook certificate in Secret %s: %w", key, err)
	}
	log.FromContext(ctx).Info("renewed webhook certificate", "secret", key.String(), "reason", why)
	return p.load(s.Data)
}

// renew returns new Secret data when the stored certificates need replacing, nil otherwise.
func (p *CertProvider) renew(data map[string][]byte) (map[string][]byte, string, error) {
	ca, caKey, err := parsePair(data[KeyCACert], data[KeyCAKey])
	if err != nil {
		d, err := p.generate(nil)
		return d, "stored CA unreadable", err
	}
	if p.expiring(ca) {
		d, err := p.generate(data[KeyCACert])
		return d, "CA close to expiry", err
	}
	leaf, _, err := parsePair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	switch {
	case err != nil:
	case p.expiring(leaf):
	case !p.covers(leaf):
	case leaf.CheckSignatureFrom(ca) != nil:
	default:
		return nil, "", nil
	}
	certPEM, keyPEM, err := p.issue(&pki.CA{Cert: ca, Key: caKey})
	if err != nil {
		return nil, "", err
	}
	out := map[string][]byte{}
	for k, v := range data {
		out[k] = v
	}
	out[corev1.TLSCertKey], out[corev1.TLSPrivateKeyKey] = certPEM, keyPEM
	return out, "serving certificate missing, close to expiry or not matching the service names", nil
}

// expiring: less than a third of the certificate's life is left.
func (p *CertProvider) expiring(c *x509.Certificate) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return p.now().After(c.NotAfter.Add(-life / 3))
}

func (p *CertProvider) covers(c *x509.Certificate) bool {
	for _, n := range p.DNSNames {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range p.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// generate makes a new CA and serving certificate; previousCA (PEM) is kept in the bundle.
func (p *CertProvider) generate(previousCA []byte) (map[string][]byte, error) {
	caValidity := p.CAValidity
	if caValidity <= 0 {
		caValidity = 10 * 365 * 24 * time.Hour
	}
	ca, err := pki.NewCA("ferry webhook CA", p.now(), caValidity)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.KeyPEM(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, err
	}
	certPEM, leafKeyPEM, err := p.issue(ca)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{
		KeyCACert:               pki.CertPEM(ca.Cert.Raw),
		KeyCAKey:                keyPEM,
		corev1.TLSCertKey:       certPEM,
		corev1.TLSPrivateKeyKey: leafKeyPEM,
	}
	if len(previousCA) > 0 {
		data[KeyPreviousCA] = previousCA
	}
	return data, nil
}

// issue signs a new serving certificate for the DNS names and IPs with the CA.
func (p *CertProvider) issue(ca *pki.CA) (certPEM, keyPEM []byte, err error) {
	validity := p.Validity
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	names := slices.Clone(p.DNSNames)
	for _, ip := range p.IPs {
		names = append(names, ip.String())
	}
	der, key, err := ca.Issue(names, p.now(), validity)
	if err != nil {
		return nil, nil, err
	}
	if keyPEM, err = pki.KeyPEM(key); err != nil {
		return nil, nil, err
	}
	return pki.CertPEM(der), keyPEM, nil
}

func (p *CertProvider) load(data map[string][]byte) error {
	cert, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("load webhook serving certificate from Secret %s/%s: %w", p.Namespace, p.SecretName, err)
	}
	bundle := bytes.Join([][]byte{data[KeyCACert], data[KeyPreviousCA]}, nil)
	p.mu.Lock()
	p.cert, p.bundle = &cert, bundle
	p.mu.Unlock()
	return nil
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("private key cannot sign")
	}
	return pair.Leaf, signer, nil
}
