// Package redact keeps secrets (passwords, registry tokens, AccessKey secrets, STS tokens,
// dockerconfigjson payloads) out of logs, Events and error strings.
//
// Use [Secret] for every secret value held in a struct, [URL] for URLs that may carry
// credentials, [Header] before logging HTTP headers, [DockerConfigJSON] before showing a
// pull-secret payload, and wrap the process logger with [NewHandler].
package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// Placeholder replaces every secret.
const Placeholder = "[redacted]"

// Secret is a string that never prints itself. Use [Secret.Reveal] where the value is
// really needed (signing a request, writing a Secret object).
type Secret string

// Reveal returns the plaintext value.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return mask(string(s)) }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return mask(string(s)) }

// Format implements fmt.Formatter so every verb (%s, %v, %q, %x, %d …) prints the placeholder.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", mask(string(s)))
		return
	}
	_, _ = f.Write([]byte(mask(string(s))))
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(mask(string(s))) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(mask(string(s))) }

// MarshalText implements encoding.TextMarshaler (YAML, TOML, flag printing).
func (s Secret) MarshalText() ([]byte, error) { return []byte(mask(string(s))), nil }

func mask(s string) string {
	if s == "" {
		return ""
	}
	return Placeholder
}

// sensitiveNames are parameter, header, attribute and JSON key names (lower case, without
// '-', '_' and '.') whose values are secrets. A bare "secret" is not among them: in a
// Kubernetes controller it names a Secret object ("secret", "ns/name"); secret values are
// held in [Secret] or logged under a specific name (accessKeySecret, password, token).
var sensitiveNames = map[string]bool{
	"password": true, "passwd": true,
	"token": true, "accesstoken": true, "refreshtoken": true, "idtoken": true,
	"identitytoken": true, "registrytoken": true, "authorizationtoken": true,
	"authorization": true, "proxyauthorization": true, "auth": true, "cookie": true, "setcookie": true,
	"signature": true, "xacssignature": true, "securitytoken": true, "xacssecuritytoken": true,
	"accesskeysecret": true, "customaccesskeysecret": true, "oidctoken": true,
	"xalibabacloudsecuritytoken": true, "xaliyunecsmetadatatoken": true,
	"dockerconfigjson": true, "dockercfg": true, "xamzsecuritytoken": true, "xamzsignature": true,
	"clientsecret": true, "apikey": true, "privatekey": true,
}

// IsSensitiveName reports whether a parameter, header, JSON key or log attribute called
// name carries a secret. Matching ignores case and the separators '-', '_' and '.'.
func IsSensitiveName(name string) bool {
	return sensitiveNames[normalizeName(name)]
}

func normalizeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range strings.ToLower(name) {
		switch r {
		case '-', '_', '.', ' ':
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// URL returns raw with the password of its userinfo and the values of sensitive query
// parameters replaced by the placeholder. A value that does not parse as a URL is returned
// whole as the placeholder if it contains '@' (it may hold credentials), unchanged otherwise.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return Placeholder
		}
		return raw
	}
	if red := URLValue(u); red != u.String() {
		return red
	}
	return raw
}

// URLValue is [URL] for a parsed URL. u is not modified.
func URLValue(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	changed := false
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), Placeholder)
			changed = true
		}
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = Placeholder
			changed = true
		} else {
			for k, vs := range q {
				if IsSensitiveName(k) {
					for i := range vs {
						vs[i] = Placeholder
					}
					changed = true
				}
			}
			if changed {
				c.RawQuery = q.Encode()
			}
		}
	}
	if !changed {
		return u.String()
	}
	s := c.String()
	// url.UserPassword escapes the placeholder's brackets; show it plainly.
	return strings.Replace(s, url.QueryEscape(Placeholder), Placeholder, -1)
}

// AuthorizationValue redacts the credentials of an Authorization header value but keeps the
// scheme ("Bearer [redacted]", "ACS3-HMAC-SHA256 [redacted]").
func AuthorizationValue(v string) string {
	if v == "" {
		return ""
	}
	if scheme, _, ok := strings.Cut(v, " "); ok && scheme != "" {
		return scheme + " " + Placeholder
	}
	return Placeholder
}

// Header returns a copy of h in which every sensitive header (Authorization,
// Proxy-Authorization, Cookie, x-acs-security-token, …) is redacted.
func Header(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		cp := make([]string, len(vs))
		for i, v := range vs {
			switch {
			case strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Proxy-Authorization"):
				cp[i] = AuthorizationValue(v)
			case IsSensitiveName(k):
				cp[i] = Placeholder
			default:
				cp[i] = v
			}
		}
		out[k] = cp
	}
	return out
}

// DockerConfigJSON returns the .dockerconfigjson (or legacy .dockercfg) payload b with every
// password, auth, identitytoken and registrytoken replaced by the placeholder, keeping
// hostnames and usernames. A payload that is not a JSON object is replaced entirely.
func DockerConfigJSON(b []byte) []byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []byte(Placeholder)
	}
	if _, ok := v.(map[string]any); !ok {
		return []byte(Placeholder)
	}
	out, err := json.Marshal(redactJSON(v))
	if err != nil {
		return []byte(Placeholder)
	}
	return out
}

// JSON redacts the values of sensitive keys at any depth of a decoded JSON value
// (map[string]any / []any) and returns the redacted copy.
func JSON(v any) any { return redactJSON(v) }

func redactJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			if IsSensitiveName(k) {
				if s, ok := val.(string); ok && s == "" {
					out[k] = ""
				} else {
					out[k] = Placeholder
				}
				continue
			}
			out[k] = redactJSON(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = redactJSON(val)
		}
		return out
	default:
		return v
	}
}

// Strings replaces every occurrence of each non-empty secret in s by the placeholder. Use it
// on messages that come from outside (an SDK error embedding a response body) when the
// secrets involved are known.
func Strings(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < 4 { // too short to replace without mangling ordinary text
			continue
		}
		s = strings.ReplaceAll(s, sec, Placeholder)
	}
	return s
}

// Error wraps err so that its message has every known secret replaced by the placeholder.
// errors.Is / errors.As still see err. A nil err returns nil.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := Strings(msg, secrets...)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
