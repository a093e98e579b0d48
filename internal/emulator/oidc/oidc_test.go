package oidc

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/testjwt"
)

const issuer = "https://issuer.example/cluster"

func newKeys(t *testing.T) (rsaKey, ecKey testjwt.Key) {
	t.Helper()
	return testjwt.RSA(t, "rsa-1"), testjwt.EC(t, "ec-1")
}

func provider(t *testing.T, doc []byte) *world.OIDCProvider {
	t.Helper()
	w := &world.World{Accounts: []*world.Account{{Name: "a", UID: "1234567890123456",
		OIDCProviders: []*world.OIDCProvider{{Name: "ack-rrsa-c1", IssuerURL: issuer, ClientIDs: []string{"sts.aliyuncs.com"}, JWKS: doc}}}}}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	return w.Accounts[0].OIDCProviders[0]
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rk, ek := newKeys(t)
	otherRSA, _ := newKeys(t)
	p := provider(t, testjwt.JWKS(t, rk, ek))
	v := NewVerifier(WithClock(func() time.Time { return now }))
	base := func() map[string]any {
		return map[string]any{"iss": issuer, "sub": "system:serviceaccount:kube-system:x", "aud": []string{"sts.aliyuncs.com"},
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	with := func(k string, val any) map[string]any { c := base(); c[k] = val; return c }
	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"rs256", rk.Sign(t, base()), nil},
		{"es256", ek.Sign(t, base()), nil},
		{"aud string", rk.Sign(t, with("aud", "sts.aliyuncs.com")), nil},
		{"expired", rk.Sign(t, with("exp", now.Add(-time.Second).Unix())), ErrExpired},
		{"no exp", rk.Sign(t, with("exp", nil)), ErrExpired},
		{"issuer", rk.Sign(t, with("iss", "https://evil")), ErrIssuer},
		{"audience", rk.Sign(t, with("aud", []string{"other"})), ErrAudience},
		{"unknown key", testjwt.Key{KID: "rsa-1", Alg: jose.RS256, Priv: otherRSA.Priv}.Sign(t, base()), ErrInvalidSignature},
		{"two parts", "a.b", ErrMalformed},
		{"garbage", "a.b.c", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"alg none", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), p, tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err == nil && (c.Subject != "system:serviceaccount:kube-system:x" || c.Issuer != issuer || c.Audience[0] != "sts.aliyuncs.com") {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

func TestJWKSSources(t *testing.T) {
	rk, _ := newKeys(t)
	rotated, _ := newKeys(t)
	rotated.KID = "rsa-2"
	now := time.Now()
	claims := map[string]any{"iss": issuer, "sub": "s", "aud": "sts.aliyuncs.com", "exp": now.Add(time.Hour).Unix()}
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, testjwt.JWKS(t, rk), 0o600); err != nil {
		t.Fatal(err)
	}
	var served atomic.Value
	served.Store(testjwt.JWKS(t, rk))
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fetches.Add(1)
		_, _ = w.Write(served.Load().([]byte))
	}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := provider(t, nil)
	fromFile.JWKS, fromFile.JWKSFile = nil, file
	fromURL := provider(t, nil)
	fromURL.JWKS, fromURL.JWKSURL, fromURL.CAFile, fromURL.BearerTokenFile = nil, srv.URL+"/openid/v1/jwks", caFile, tokFile
	none := provider(t, nil)
	none.JWKS = nil
	v := NewVerifier()
	if _, err := v.Verify(t.Context(), fromFile, rk.Sign(t, claims)); err != nil {
		t.Errorf("file: %v", err)
	}
	if _, err := v.Verify(t.Context(), fromURL, rk.Sign(t, claims)); err != nil {
		t.Errorf("url: %v", err)
	}
	if _, err := v.Verify(t.Context(), fromURL, rk.Sign(t, claims)); err != nil || fetches.Load() != 1 {
		t.Errorf("cached url: %v, fetches %d", err, fetches.Load())
	}
	served.Store(testjwt.JWKS(t, rk, rotated))
	if _, err := v.Verify(t.Context(), fromURL, rotated.Sign(t, claims)); err != nil || fetches.Load() != 2 {
		t.Errorf("rotated key: %v, fetches %d", err, fetches.Load())
	}
	if _, err := v.Verify(t.Context(), none, rk.Sign(t, claims)); !errors.Is(err, ErrJWKS) {
		t.Errorf("no JWKS: %v", err)
	}
	noCA := provider(t, nil)
	noCA.JWKS, noCA.JWKSURL = nil, srv.URL
	if _, err := v.Verify(t.Context(), noCA, rk.Sign(t, claims)); !errors.Is(err, ErrJWKS) {
		t.Errorf("untrusted TLS: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.sig")
	f.Add("a.b.c")
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: r.Public(), KeyID: "k"}}})
	p := &world.OIDCProvider{Name: "p", IssuerURL: issuer, ClientIDs: []string{"sts.aliyuncs.com"}, JWKS: b}
	v := NewVerifier()
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := v.Verify(t.Context(), p, token); err == nil {
			t.Fatal("a token not signed by the provider key verified")
		}
	})
}
