package credprovider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/cloudcred"
)

// DefaultCacheMargin is subtracted from a token's remaining life to get the cacheDuration
// the kubelet keeps it for (at most half of the life is subtracted).
const DefaultCacheMargin = 15 * time.Minute

// Options configure a [Provider].
type Options struct {
	// Instances map registry hosts to ACR instances (configuration file, then
	// acr-configuration); hosts of ACR's own domains need no entry when ListInstance is
	// allowed (Enterprise) or always (Personal).
	Instances []Instance
	// ServiceAccount, if not nil, turns on the KEP-4412 ServiceAccount mode.
	ServiceAccount *ServiceAccountOptions
	// Node is the identity of every other request.
	Node NodeIdentity
	// Cloud is the template of the cloudcred resolver (endpoints, metadata, managed role
	// ARN); Region is set per instance.
	Cloud cloudcred.Options
	// ACR is where the Container Registry API is.
	ACR acr.ClientOptions
	// HTTPClient, if set, builds the client of every cloud call the first time one is made
	// (loading a CA bundle costs tens of milliseconds, which an answer from the disk cache
	// need not pay); nil uses Cloud.HTTPClient.
	HTTPClient func() (*http.Client, error)
	// CacheMargin: cacheDuration = remaining token life − min(CacheMargin, life/2).
	CacheMargin time.Duration
	// CacheDir, if set, keeps node-identity tokens between runs in root-only files there
	// (0700 directory, 0600 files), reused until half of their life has passed. Off by
	// default: it writes temporary registry passwords to the node's disk.
	CacheDir string
	// Logger receives one line per request; discarded by default. Nothing secret is logged.
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Provider answers credential requests. It is built once per process (the kubelet runs the
// plugin once per request) and is safe for concurrent use.
type Provider struct {
	opts  Options
	log   *slog.Logger
	cache *diskCache // nil without CacheDir

	initOnce sync.Once
	initErr  error
	acr      *acr.Client

	mu        sync.Mutex
	resolvers map[string]*cloudcred.Resolver // by region
}

// New validates opts and returns a Provider. It makes no network call and loads no CA
// bundle: that happens at the first cloud call.
func New(opts Options) (*Provider, error) {
	if err := opts.ServiceAccount.Validate(); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	if opts.CacheMargin <= 0 {
		opts.CacheMargin = DefaultCacheMargin
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Cloud.Now == nil {
		opts.Cloud.Now = opts.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Cloud.Logger == nil {
		opts.Cloud.Logger = opts.Logger
	}
	// validate the endpoints now (with a default client: cheap) rather than at the first request
	check := opts.ACR
	check.HTTPClient = &http.Client{}
	if _, err := acr.NewClient(check); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	checkCloud := opts.Cloud
	checkCloud.HTTPClient = check.HTTPClient
	if _, err := cloudcred.NewResolver(checkCloud); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	p := &Provider{opts: opts, log: opts.Logger, resolvers: map[string]*cloudcred.Resolver{}}
	if opts.CacheDir != "" {
		var err error
		if p.cache, err = openDiskCache(opts.CacheDir, opts.Now); err != nil {
			return nil, withCode(ExitConfig, err)
		}
	}
	return p, nil
}

// init builds the HTTP client and the Container Registry client on first use.
func (p *Provider) init() error {
	p.initOnce.Do(func() {
		if p.opts.HTTPClient != nil {
			hc, err := p.opts.HTTPClient()
			if err != nil {
				p.initErr = withCode(ExitConfig, err)
				return
			}
			p.opts.Cloud.HTTPClient = hc
		}
		if p.opts.ACR.HTTPClient == nil {
			p.opts.ACR.HTTPClient = p.opts.Cloud.HTTPClient
		}
		c, err := acr.NewClient(p.opts.ACR)
		if err != nil {
			p.initErr = withCode(ExitConfig, err)
			return
		}
		p.acr = c
	})
	return p.initErr
}

func (p *Provider) resolver(region string) (*cloudcred.Resolver, error) {
	if err := p.init(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.resolvers[region]; ok {
		return r, nil
	}
	o := p.opts.Cloud
	o.Region = region
	r, err := cloudcred.NewResolver(o)
	if err != nil {
		return nil, withCode(ExitConfig, err)
	}
	p.resolvers[region] = r
	return r, nil
}

// Credentials answers one request: the instance behind the image's host, the identity (the
// ServiceAccount's role, or the node's), a temporary registry token for the host, cached by
// the kubelet per registry for the token's life minus the margin. With KEP-4412 the kubelet
// adds the ServiceAccount (tokenAttributes.cacheType ServiceAccount) or the token (Token) to
// its cache key, so two ServiceAccounts never share a credential.
func (p *Provider) Credentials(ctx context.Context, req *credentialproviderv1.CredentialProviderRequest) (*credentialproviderv1.CredentialProviderResponse, error) {
	if req == nil {
		return nil, withCode(ExitBadRequest, errors.New("nil request"))
	}
	host, err := ImageHost(req.Image)
	if err != nil {
		return nil, withCode(ExitBadRequest, fmt.Errorf("image: %w", err))
	}
	inst, err := p.match(ctx, req, host)
	if err != nil {
		return nil, err
	}
	creq, source, err := p.identityRequest(req, inst)
	if err != nil {
		return nil, err
	}
	ai := acr.Instance{ID: inst.ID, Region: inst.Region}
	tok, identity, cached, err := p.token(ctx, creq, source, ai)
	if err != nil {
		return nil, withCode(ExitTokenAPI, fmt.Errorf("registry token for %s (instance %s, %s identity %s): %w", host, ai.Key(), source, identity, err))
	}
	now := p.opts.Now()
	life := tok.Expiry.Sub(now)
	if life <= 0 {
		return nil, withCode(ExitTokenAPI, fmt.Errorf("registry token for %s (instance %s) expired at %s on arrival: check the node's clock", host, ai.Key(), tok.Expiry.UTC().Format(time.RFC3339)))
	}
	cache := (life - min(p.opts.CacheMargin, life/2)).Truncate(time.Second)
	p.log.Info("registry token issued", "host", host, "instance", ai.Key(), "instanceSource", inst.Source, "identitySource", string(source),
		"identity", identity, "expiry", tok.Expiry.UTC().Format(time.RFC3339), "cacheDuration", cache.String(), "fromDiskCache", cached)
	return &credentialproviderv1.CredentialProviderResponse{
		CacheKeyType:  credentialproviderv1.RegistryPluginCacheKeyType,
		CacheDuration: &metav1.Duration{Duration: cache},
		Auth:          map[string]credentialproviderv1.AuthConfig{host: {Username: tok.Username, Password: tok.Password.Reveal()}},
	}, nil
}

// token mints a registry token with the identity of creq, or reads a node-identity one from
// the disk cache (no cloud client is built then). identity names the identity for messages.
func (p *Provider) token(ctx context.Context, creq cloudcred.Request, source Source, ai acr.Instance) (tok acr.Token, identity string, cached bool, err error) {
	key := ""
	if p.cache != nil && source == SourceNode {
		key = p.nodeCacheKey(creq, ai)
		if e, ok := p.cache.get(key); ok {
			return acr.Token{Username: e.Username, Password: e.Password, Expiry: e.Expiry, IssuedAt: e.IssuedAt}, e.Identity, true, nil
		}
	}
	id, err := p.identity(ctx, ai.Region, creq)
	if err != nil {
		return acr.Token{}, "", false, err
	}
	tok, err = p.acr.AuthorizationToken(ctx, id.Credential(), ai)
	if err != nil {
		return acr.Token{}, id.Key(), false, err
	}
	if key != "" {
		e := diskEntry{Key: key, Identity: id.Key(), Username: tok.Username, Password: tok.Password, IssuedAt: p.opts.Now(), Expiry: tok.Expiry}
		if err := p.cache.put(e); err != nil {
			p.log.Warn("registry token not cached", "instance", ai.Key(), "err", err)
		}
	}
	return tok, id.Key(), false, nil
}

// nodeCacheKey identifies a node-identity token without building the identity: every input
// of the identity (secrets only as hashes) and the instance. Anything that could change the
// identity changes the key.
func (p *Provider) nodeCacheKey(creq cloudcred.Request, ai acr.Instance) string {
	ak := func(k *cloudcred.AccessKey) string {
		if k == nil {
			return ""
		}
		sum := sha256.Sum256([]byte(k.Secret.Reveal()))
		return k.ID + "#" + hex.EncodeToString(sum[:8])
	}
	c := p.opts.Cloud
	return strings.Join([]string{"v1", ai.Key(), ak(creq.CustomAccessKey), ak(creq.AddonAccessKey), string(creq.TokenMode),
		c.ManagedRoleARN, c.MetadataURL, c.MetadataProxy, c.MetadataRoleName, c.STSEndpoint,
		creq.AssumeRoleARN, strings.Join(creq.AssumeRoleChain, ","), creq.ExpireDuration.String()}, "|")
}

func (p *Provider) identity(ctx context.Context, region string, creq cloudcred.Request) (*cloudcred.Identity, error) {
	r, err := p.resolver(region)
	if err != nil {
		return nil, err
	}
	id, err := r.Resolve(ctx, creq)
	if err != nil {
		return nil, withCode(ExitIdentity, err)
	}
	return id, nil
}

// match finds the instance of host: a configured domain; then, from the host's own shape, a
// configured Personal Edition region or the region's Personal Edition, or the configured
// Enterprise Edition instance of that name — else the configured instances of that region
// whose endpoints (ListInstanceEndpoint) include the host — else ListInstance by name.
func (p *Provider) match(ctx context.Context, req *credentialproviderv1.CredentialProviderRequest, host string) (Instance, error) {
	for _, in := range p.opts.Instances {
		for _, d := range in.Domains {
			if hostMatches(host, d) {
				return in, nil
			}
		}
	}
	reg, ok := ParseRegistry(host)
	if !ok {
		return Instance{}, withCode(ExitUnknownHost, fmt.Errorf("registry %s is not an ACR domain (<name>-registry[-vpc].<region>.cr.aliyuncs.com, registry[-vpc].<region>.aliyuncs.com) and no configured instance lists it in domains", host))
	}
	switch reg.Edition {
	case EditionPersonalInstance:
		return Instance{}, withCode(ExitUnknownHost, fmt.Errorf("registry %s is a Personal Edition instance (crpi-…personal.cr.aliyuncs.com): Alibaba Cloud offers no temporary-token API for those; use a pull Secret with the instance's access credential, or an Enterprise Edition instance", host))
	case EditionPersonal:
		for _, in := range p.opts.Instances {
			if in.Personal() && in.Region == reg.Region {
				return in, nil
			}
		}
		return Instance{Region: reg.Region, Source: "registry domain"}, nil
	}
	var candidates []Instance
	for _, in := range p.opts.Instances {
		if in.Personal() || in.Region != reg.Region {
			continue
		}
		if in.Name == reg.Name {
			return in, nil
		}
		if in.Name == "" && len(in.Domains) == 0 {
			candidates = append(candidates, in)
		}
	}
	var errs []error
	for _, in := range candidates {
		creq, _, err := p.identityRequest(req, in)
		if err != nil {
			return Instance{}, err
		}
		id, err := p.identity(ctx, in.Region, creq)
		if err != nil {
			return Instance{}, err
		}
		domains, err := p.acr.Domains(ctx, id.Credential(), acr.Instance{ID: in.ID, Region: in.Region})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", in.ID, in.Source, err))
			continue
		}
		for _, d := range domains {
			if hostMatches(host, d) {
				return in, nil
			}
		}
	}
	// ListInstance with the request's identity, without any instance's hop or key
	creq, _, err := p.identityRequest(req, Instance{Region: reg.Region})
	if err != nil {
		return Instance{}, err
	}
	id, err := p.identity(ctx, reg.Region, creq)
	if err != nil {
		return Instance{}, err
	}
	instID, err := p.acr.InstanceIDByName(ctx, id.Credential(), reg.Region, reg.Name)
	if err == nil {
		return Instance{ID: instID, Region: reg.Region, Name: reg.Name, Source: "ListInstance"}, nil
	}
	errs = append(errs, err)
	code := ExitTokenAPI
	var ae *acr.APIError
	if errors.Is(err, acr.ErrInstanceNotFound) || errors.As(err, &ae) && ae.IsPermission() {
		code = ExitUnknownHost
	}
	return Instance{}, withCode(code, fmt.Errorf("no configured instance serves %s (instance name %q in %s); add it to the configuration (instances: name and instanceId) or allow cr:ListInstance: %w",
		host, reg.Name, reg.Region, errors.Join(errs...)))
}
