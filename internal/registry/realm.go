package registry

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/publicsuffix"
)

// RealmPolicy decides whether the credentials of registryHost ("host[:port]") may be sent to the
// token realm on realmHost ("host[:port]") that the registry announced.
type RealmPolicy func(registryHost, realmHost string) bool

// SameSite is the default RealmPolicy: the realm is on the registry's own host name (any port),
// or both share a registrable domain (auth.docker.io for registry-1.docker.io,
// dockerauth.cn-hangzhou.aliyuncs.com for registry.cn-hangzhou.aliyuncs.com). IP addresses
// must match exactly.
func SameSite(registryHost, realmHost string) bool {
	a, b := hostname(registryHost), hostname(realmHost)
	if a == b {
		return true
	}
	if net.ParseIP(a) != nil || net.ParseIP(b) != nil {
		return false
	}
	da, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	db, err2 := publicsuffix.EffectiveTLDPlusOne(b)
	return err1 == nil && err2 == nil && da == db
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

type realmGuard struct {
	inner  http.RoundTripper
	policy RealmPolicy
	mu     sync.Mutex
	realms map[string][]string // scheme://host/path of a realm → registry hosts that announced it
}

// NewRealmGuard keeps a registry's credentials from being sent to a token realm on another site.
// It learns each registry's realm from its answer to the version check (GET /v2/), and refuses a
// request to that realm that carries credentials (an Authorization header, or an OAuth2 POST with
// a refresh token) unless policy (nil: [SameSite]) allows the pair. go-containerregistry refuses
// realms on private IP addresses, but sends the credentials to any public host a registry names.
func NewRealmGuard(inner http.RoundTripper, policy RealmPolicy) http.RoundTripper {
	if policy == nil {
		policy = SameSite
	}
	return &realmGuard{inner: inner, policy: policy, realms: map[string][]string{}}
}

func realmKey(u *url.URL) string {
	return strings.ToLower(u.Scheme+"://"+u.Host) + u.Path
}

func (g *realmGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/v2/" && (req.Header.Get("Authorization") != "" || req.Method == http.MethodPost) {
		g.mu.Lock()
		announcers, isRealm := g.realms[realmKey(req.URL)]
		g.mu.Unlock()
		if isRealm {
			allowed := false
			for _, reg := range announcers {
				if g.policy(reg, req.URL.Host) {
					allowed = true
					break
				}
			}
			if !allowed {
				return nil, fmt.Errorf("registry %s announced its token realm on %s, another site: its credentials are not sent there "+
					"(if that is its token service, list %q under realmHosts in the registry's auth entry)", strings.Join(announcers, ", "), req.URL.Host, req.URL.Host)
			}
		}
	}
	resp, err := g.inner.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && req.URL.Path == "/v2/" && resp.StatusCode == http.StatusUnauthorized {
		g.learn(req.URL.Host, resp.Header.Values("WWW-Authenticate"))
	}
	return resp, err
}

// learn records the realm of each Bearer challenge.
func (g *realmGuard) learn(registryHost string, challenges []string) {
	for _, c := range challenges {
		scheme, params, _ := strings.Cut(strings.TrimSpace(c), " ")
		if !strings.EqualFold(scheme, "bearer") {
			continue
		}
		realm := challengeParam(params, "realm")
		u, err := url.Parse(realm)
		if err != nil || u.Host == "" {
			continue // go-containerregistry refuses it with its own error
		}
		k := realmKey(u)
		g.mu.Lock()
		if !containsFold(g.realms[k], registryHost) {
			g.realms[k] = append(g.realms[k], registryHost)
		}
		g.mu.Unlock()
	}
}

// challengeParam extracts key="value" (or key=value) from a challenge's parameters.
func challengeParam(params, key string) string {
	for len(params) > 0 {
		params = strings.TrimLeft(params, " ,")
		k, rest, ok := strings.Cut(params, "=")
		if !ok {
			return ""
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return ""
			}
			v, params = rest[1:1+end], rest[2+end:]
		} else {
			v, params, _ = strings.Cut(rest, ",")
		}
		if strings.EqualFold(strings.TrimSpace(k), key) {
			return v
		}
	}
	return ""
}

func containsFold(xs []string, s string) bool {
	for _, x := range xs {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
