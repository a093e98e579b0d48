// Package oidc verifies OIDC ID tokens (RS256, ES256) for the emulator's STS
// AssumeRoleWithOIDC against a RAM OIDC provider's JWKS, read inline, from a file, or from a URL
// such as a kube-apiserver's /openid/v1/jwks (with an optional CA file and bearer token).
package oidc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Verification failures; each maps to one STS AuthenticationFail.OIDCToken.* code.
var (
	ErrMalformed        = errors.New("the OIDC token is not a well-formed JWT")
	ErrInvalidSignature = errors.New("invalid signature")
	ErrExpired          = errors.New("the OIDC token is expired")
	ErrIssuer           = errors.New("the OIDC token issuer does not match the provider")
	ErrAudience         = errors.New("the OIDC token audience is not a client id of the provider")
	ErrJWKS             = errors.New("the provider's JWKS cannot be loaded")
)

// Claims are the verified claims of a token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	IssuedAt  time.Time
	Expiry    time.Time
	NotBefore time.Time
}

// Verifier verifies tokens for any provider; it caches JWKS fetched from URLs.
type Verifier struct {
	client *http.Client
	now    func() time.Time
	ttl    time.Duration

	mu    sync.Mutex
	cache map[string]cachedKeys // by provider ARN
}

type cachedKeys struct {
	keys    *jose.JSONWebKeySet
	fetched time.Time
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithHTTPClient sets the client used for JWKS URLs (for example one built from an apiserver's
// rest.Config); a provider's CAFile and BearerTokenFile still apply when this is not set.
func WithHTTPClient(c *http.Client) Option { return func(v *Verifier) { v.client = c } }

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier.
func NewVerifier(opts ...Option) *Verifier {
	v := &Verifier{now: time.Now, ttl: 5 * time.Minute, cache: map[string]cachedKeys{}}
	for _, o := range opts {
		o(v)
	}
	return v
}

var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// MaxTokenSize bounds the token length accepted.
const MaxTokenSize = 64 << 10

// Verify checks token against provider: signature by a key of the provider's JWKS, iss equal
// to the provider's issuer URL, aud containing one of its client ids, and exp in the future.
func (v *Verifier) Verify(ctx context.Context, p *world.OIDCProvider, token string) (*Claims, error) {
	if token == "" || len(token) > MaxTokenSize || strings.Count(token, ".") != 2 {
		return nil, ErrMalformed
	}
	jws, err := jose.ParseSignedCompact(token, algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	kid := jws.Signatures[0].Header.KeyID
	payload, err := v.verifySig(ctx, p, jws, kid, false)
	if err != nil {
		return nil, err
	}
	var raw struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *json.Number    `json:"exp"`
		Iat *json.Number    `json:"iat"`
		Nbf *json.Number    `json:"nbf"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c := &Claims{Issuer: raw.Iss, Subject: raw.Sub, Expiry: numTime(raw.Exp), IssuedAt: numTime(raw.Iat), NotBefore: numTime(raw.Nbf)}
	if len(raw.Aud) > 0 {
		var one string
		if json.Unmarshal(raw.Aud, &one) == nil {
			c.Audience = []string{one}
		} else if err := json.Unmarshal(raw.Aud, &c.Audience); err != nil {
			return nil, fmt.Errorf("%w: aud: %v", ErrMalformed, err)
		}
	}
	now := v.now()
	if c.Expiry.IsZero() || !now.Before(c.Expiry) {
		return nil, ErrExpired
	}
	if !c.NotBefore.IsZero() && now.Add(time.Minute).Before(c.NotBefore) {
		return nil, fmt.Errorf("%w: not valid before %s", ErrMalformed, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if c.Issuer != p.IssuerURL {
		return nil, ErrIssuer
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(p.ClientIDs, a) }) {
		return nil, ErrAudience
	}
	return c, nil
}

func numTime(n *json.Number) time.Time {
	if n == nil {
		return time.Time{}
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

func (v *Verifier) verifySig(ctx context.Context, p *world.OIDCProvider, jws *jose.JSONWebSignature, kid string, refreshed bool) ([]byte, error) {
	keys, err := v.keys(ctx, p, refreshed)
	if err != nil {
		return nil, err
	}
	candidates := keys.Keys
	if kid != "" {
		candidates = keys.Key(kid)
	}
	for _, k := range candidates {
		if payload, err := jws.Verify(k.Public().Key); err == nil {
			return payload, nil
		}
	}
	if !refreshed && p.JWKSURL != "" {
		return v.verifySig(ctx, p, jws, kid, true) // key rotation: refetch once
	}
	return nil, ErrInvalidSignature
}

// keys returns the provider's key set; URL sets are cached for five minutes unless refresh.
func (v *Verifier) keys(ctx context.Context, p *world.OIDCProvider, refresh bool) (*jose.JSONWebKeySet, error) {
	switch {
	case len(p.JWKS) > 0:
		return parseJWKS(p.JWKS)
	case p.JWKSFile != "":
		b, err := os.ReadFile(p.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrJWKS, err)
		}
		return parseJWKS(b)
	case p.JWKSURL == "":
		return nil, fmt.Errorf("%w: provider %s has no JWKS configured", ErrJWKS, p.Name)
	}
	key := p.ARN() + "\x00" + p.JWKSURL
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && !refresh && v.now().Sub(c.fetched) < v.ttl {
		return c.keys, nil
	}
	ks, err := v.fetch(ctx, p)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.cache[key] = cachedKeys{keys: ks, fetched: v.now()}
	v.mu.Unlock()
	return ks, nil
}

func parseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKS, err)
	}
	return &ks, nil
}

func (v *Verifier) fetch(ctx context.Context, p *world.OIDCProvider) (*jose.JSONWebKeySet, error) {
	client := v.client
	if client == nil {
		var err error
		if client, err = providerClient(p); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJWKS, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	if p.BearerTokenFile != "" && v.client == nil {
		tok, err := os.ReadFile(p.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: bearer token file: %v", ErrJWKS, err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrJWKS, p.JWKSURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: HTTP %d", ErrJWKS, p.JWKSURL, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrJWKS, p.JWKSURL, err)
	}
	return parseJWKS(b)
}

func providerClient(p *world.OIDCProvider) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrJWKS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrJWKS, p.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}
