// Package testjwt makes signing keys, their JWKS document and signed JWTs
// for tests of OIDC token verification (RRSA).
package testjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a private signing key with its JWK key ID and algorithm.
type Key struct {
	KID  string
	Alg  jose.SignatureAlgorithm
	Priv crypto.Signer
}

// RSA returns a new 2048-bit RS256 key with key ID kid.
func RSA(t testing.TB, kid string) Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return Key{KID: kid, Alg: jose.RS256, Priv: k}
}

// EC returns a new P-256 ES256 key with key ID kid.
func EC(t testing.TB, kid string) Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Key{KID: kid, Alg: jose.ES256, Priv: k}
}

// JWKS returns the JSON Web Key Set of the keys' public halves (use "sig").
func JWKS(t testing.TB, keys ...Key) []byte {
	t.Helper()
	var ks jose.JSONWebKeySet
	for _, k := range keys {
		ks.Keys = append(ks.Keys, jose.JSONWebKey{Key: k.Priv.Public(), KeyID: k.KID, Algorithm: string(k.Alg), Use: "sig"})
	}
	b, err := json.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sign returns claims as a compact JWS signed with k, with headers
// typ=JWT and kid=k.KID.
func (k Key) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Priv}, (&jose.SignerOptions{}).WithHeader("kid", k.KID).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
