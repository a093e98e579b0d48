package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credential is one static credential. Exactly one form is used, in this order: Token (a registry
// bearer token), IdentityToken, Username+Password. Its String never prints a secret.
type Credential struct {
	Username, Password string
	Token              string
	IdentityToken      string
}

// String describes the credential without secrets.
func (c Credential) String() string {
	switch {
	case c.Token != "":
		return "token(REDACTED)"
	case c.IdentityToken != "":
		return "identityToken(REDACTED)"
	case c.Username != "":
		return "basic(" + c.Username + ", REDACTED)"
	}
	return "anonymous"
}

// Empty reports whether the credential carries nothing usable.
func (c Credential) Empty() bool {
	return c.Token == "" && c.IdentityToken == "" && (c.Username == "" || c.Password == "")
}

// Authenticator turns the credential into a ggcr authenticator.
func (c Credential) Authenticator() authn.Authenticator {
	switch {
	case c.Token != "":
		return &authn.Bearer{Token: c.Token}
	case c.IdentityToken != "":
		return authn.FromConfig(authn.AuthConfig{Username: c.Username, IdentityToken: c.IdentityToken})
	case c.Username != "" && c.Password != "":
		return &authn.Basic{Username: c.Username, Password: c.Password}
	}
	return authn.Anonymous
}

// ResolveFunc returns the authenticator for a resource ("registry" or "registry/repo"); ok=false
// means "no opinion" and the next keychain is asked.
type ResolveFunc func(ctx context.Context, resource string) (a authn.Authenticator, ok bool, err error)

type funcKeychain struct{ f ResolveFunc }

// Keychain builds a keychain from f, falling back to fallback (e.g. authn.DefaultKeychain: docker
// config and credential helpers) when f has no opinion. fallback may be nil (anonymous).
func Keychain(f ResolveFunc, fallback authn.Keychain) authn.Keychain {
	kc := authn.Keychain(&funcKeychain{f: f})
	if fallback != nil {
		kc = authn.NewMultiKeychain(kc, fallback)
	}
	return kc
}

func (k *funcKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k *funcKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	a, ok, err := k.f(ctx, r.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		return authn.Anonymous, nil
	}
	return a, nil
}

// HelperKeychain asks docker-credential-<name> for every registry.
func HelperKeychain(helper string) authn.Keychain {
	return authn.NewKeychainFromHelper(execHelper(helper))
}

type execHelper string

// Get runs "docker-credential-<name> get" with the server URL on stdin.
func (h execHelper) Get(serverURL string) (string, string, error) {
	cmd := exec.Command("docker-credential-"+string(h), "get")
	cmd.Stdin = strings.NewReader(serverURL)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String()+stderr.String(), "credentials not found") {
			return "", "", nil
		}
		return "", "", fmt.Errorf("credential helper %q for %s: %w", string(h), serverURL, err)
	}
	var resp struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return "", "", fmt.Errorf("credential helper %q for %s: %w", string(h), serverURL, errors.New("malformed response"))
	}
	return resp.Username, resp.Secret, nil
}
