package cloudcred

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	sts "github.com/alibabacloud-go/sts-20150401/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/ferrypull/ferry/internal/redact"
)

// session is one set of temporary credentials.
type session struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
	Expiration      time.Time
}

// fetchTimeout bounds one refresh: credentials-go's provider interface carries no context.
const fetchTimeout = 30 * time.Second

// minRemaining: a session is renewed when less than max(minRemaining, half its life) is
// left, so tokens minted with it always outlive a 15-minute expiring-threshold.
const minRemaining = 3 * time.Minute

// refreshing is a credentials-go provider that caches a temporary session and renews it
// when half of its life has passed. Safe for concurrent use.
type refreshing struct {
	name  string
	now   func() time.Time
	fetch func(ctx context.Context) (*session, error)

	mu      sync.Mutex
	cur     *session
	fetched time.Time
}

var _ providers.CredentialsProvider = (*refreshing)(nil)

func (p *refreshing) GetProviderName() string { return p.name }

func (p *refreshing) GetCredentials() (*providers.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.cur == nil || p.cur.Expiration.Sub(now) < max(minRemaining, p.cur.Expiration.Sub(p.fetched)/2) {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		s, err := p.fetch(ctx)
		cancel()
		if err != nil {
			if p.cur != nil && p.cur.Expiration.Sub(now) > time.Minute {
				// keep using the old session while it is still good
				return p.creds(), nil
			}
			return nil, err
		}
		p.cur, p.fetched = s, now
	}
	return p.creds(), nil
}

func (p *refreshing) creds() *providers.Credentials {
	return &providers.Credentials{AccessKeyId: p.cur.AccessKeyID, AccessKeySecret: p.cur.AccessKeySecret,
		SecurityToken: p.cur.SecurityToken, ProviderName: p.name}
}

// daraHTTP makes the SDK use our *http.Client (CA bundle, timeouts) instead of building its
// own transport.
type daraHTTP struct{ c *http.Client }

func (d daraHTTP) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return d.c.Do(req)
}

func (r *Resolver) stsClient(cred credentials.Credential) (*sts.Client, error) {
	cfg := &openapi.Config{
		Credential: cred,
		Endpoint:   dara.String(r.opts.STSEndpoint),
		Protocol:   dara.String(r.opts.STSProtocol),
		HttpClient: daraHTTP{r.opts.HTTPClient},
	}
	if r.opts.Region != "" {
		cfg.RegionId = dara.String(r.opts.Region)
	}
	return sts.NewClient(cfg)
}

// assumeRoleProvider assumes roleARN with the base credential.
func (r *Resolver) assumeRoleProvider(base credentials.Credential, roleARN string, d time.Duration) *refreshing {
	return &refreshing{name: "ram_role_arn", now: r.opts.Now, fetch: func(ctx context.Context) (*session, error) {
		c, err := r.stsClient(base)
		if err != nil {
			return nil, fmt.Errorf("assume role %s: %w", roleARN, err)
		}
		res, err := c.AssumeRoleWithOptions(&sts.AssumeRoleRequest{
			RoleArn:         dara.String(roleARN),
			RoleSessionName: dara.String(r.opts.SessionName),
			DurationSeconds: dara.Int64(int64(d / time.Second)),
		}, &dara.RuntimeOptions{})
		if err != nil {
			// an error may quote the string to sign, which holds the base SecurityToken
			return nil, fmt.Errorf("assume role %s: %w", roleARN, redact.Error(AsAPIError("sts", "AssumeRole", err), secretsOf(base)...))
		}
		if res == nil || res.Body == nil || res.Body.Credentials == nil {
			return nil, fmt.Errorf("assume role %s: response has no Credentials", roleARN)
		}
		c2 := res.Body.Credentials
		return newSession(dara.StringValue(c2.AccessKeyId), dara.StringValue(c2.AccessKeySecret), dara.StringValue(c2.SecurityToken), dara.StringValue(c2.Expiration))
	}}
}

// oidcProvider exchanges the RRSA token file for a role session. The file is re-read on
// every refresh, since the kubelet rotates it.
func (r *Resolver) oidcProvider(roleARN, providerARN string) *refreshing {
	return r.oidcTokenProvider(roleARN, providerARN, func() (string, error) {
		tok, err := os.ReadFile(r.opts.TokenFile)
		if err != nil {
			return "", fmt.Errorf("could not read the ServiceAccount token file (%w)", err)
		}
		jwt := strings.TrimSpace(string(tok))
		if jwt == "" {
			return "", fmt.Errorf("ServiceAccount token file %s is empty", r.opts.TokenFile)
		}
		return jwt, nil
	})
}

// oidcTokenProvider exchanges the JWT returned by token (called at every refresh) for a
// role session with AssumeRoleWithOIDC. The JWT never appears in an error.
func (r *Resolver) oidcTokenProvider(roleARN, providerARN string, token func() (string, error)) *refreshing {
	return &refreshing{name: "oidc_role_arn", now: r.opts.Now, fetch: func(ctx context.Context) (*session, error) {
		jwt, err := token()
		if err != nil {
			return nil, fmt.Errorf("RRSA: %w", err)
		}
		c, err := r.stsClient(nil)
		if err != nil {
			return nil, fmt.Errorf("RRSA: %w", err)
		}
		res, err := c.AssumeRoleWithOIDCWithOptions(&sts.AssumeRoleWithOIDCRequest{
			RoleArn:         dara.String(roleARN),
			OIDCProviderArn: dara.String(providerARN),
			OIDCToken:       dara.String(jwt),
			RoleSessionName: dara.String(r.opts.SessionName),
		}, &dara.RuntimeOptions{})
		if err != nil {
			return nil, fmt.Errorf("RRSA: assume role %s with OIDC: %w", roleARN, redact.Error(AsAPIError("sts", "AssumeRoleWithOIDC", err), jwt))
		}
		if res == nil || res.Body == nil || res.Body.Credentials == nil {
			return nil, fmt.Errorf("RRSA: assume role %s: response has no Credentials", roleARN)
		}
		c2 := res.Body.Credentials
		return newSession(dara.StringValue(c2.AccessKeyId), dara.StringValue(c2.AccessKeySecret), dara.StringValue(c2.SecurityToken), dara.StringValue(c2.Expiration))
	}}
}

func newSession(id, secret, token, expiration string) (*session, error) {
	if id == "" || secret == "" {
		return nil, errors.New("response has no AccessKeyId or AccessKeySecret")
	}
	exp, err := time.Parse(time.RFC3339, expiration)
	if err != nil {
		return nil, fmt.Errorf("response Expiration %q is not an RFC 3339 time", expiration)
	}
	return &session{AccessKeyID: id, AccessKeySecret: secret, SecurityToken: token, Expiration: exp}, nil
}

// secretsOf returns the secret parts of a credential's current value (for scrubbing
// messages); nothing if it cannot be read.
func secretsOf(c credentials.Credential) []string {
	if c == nil {
		return nil
	}
	m, err := c.GetCredential()
	if err != nil || m == nil {
		return nil
	}
	return []string{dara.StringValue(m.AccessKeySecret), dara.StringValue(m.SecurityToken)}
}
