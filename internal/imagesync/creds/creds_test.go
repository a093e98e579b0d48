package creds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/registry"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"fallback.io":{"username":"dc","password":"dcpass"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	af := config.AuthFile{
		"h.io:8080":         {Username: "robot$ci", Password: "pa$$", Insecure: true},
		"h.io:8080/special": {Token: "tkn"},
		"fallback.io":       {Insecure: true},
		"acr.io":            {AccessKeyID: "AK", AccessKeySecret: "SK", InstanceID: "cri-1"},
		"noacr.io":          {AccessKeyID: "AK", AccessKeySecret: "SK"},
	}
	mints := 0
	acr := func(_ context.Context, host string, a config.Auth) (registry.Credential, time.Time, error) {
		if host == "noacr.io" {
			return registry.Credential{}, time.Time{}, errors.New("no such instance")
		}
		mints++
		return registry.Credential{Username: "cr_temp_user", Password: "minted"}, time.Now().Add(time.Hour), nil
	}
	var warnings []string
	r := New(af, acr, nil, func(s string) { warnings = append(warnings, s) })
	kc := r.Keychain()
	for _, tc := range []struct {
		repo string
		want authn.AuthConfig
		err  string
	}{
		{"h.io:8080/proj/app", authn.AuthConfig{Username: "robot$ci", Password: "pa$$"}, ""},
		{"h.io:8080/special/app", authn.AuthConfig{RegistryToken: "tkn"}, ""},
		{"fallback.io/x/y", authn.AuthConfig{Username: "dc", Password: "dcpass"}, ""},
		{"acr.io/ns/app", authn.AuthConfig{Username: "cr_temp_user", Password: "minted"}, ""},
		{"acr.io/ns/other", authn.AuthConfig{Username: "cr_temp_user", Password: "minted"}, ""},
		{"noacr.io/ns/app", authn.AuthConfig{}, "no such instance"},
		{"anon.io/ns/app", authn.AuthConfig{}, ""},
	} {
		repo, err := name.NewRepository(tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(repo)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v", tc.repo, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.repo, err)
		}
		got, _ := authn.Authorization(t.Context(), a)
		if *got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.repo, *got, tc.want)
		}
	}
	if mints != 1 {
		t.Errorf("ACR token minted %d times, want 1 (cached)", mints)
	}
	if len(warnings) != 1 || warnings[0] != "Auth information not found for anon.io/ns/app, access will be anonymous." {
		t.Errorf("warnings = %q", warnings)
	}
	if New(af, nil, nil, nil).mintACRErr(t) == "" {
		t.Error("nil ACR func accepted")
	}
	h := Hosts(af)
	if !h["h.io:8080"].Insecure || h["acr.io"].Insecure {
		t.Errorf("hosts = %+v", h)
	}
}

func (r *Resolver) mintACRErr(t *testing.T) string {
	_, err := r.mintACR(t.Context(), "acr.io", "acr.io", config.Auth{AccessKeyID: "AK"})
	if err == nil {
		return ""
	}
	return err.Error()
}
