// Package creds turns an image-syncer auth file into per-host connection settings and a keychain:
// longest-prefix matching, static credentials and tokens, credential helpers, docker config
// fallback, and ACR RAM credentials minted through an injected token function.
package creds

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/registry"
)

// ACRTokenFunc mints a temporary registry credential for an auth entry carrying ACR RAM
// credentials (accessKeyId/accessKeySecret, optional roleArn, instanceId, regionId, endpoint).
// The implementation lives with the Alibaba SDKs (internal/acr); this package never imports them.
type ACRTokenFunc func(ctx context.Context, registryHost string, a config.Auth) (cred registry.Credential, expiry time.Time, err error)

// Hosts collects per-host settings: a host is insecure (or has a CA file) when any entry for it
// says so.
func Hosts(af config.AuthFile) registry.Hosts {
	out := registry.Hosts{}
	for k, a := range af {
		host, _, _ := strings.Cut(k, "/")
		h := out[host]
		h.Insecure = h.Insecure || a.Insecure
		if a.CAFile != "" {
			h.CAFile = a.CAFile
		}
		out[host] = h
	}
	return out
}

// RealmPolicy allows a registry's credentials to go to token realms on its own site
// (registry.SameSite) and to the realmHosts of the auth entries for that registry.
func RealmPolicy(af config.AuthFile) registry.RealmPolicy {
	extra := map[string][]string{}
	for k, a := range af {
		host, _, _ := strings.Cut(k, "/")
		extra[host] = append(extra[host], a.RealmHosts...)
	}
	return func(registryHost, realmHost string) bool {
		if registry.SameSite(registryHost, realmHost) {
			return true
		}
		for _, h := range extra[registryHost] {
			if strings.EqualFold(h, realmHost) || !strings.Contains(h, ":") && strings.EqualFold(h, strings.Split(realmHost, ":")[0]) {
				return true
			}
		}
		return false
	}
}

// Resolver resolves credentials for "registry/repo" resources.
type Resolver struct {
	auth     config.AuthFile
	acr      ACRTokenFunc
	fallback authn.Keychain
	warn     func(string)

	mu      sync.Mutex
	warned  map[string]bool
	minted  map[string]mintedCred
	secrets *redact.Literals
}

// Secrets lists the literal secrets of an auth file — passwords, tokens, AccessKey secrets, and
// the base64 "user:password" of a Basic Authorization header — for redaction.
func Secrets(af config.AuthFile) []string {
	var out []string
	for _, a := range af {
		out = append(out, a.Password, a.Token, a.IdentityToken, a.AccessKeySecret)
		if a.Username != "" && a.Password != "" {
			out = append(out, base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
		}
	}
	return out
}

// RedactMinted registers every credential the resolver mints (ACR tokens) in l.
func (r *Resolver) RedactMinted(l *redact.Literals) {
	r.mu.Lock()
	r.secrets = l
	r.mu.Unlock()
}

type mintedCred struct {
	cred   registry.Credential
	expiry time.Time
}

// New returns a Resolver. acr may be nil (ACR RAM entries then fail with a clear error). fallback
// is asked when no entry matches or the entry has neither credentials nor a helper (nil:
// authn.DefaultKeychain, i.e. docker config and credential helpers). warn receives upstream's
// "Auth information not found" line once per resource.
func New(af config.AuthFile, acr ACRTokenFunc, fallback authn.Keychain, warn func(string)) *Resolver {
	if fallback == nil {
		fallback = authn.DefaultKeychain
	}
	if warn == nil {
		warn = func(string) {}
	}
	return &Resolver{auth: af, acr: acr, fallback: fallback, warn: warn, warned: map[string]bool{}, minted: map[string]mintedCred{}}
}

// Keychain returns the keychain for go-containerregistry.
func (r *Resolver) Keychain() authn.Keychain {
	return registry.Keychain(r.resolve, r.fallback)
}

func (r *Resolver) resolve(ctx context.Context, resource string) (authn.Authenticator, bool, error) {
	reg, repo, _ := strings.Cut(resource, "/")
	key, a, ok := r.auth.Lookup(reg, repo)
	if !ok {
		r.mu.Lock()
		if !r.warned[resource] {
			r.warned[resource] = true
			r.mu.Unlock()
			r.warn(fmt.Sprintf("Auth information not found for %s, access will be anonymous.", resource))
		} else {
			r.mu.Unlock()
		}
		return nil, false, nil
	}
	switch {
	case a.HasACR():
		c, err := r.mintACR(ctx, key, reg, a)
		if err != nil {
			return nil, false, err
		}
		return c.Authenticator(), true, nil
	case a.Token != "" || a.IdentityToken != "" || a.Username != "" && a.Password != "":
		return registry.Credential{Username: a.Username, Password: a.Password, Token: a.Token, IdentityToken: a.IdentityToken}.Authenticator(), true, nil
	case a.CredHelper != "":
		au, err := registry.HelperKeychain(a.CredHelper).Resolve(resourceOf(resource))
		if err != nil {
			return nil, false, fmt.Errorf("auth entry %q: %w", key, err)
		}
		return au, true, nil
	}
	// Upstream: credentials from the file are used only when both are set; otherwise docker
	// config and credential helpers are consulted.
	return nil, false, nil
}

func (r *Resolver) mintACR(ctx context.Context, key, host string, a config.Auth) (registry.Credential, error) {
	if r.acr == nil {
		return registry.Credential{}, fmt.Errorf("auth entry %q: ACR RAM credentials (accessKeyId/roleArn) are not supported by this build", key)
	}
	r.mu.Lock()
	if m, ok := r.minted[key]; ok && time.Until(m.expiry) > time.Minute {
		r.mu.Unlock()
		return m.cred, nil
	}
	r.mu.Unlock()
	c, exp, err := r.acr(ctx, host, a)
	if err != nil {
		return registry.Credential{}, fmt.Errorf("auth entry %q: could not mint an ACR token (%w)", key, err)
	}
	r.mu.Lock()
	r.minted[key] = mintedCred{cred: c, expiry: exp}
	r.secrets.Add(c.Password, c.Token, c.IdentityToken)
	if c.Username != "" && c.Password != "" {
		r.secrets.Add(base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password)))
	}
	r.mu.Unlock()
	return c, nil
}

type stringResource string

func (s stringResource) String() string { return string(s) }
func (s stringResource) RegistryStr() string {
	reg, _, _ := strings.Cut(string(s), "/")
	return reg
}

func resourceOf(s string) authn.Resource { return stringResource(s) }
