// Package config parses image-syncer's auth and images files (JSON or YAML, chosen by extension),
// the legacy --config file, and the image rule grammar, compatibly with image-syncer 1.5.5.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/lazyre"
)

// Format is the syntax of a configuration file.
type Format int

// The formats image-syncer accepts.
const (
	JSON Format = iota
	YAML
)

// FormatFromPath picks the format by file extension only, case-sensitive, as upstream does.
func FormatFromPath(path string) (Format, error) {
	switch filepath.Ext(path) {
	case ".json":
		return JSON, nil
	case ".yaml", ".yml":
		return YAML, nil
	}
	return 0, fmt.Errorf("file %q: only one of yaml/yml/json format is supported", path)
}

// Auth is one entry of the auth file. Username, Password and Insecure are upstream's fields; the
// rest are ferry extensions. String never prints a secret.
type Auth struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`

	// DisableExpandEnv keeps every value literally (the name of upstream PR #158).
	DisableExpandEnv bool `json:"disableexpandenv,omitempty"`
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `json:"caFile,omitempty"`
	// Token is a registry bearer token sent as is.
	Token string `json:"token,omitempty"`
	// IdentityToken is an OAuth2 refresh token (the name of upstream PR #131).
	IdentityToken string `json:"identityToken,omitempty"`
	// CredHelper names a docker-credential-<name> helper to ask for this registry.
	CredHelper string `json:"credHelper,omitempty"`
	// RealmHosts are token-service hosts ("host[:port]") on another site than the registry that
	// may receive its credentials; the registry's own host and its registrable domain always may.
	RealmHosts []string `json:"realmHosts,omitempty"`

	// ACR RAM credentials: a temporary registry password is minted with GetAuthorizationToken.
	AccessKeyID     string `json:"accessKeyId,omitempty"`
	AccessKeySecret string `json:"accessKeySecret,omitempty"`
	RoleArn         string `json:"roleArn,omitempty"`
	InstanceID      string `json:"instanceId,omitempty"`
	RegionID        string `json:"regionId,omitempty"`
	Endpoint        string `json:"endpoint,omitempty"`
	STSEndpoint     string `json:"stsEndpoint,omitempty"`
}

// String describes the entry without any secret.
func (a Auth) String() string {
	var parts []string
	if a.Username != "" {
		parts = append(parts, "username="+a.Username)
	}
	if a.Password != "" {
		parts = append(parts, "password=REDACTED")
	}
	if a.Insecure {
		parts = append(parts, "insecure")
	}
	if a.Token != "" || a.IdentityToken != "" {
		parts = append(parts, "token=REDACTED")
	}
	if a.AccessKeyID != "" {
		parts = append(parts, "accessKeyId="+a.AccessKeyID, "accessKeySecret=REDACTED")
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// HasACR reports whether the entry asks for a minted ACR token.
func (a Auth) HasACR() bool { return a.AccessKeyID != "" || a.RoleArn != "" }

// AuthFile maps a "registry" or "registry/namespace[/…]" key to its credentials.
type AuthFile map[string]Auth

// Lookup returns the entry whose key is the longest prefix of registry/repo on a path boundary (a
// key equal to registry/repo matches too). ok is false when no key matches.
func (f AuthFile) Lookup(registry, repo string) (key string, a Auth, ok bool) {
	for _, cand := range registryAliases(registry) {
		target := strings.TrimSuffix(cand+"/"+repo, "/")
		for k, v := range f {
			kk := strings.TrimSuffix(k, "/")
			if kk == "" {
				continue
			}
			if target == kk || strings.HasPrefix(target, kk+"/") {
				if !ok || len(kk) > len(strings.TrimSuffix(key, "/")) {
					key, a, ok = k, v, true
				}
			}
		}
		if ok {
			return key, a, ok
		}
	}
	return "", Auth{}, false
}

// registryAliases lists the spellings users write for the same registry (Docker Hub has three).
func registryAliases(registry string) []string {
	switch registry {
	case "index.docker.io", "docker.io", "registry-1.docker.io":
		return []string{registry, "docker.io", "index.docker.io", "registry-1.docker.io"}
	}
	return []string{registry}
}

// MaxFileSize bounds an auth, images or --config file: parsing holds a few times its size in
// memory. An images file of 100,000 rules is about 10 MB.
const MaxFileSize = 32 << 20

// decode unmarshals data in the given format into v, rejecting trailing garbage and keys listed
// twice in one mapping (the last would silently win). YAML alias bombs and nesting deeper than
// 10,000 levels are refused by the YAML and JSON decoders.
func decode(data []byte, f Format, v any) error {
	if len(data) > MaxFileSize {
		return fmt.Errorf("%d bytes, more than the %d MiB limit", len(data), MaxFileSize>>20)
	}
	if f == YAML {
		j, err := yaml.YAMLToJSONStrict(data)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
			msg = strings.NewReplacer("unmarshal errors:\n  ", "", "\n  ", "; ", "already set in map", "is listed twice").Replace(msg)
			return errors.New(msg)
		}
		data = j
	} else if err := duplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the top-level value")
	}
	return nil
}

// duplicateKeys reports the first key listed twice in one JSON object, at any depth.
func duplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		tok, err := dec.Token()
		if err != nil || depth > 10000 {
			return nil // a syntax error or too deep: the decoder proper reports it
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil
				}
				k, _ := kt.(string)
				if seen[k] {
					return fmt.Errorf("key %q is listed twice%s", k, path)
				}
				seen[k] = true
				if err := walk(fmt.Sprintf(" in %q", k), depth+1); err != nil {
					return err
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if err := walk(path, depth+1); err != nil {
					return err
				}
			}
			_, _ = dec.Token()
		}
		return nil
	}
	return walk("", 0)
}

// ParseAuth parses an auth file. With expandEnv, values are expanded as described by ExpandValue
// unless the entry sets disableexpandenv.
func ParseAuth(data []byte, f Format, expandEnv bool) (AuthFile, error) {
	out := AuthFile{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := decode(data, f, &raw); err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	keys := slices.Sorted(maps.Keys(raw))
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			return nil, errors.New("auth file: empty registry key")
		}
		var a Auth
		if string(raw[k]) == "null" {
			out[k] = a
			continue
		}
		if err := json.Unmarshal(raw[k], &a); err != nil {
			return nil, fmt.Errorf("auth file: entry %q: %w", k, errors.New(stripValues(err)))
		}
		if expandEnv && !a.DisableExpandEnv {
			a.expand()
		}
		out[k] = a
	}
	return out, nil
}

// stripValues keeps json error messages from quoting input values (they may be secrets).
func stripValues(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type, te.Value)
	}
	return "malformed entry"
}

func (a *Auth) expand() {
	for _, p := range []*string{&a.Username, &a.Password, &a.CAFile, &a.Token, &a.IdentityToken, &a.CredHelper,
		&a.AccessKeyID, &a.AccessKeySecret, &a.RoleArn, &a.InstanceID, &a.RegionID, &a.Endpoint, &a.STSEndpoint} {
		*p = ExpandValue(*p)
	}
}

var (
	wholeVar = lazyre.New(`^\$([A-Za-z_][A-Za-z0-9_]*)$`)
	braceVar = lazyre.New(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// ExpandValue expands ${VAR} anywhere and $VAR only when it is the whole value, and only for
// variables that are set; every other "$" is kept literally (Harbor "robot$name", "pa$$word").
func ExpandValue(s string) string {
	if m := wholeVar().FindStringSubmatch(s); m != nil {
		if v, ok := os.LookupEnv(m[1]); ok {
			return v
		}
		return s
	}
	return braceVar().ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := os.LookupEnv(ref[2 : len(ref)-1]); ok {
			return v
		}
		return ref
	})
}
