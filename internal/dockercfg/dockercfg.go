// Package dockercfg parses, merges and renders the .dockerconfigjson payload of
// kubernetes.io/dockerconfigjson Secrets, deterministically and without leaking passwords.
package dockercfg

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ferrypull/ferry/internal/redact"
)

// DockerHubKey is the historical key Docker uses for Docker Hub; it is kept verbatim.
const DockerHubKey = "https://index.docker.io/v1/"

// MaxSize bounds the payload Parse accepts (a Secret holds at most 1 MiB).
const MaxSize = 1 << 20

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid dockerconfigjson")

// Entry is the credential for one registry host.
type Entry struct {
	Username      string
	Password      redact.Secret
	Email         string
	IdentityToken redact.Secret
	RegistryToken redact.Secret
}

// String never shows the password.
func (e Entry) String() string {
	return fmt.Sprintf("{Username:%s Password:%s}", e.Username, e.Password)
}

// Config is a parsed .dockerconfigjson: registry key → credential. Keys are normalised
// with [NormalizeKey].
type Config struct {
	Auths map[string]Entry
}

// New returns an empty Config.
func New() *Config { return &Config{Auths: map[string]Entry{}} }

// Set stores user/password for every key in hosts. user must not contain ':'.
func (c *Config) Set(user, password string, hosts ...string) {
	if c.Auths == nil {
		c.Auths = map[string]Entry{}
	}
	for _, h := range hosts {
		c.Auths[NormalizeKey(h)] = Entry{Username: user, Password: redact.Secret(password)}
	}
}

// Hosts returns the registry keys in sorted order.
func (c *Config) Hosts() []string {
	if c == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(c.Auths))
}

// Lookup returns the entry for host (normalised).
func (c *Config) Lookup(host string) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	e, ok := c.Auths[NormalizeKey(host)]
	return e, ok
}

// String never shows a password.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	return fmt.Sprintf("dockercfg(%s)", strings.Join(c.Hosts(), ","))
}

// NormalizeKey turns a registry reference as users write it into the canonical key:
// scheme and trailing slashes stripped, host lower-cased, path kept
// ("https://Reg.Example.com/" → "reg.example.com"). Docker Hub's legacy key
// "https://index.docker.io/v1/" is kept verbatim.
func NormalizeKey(key string) string {
	k := strings.TrimSpace(key)
	if strings.EqualFold(k, DockerHubKey) || strings.EqualFold(strings.TrimSuffix(k, "/"), strings.TrimSuffix(DockerHubKey, "/")) {
		return DockerHubKey
	}
	lower := strings.ToLower(k)
	for _, p := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, p) {
			k = k[len(p):]
			break
		}
	}
	k = strings.TrimRight(k, "/")
	host, path, hasPath := strings.Cut(k, "/")
	host = strings.ToLower(host)
	if hasPath {
		return host + "/" + path
	}
	return host
}

