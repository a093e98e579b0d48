package registry

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/ferrypull/ferry/internal/atomicfile"
)

const (
	signingKeyFile = "token-signing-key.pem"
	jwksFile       = "token-jwks.json"
)

// signingKey is the realm's RS256 key with its libtrust-style key ID.
type signingKey struct {
	priv *rsa.PrivateKey
	kid  string
}

// loadOrCreateSigningKey reads dir/token-signing-key.pem or creates it, and
// (re)writes dir/token-jwks.json with the public key for the registries'
// token access controllers. Reusing the key keeps issued tokens valid
// across restarts.
func loadOrCreateSigningKey(dir string) (*signingKey, string, error) {
	path := filepath.Join(dir, signingKeyFile)
	var priv *rsa.PrivateKey
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, "", fmt.Errorf("token signing key %s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("token signing key %s: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, "", fmt.Errorf("token signing key %s: not an RSA key", path)
		}
		priv = rk
	case errors.Is(err, fs.ErrNotExist):
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, "", fmt.Errorf("generate token signing key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, "", fmt.Errorf("encode token signing key: %w", err)
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, "", fmt.Errorf("write token signing key: %w", err)
		}
	default:
		return nil, "", fmt.Errorf("read token signing key: %w", err)
	}
	kid, err := libtrustKeyID(priv)
	if err != nil {
		return nil, "", err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}}}
	js, err := json.Marshal(set)
	if err != nil {
		return nil, "", fmt.Errorf("encode token JWKS: %w", err)
	}
	jwksPath := filepath.Join(dir, jwksFile)
	if err := atomicfile.Write(jwksPath, js, 0o644); err != nil {
		return nil, "", fmt.Errorf("write token JWKS: %w", err)
	}
	return &signingKey{priv: priv, kid: kid}, jwksPath, nil
}

// libtrustKeyID is the key ID format of docker/libtrust (and of ACR's
// realm): the first 240 bits of SHA-256 over the PKIX public key, base32,
// in groups of four separated by colons.
func libtrustKeyID(priv *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return "", fmt.Errorf("encode token public key: %w", err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String(), nil
}
