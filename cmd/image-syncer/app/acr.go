package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/imagesync/creds"
	"github.com/ferrypull/ferry/internal/imagesync/plan"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/registry"
)

// ACRConfig is the base configuration for minting ACR tokens; an auth entry's endpoint,
// stsEndpoint and regionId override it.
type ACRConfig struct {
	Client   acr.ClientOptions
	Resolver cloudcred.Options
}

// NewACRToken mints a temporary registry credential for an auth entry with ACR RAM credentials:
// the AccessKey (or, without one, the ECS worker role), optionally a role assumed on top, then
// GetAuthorizationToken for the entry's instance (Personal Edition when instanceId is empty).
func NewACRToken(base ACRConfig) creds.ACRTokenFunc {
	return func(ctx context.Context, host string, a config.Auth) (registry.Credential, time.Time, error) {
		client, id, region, err := acrIdentity(ctx, base, a)
		if err != nil {
			return registry.Credential{}, time.Time{}, err
		}
		tok, err := client.AuthorizationToken(ctx, id.Credential(), acr.Instance{ID: a.InstanceID, Region: region, Domains: []string{host}})
		if err != nil {
			return registry.Credential{}, time.Time{}, err
		}
		return registry.Credential{Username: tok.Username, Password: tok.Password.Reveal()}, tok.Expiry, nil
	}
}

// acrIdentity builds the OpenAPI client and resolves the identity of an auth entry with ACR RAM
// credentials (its endpoint, stsEndpoint and regionId override base).
func acrIdentity(ctx context.Context, base ACRConfig, a config.Auth) (*acr.Client, *cloudcred.Identity, string, error) {
	copts, ropts := base.Client, base.Resolver
	if a.Endpoint != "" {
		copts.Endpoint, copts.DialAddr = a.Endpoint, ""
	}
	if a.RegionID != "" {
		ropts.Region = a.RegionID
	}
	if a.STSEndpoint != "" {
		ropts.STSEndpoint = a.STSEndpoint
	}
	client, err := acr.NewClient(copts)
	if err != nil {
		return nil, nil, "", err
	}
	res, err := cloudcred.NewResolver(ropts)
	if err != nil {
		return nil, nil, "", err
	}
	req := cloudcred.Request{AssumeRoleARN: a.RoleArn, ExpireDuration: time.Hour}
	if a.AccessKeyID != "" {
		req.CustomAccessKey = &cloudcred.AccessKey{ID: a.AccessKeyID, Secret: redact.Secret(a.AccessKeySecret)}
	}
	id, err := res.Resolve(ctx, req)
	if err != nil {
		return nil, nil, "", fmt.Errorf("resolve identity: %w", err)
	}
	return client, id, ropts.Region, nil
}

// acrLister lists the sources whose auth entry holds ACR RAM credentials and an Enterprise
// instanceId through the ACR OpenAPI — ListRepository for namespace rules, ListRepoTag for tags —
// instead of the registry's /v2/_catalog (which ACR does not serve to RAM users) and tags list;
// every other registry is listed by next (the engine).
type acrLister struct {
	next plan.Lister
	base ACRConfig
	auth config.AuthFile

	mu     sync.Mutex
	ids    map[string]string // registry/namespace/name → RepoId
	idents map[string]*listIdentity
}

// listIdentity is an auth entry's client and identity, resolved once per run.
type listIdentity struct {
	client *acr.Client
	id     *cloudcred.Identity
	inst   acr.Instance
}

func (l *acrLister) identity(ctx context.Context, host string, a config.Auth) (*listIdentity, error) {
	l.mu.Lock()
	li := l.idents[host]
	l.mu.Unlock()
	if li != nil {
		return li, nil
	}
	client, id, region, err := acrIdentity(ctx, l.base, a)
	if err != nil {
		return nil, err
	}
	li = &listIdentity{client: client, id: id, inst: acr.Instance{ID: a.InstanceID, Region: region}}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idents == nil {
		l.idents = map[string]*listIdentity{}
	}
	l.idents[host] = li
	return li, nil
}

var (
	_ plan.Lister          = (*acrLister)(nil)
	_ plan.NamespaceLister = (*acrLister)(nil)
)

// entry returns the ACR auth entry of a registry host, if it has one.
func (l *acrLister) entry(host string) (config.Auth, bool) {
	a, ok := l.auth[host]
	return a, ok && a.HasACR() && a.InstanceID != ""
}

// Repositories lists namespace ns ("" = all) of registry reg.
func (l *acrLister) Repositories(ctx context.Context, reg, ns string) ([]string, error) {
	a, ok := l.entry(reg)
	if !ok {
		if nl, ok := l.next.(plan.NamespaceLister); ok {
			return nl.Repositories(ctx, reg, ns)
		}
		return l.next.Catalog(ctx, reg)
	}
	li, err := l.identity(ctx, reg, a)
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(ns, "/") // an ACR namespace is one path component
	repos, err := li.client.Repositories(ctx, li.id.Credential(), li.inst, first)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = map[string]string{}
	}
	var out []string
	for _, r := range repos {
		n := r.Namespace + "/" + r.Name
		l.ids[reg+"/"+n] = r.ID
		out = append(out, n)
	}
	return out, nil
}

// Catalog lists every repository of registry reg.
func (l *acrLister) Catalog(ctx context.Context, reg string) ([]string, error) {
	if _, ok := l.entry(reg); ok {
		return l.Repositories(ctx, reg, "")
	}
	return l.next.Catalog(ctx, reg)
}

// Tags lists the tags of registry/namespace/name.
func (l *acrLister) Tags(ctx context.Context, repo string) ([]string, error) {
	reg, path, _ := strings.Cut(repo, "/")
	a, ok := l.entry(reg)
	if !ok {
		return l.next.Tags(ctx, repo)
	}
	l.mu.Lock()
	id, known := l.ids[repo]
	l.mu.Unlock()
	if !known {
		ns, _, _ := strings.Cut(path, "/")
		if _, err := l.Repositories(ctx, reg, ns); err != nil {
			return nil, err
		}
		l.mu.Lock()
		id, known = l.ids[repo]
		l.mu.Unlock()
		if !known {
			return nil, fmt.Errorf("acr: repository %s not found in instance %s (ListRepository)", path, a.InstanceID)
		}
	}
	li, err := l.identity(ctx, reg, a)
	if err != nil {
		return nil, err
	}
	return li.client.RepoTags(ctx, li.id.Credential(), li.inst, id)
}