type wireEntry struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	Email         string `json:"email,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

type wireConfig struct {
	Auths map[string]wireEntry `json:"auths"`
}

// Parse decodes a .dockerconfigjson payload ({"auths":{…}}) or a legacy .dockercfg payload
// (the auths map at top level). "auth" (base64 of user:password) and explicit
// username/password are both accepted; when both are present they must agree. Two keys that
// normalise to the same host must carry the same credential. Errors never contain a
// password.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalid, len(data), MaxSize)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, describeJSONError(err))
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	entries := map[string]wireEntry{}
	if auths, ok := raw["auths"]; ok {
		if err := json.Unmarshal(auths, &entries); err != nil {
			return nil, fmt.Errorf("%w: auths: %s", ErrInvalid, describeJSONError(err))
		}
	} else {
		// legacy .dockercfg: every top-level key is a registry
		for k, v := range raw {
			var e wireEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return nil, fmt.Errorf("%w: %q: %s", ErrInvalid, k, describeJSONError(err))
			}
			entries[k] = e
		}
	}
	c := New()
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		w := entries[k]
		key := NormalizeKey(k)
		if key == "" {
			return nil, fmt.Errorf("%w: auths: empty registry key %q", ErrInvalid, k)
		}
		if strings.Contains(w.Username, ":") {
			return nil, fmt.Errorf("%w: auths[%q].username %q contains ':'", ErrInvalid, k, w.Username)
		}
		e := Entry{Username: w.Username, Password: redact.Secret(w.Password), Email: w.Email,
			IdentityToken: redact.Secret(w.IdentityToken), RegistryToken: redact.Secret(w.RegistryToken)}
		if w.Auth != "" {
			user, pass, err := decodeAuth(w.Auth)
			if err != nil {
				return nil, fmt.Errorf("%w: auths[%q].auth: %w", ErrInvalid, k, err)
			}
			if w.Username != "" && w.Username != user {
				return nil, fmt.Errorf("%w: auths[%q]: username %q disagrees with the one in auth", ErrInvalid, k, w.Username)
			}
			if w.Password != "" && w.Password != pass {
				return nil, fmt.Errorf("%w: auths[%q]: password disagrees with the one in auth", ErrInvalid, k)
			}
			e.Username, e.Password = user, redact.Secret(pass)
		}
		if prev, dup := c.Auths[key]; dup && !entryEqual(prev, e) {
			return nil, fmt.Errorf("%w: auths: keys normalising to %q carry different credentials", ErrInvalid, key)
		}
		c.Auths[key] = e
	}
	return c, nil
}

// describeJSONError keeps the position but never the offending bytes.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("JSON syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return "malformed JSON"
}

func decodeAuth(s string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			return "", "", errors.New("not valid base64")
		}
	}
	if !utf8.Valid(b) {
		return "", "", errors.New("decoded value is not valid UTF-8")
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New("decoded value has no ':' between username and password")
	}
	return user, pass, nil
}

// Render encodes c as a .dockerconfigjson payload: {"auths":{key:{username,password,auth}}}
// with keys sorted, so equal configs render to identical bytes.
func (c *Config) Render() []byte {
	w := wireConfig{Auths: map[string]wireEntry{}}
	if c != nil {
		for k, e := range c.Auths {
			we := wireEntry{Username: e.Username, Password: e.Password.Reveal(), Email: e.Email,
				IdentityToken: e.IdentityToken.Reveal(), RegistryToken: e.RegistryToken.Reveal()}
			if e.Username != "" || e.Password != "" {
				we.Auth = base64.StdEncoding.EncodeToString([]byte(e.Username + ":" + e.Password.Reveal()))
			}
			w.Auths[k] = we
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil { // cannot fail: only strings and maps
		panic(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// Merge returns a new Config holding base's entries overlaid with overlay's (overlay wins
// on the same key). Neither input is modified.
func Merge(base, overlay *Config) *Config {
	out := New()
	for _, c := range []*Config{base, overlay} {
		if c == nil {
			continue
		}
		maps.Copy(out.Auths, c.Auths)
	}
	return out
}

// Equal reports whether a and b hold the same credentials for the same keys.
func Equal(a, b *Config) bool {
	var la, lb int
	if a != nil {
		la = len(a.Auths)
	}
	if b != nil {
		lb = len(b.Auths)
	}
	if la != lb {
		return false
	}
	if la == 0 {
		return true
	}
	for k, ea := range a.Auths {
		eb, ok := b.Auths[k]
		if !ok || !entryEqual(ea, eb) {
			return false
		}
	}
	return true
}

// EqualBytes reports whether two payloads parse to equal configs. Unparseable payloads are
// never equal to anything.
func EqualBytes(a, b []byte) bool {
	ca, err := Parse(a)
	if err != nil {
		return false
	}
	cb, err := Parse(b)
	if err != nil {
		return false
	}
	return Equal(ca, cb)
}

func entryEqual(a, b Entry) bool { return a == b }
