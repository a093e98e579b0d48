package registry

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Limits on token requests; they come from untrusted clients.
const (
	maxScopes      = 64
	maxFormBytes   = 64 << 10
	maxScopeLength = 512
)

// Scope is one parsed scope of a token request, e.g.
// "repository:ns/app:pull,push" or "registry:catalog:*".
type Scope struct {
	Type    string
	Name    string
	Actions []string
}

// String renders the scope in the wire form.
func (s Scope) String() string {
	return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",")
}

// ScopeError reports a scope string that cannot be parsed.
type ScopeError struct {
	Scope  string
	Reason string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("invalid scope %q: %s", e.Scope, e.Reason)
}

var (
	scopeTypeRE = regexp.MustCompile(`^[a-z0-9]+(\([a-z0-9]+\))?$`)
	actionRE    = regexp.MustCompile(`^([a-z]+|\*)$`)
)

// ParseScope parses one scope "type:name:actions". The name may contain
// colons; the actions follow the last one. A resource class, as in
// "repository(plugin):name:pull", is dropped.
func ParseScope(s string) (Scope, error) {
	if len(s) > maxScopeLength {
		return Scope{}, &ScopeError{Scope: s[:32] + "…", Reason: "too long"}
	}
	typ, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Scope{}, &ScopeError{Scope: s, Reason: "want type:name:actions"}
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return Scope{}, &ScopeError{Scope: s, Reason: "want type:name:actions"}
	}
	name, actions := rest[:i], rest[i+1:]
	if !scopeTypeRE.MatchString(typ) {
		return Scope{}, &ScopeError{Scope: s, Reason: "bad resource type"}
	}
	if j := strings.IndexByte(typ, '('); j >= 0 {
		typ = typ[:j]
	}
	if name == "" {
		return Scope{}, &ScopeError{Scope: s, Reason: "empty resource name"}
	}
	sc := Scope{Type: typ, Name: name}
	for a := range strings.SplitSeq(actions, ",") {
		if a == "" {
			continue
		}
		if !actionRE.MatchString(a) {
			return Scope{}, &ScopeError{Scope: s, Reason: fmt.Sprintf("bad action %q", a)}
		}
		sc.Actions = append(sc.Actions, a)
	}
	if len(sc.Actions) == 0 {
		return Scope{}, &ScopeError{Scope: s, Reason: "no actions"}
	}
	return sc, nil
}

// repoNameRE is the ACR repository path: exactly namespace/repo.
var repoNameRE = regexp.MustCompile(`^([a-z0-9]+(?:[._-][a-z0-9]+)*)/([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)$`)

// splitRepository splits "ns/repo"; ok is false for any other shape.
func splitRepository(name string) (ns, repo string, ok bool) {
	m := repoNameRE.FindStringSubmatch(name)
	if m == nil || len(m[1]) > 120 || len(m[2]) > 128 {
		return "", "", false
	}
	return m[1], m[2], true
}

// ParseBasicAuth decodes an "Authorization: Basic …" header value. ok is
// false when the header is absent; err is set when it is present but malformed.
func ParseBasicAuth(header string) (username, password string, ok bool, err error) {
	if header == "" {
		return "", "", false, nil
	}
	scheme, enc, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "basic") {
		return "", "", false, fmt.Errorf("authorization header: want Basic scheme")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false, fmt.Errorf("authorization header: bad base64: %w", err)
	}
	username, password, found = strings.Cut(string(raw), ":")
	if !found {
		return "", "", false, fmt.Errorf("authorization header: missing ':' between user name and password")
	}
	if username == "" {
		return "", "", false, fmt.Errorf("authorization header: empty user name")
	}
	return username, password, true, nil
}

// TokenRequest is a parsed token request (GET or OAuth2 POST).
type TokenRequest struct {
	Service  string
	Scopes   []Scope
	Username string
	// Password is the secret presented; never log it.
	Password       string
	HasCredentials bool
	// GrantType is "password", "refresh_token" or "" (GET).
	GrantType    string
	RefreshToken string
	ClientID     string
	Offline      bool
}

// TokenRequestError is a malformed token request (HTTP 400).
type TokenRequestError struct {
	Field  string
	Reason string
}

func (e *TokenRequestError) Error() string {
	return fmt.Sprintf("token request: %s: %s", e.Field, e.Reason)
}

// ParseTokenRequest parses a token request: GET with query parameters and
// optional Basic auth, or POST with an x-www-form-urlencoded body.
func ParseTokenRequest(r *http.Request) (TokenRequest, error) {
	var tr TokenRequest
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		tr.Service = q.Get("service")
		tr.ClientID = q.Get("client_id")
		tr.Offline = q.Get("offline_token") == "true"
		scopes = q["scope"]
		user, pass, ok, err := ParseBasicAuth(r.Header.Get("Authorization"))
		if err != nil {
			return tr, &TokenRequestError{Field: "Authorization", Reason: err.Error()}
		}
		tr.Username, tr.Password, tr.HasCredentials = user, pass, ok
	case http.MethodPost:
		form, err := parsePostForm(r)
		if err != nil {
			return tr, err
		}
		tr.Service = form.Get("service")
		tr.ClientID = form.Get("client_id")
		tr.Offline = form.Get("access_type") == "offline"
		tr.GrantType = form.Get("grant_type")
		scopes = form["scope"]
		switch tr.GrantType {
		case "password":
			tr.Username, tr.Password = form.Get("username"), form.Get("password")
			if tr.Username == "" {
				return tr, &TokenRequestError{Field: "username", Reason: "required for grant_type=password"}
			}
			tr.HasCredentials = true
		case "refresh_token":
			tr.RefreshToken = form.Get("refresh_token")
			if tr.RefreshToken == "" {
				return tr, &TokenRequestError{Field: "refresh_token", Reason: "required for grant_type=refresh_token"}
			}
		default:
			return tr, &TokenRequestError{Field: "grant_type", Reason: fmt.Sprintf("unsupported value %q", truncate(tr.GrantType))}
		}
	default:
		return tr, &TokenRequestError{Field: "method", Reason: fmt.Sprintf("%s not allowed", truncate(r.Method))}
	}
	if tr.Service == "" {
		return tr, &TokenRequestError{Field: "service", Reason: "required"}
	}
	for _, s := range scopes {
		for one := range strings.FieldsSeq(s) {
			if len(tr.Scopes) >= maxScopes {
				return tr, &TokenRequestError{Field: "scope", Reason: fmt.Sprintf("more than %d scopes", maxScopes)}
			}
			sc, err := ParseScope(one)
			if err != nil {
				return tr, &TokenRequestError{Field: "scope", Reason: err.Error()}
			}
			tr.Scopes = append(tr.Scopes, sc)
		}
	}
	return tr, nil
}

func parsePostForm(r *http.Request) (url.Values, error) {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return nil, &TokenRequestError{Field: "Content-Type", Reason: fmt.Sprintf("want application/x-www-form-urlencoded, got %q", truncate(ct))}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return nil, &TokenRequestError{Field: "body", Reason: err.Error()}
	}
	if len(body) > maxFormBytes {
		return nil, &TokenRequestError{Field: "body", Reason: "too large"}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, &TokenRequestError{Field: "body", Reason: "malformed form encoding"}
	}
	return form, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
