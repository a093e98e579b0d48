package app

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/imagesync/creds"
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
			return registry.Credential{}, time.Time{}, err
		}
		res, err := cloudcred.NewResolver(ropts)
		if err != nil {
			return registry.Credential{}, time.Time{}, err
		}
		req := cloudcred.Request{AssumeRoleARN: a.RoleArn, ExpireDuration: time.Hour}
		if a.AccessKeyID != "" {
			req.CustomAccessKey = &cloudcred.AccessKey{ID: a.AccessKeyID, Secret: redact.Secret(a.AccessKeySecret)}
		}
		id, err := res.Resolve(ctx, req)
		if err != nil {
			return registry.Credential{}, time.Time{}, fmt.Errorf("resolve identity: %w", err)
		}
		tok, err := client.AuthorizationToken(ctx, id.Credential(), acr.Instance{ID: a.InstanceID, Region: ropts.Region, Domains: []string{host}})
		if err != nil {
			return registry.Credential{}, time.Time{}, err
		}
		return registry.Credential{Username: tok.Username, Password: tok.Password.Reveal()}, tok.Expiry, nil
	}
}
