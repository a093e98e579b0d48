// Package app is the acr-emulator command: flags, world loading and the
// emulator's lifetime.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/operator"
)

// Flags are the command's options.
type Flags struct {
	Config          string
	DataDir         string
	InfoFile        string
	HostsFile       string
	OpenAPIAddr     string
	OpenAPITLSAddr  string
	MetadataAddr    string
	RegistryAddr    string
	RegistryTLSAddr string
	TokenTTL        time.Duration
	BearerTTL       time.Duration
	BareDomains     bool
	DefaultInstance string
	OIDCIssuer      string
	OIDCJWKSURL     string
	OIDCJWKSFile    string
	OIDCCAFile      string
	OIDCBearerFile  string
	ECISocket       string
	ECIHostsDir     string

	// The operator surface every ferry binary shares (--log-format, -v).
	operator.Logging
}

// RunFunc runs the emulator with the parsed flags until ctx ends; the ready line goes to
// s.Out, logs to s.Err.
type RunFunc func(ctx context.Context, f *Flags, s operator.Streams) error

// NewCommand returns the acr-emulator command (the shape every ferry binary has). It runs
// until the command's context ends.
func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command {
	f := &Flags{Logging: operator.Logging{Format: operator.FormatText}}
	cmd := operator.Command("acr-emulator",
		"A local Alibaba Cloud Container Registry (registries, token realm, OpenAPI, STS, ECS metadata)",
		`acr-emulator serves, on loopback listeners, an emulated Alibaba Cloud world:
Container Registry Enterprise and Personal Edition registries (distribution/v3 with
filesystem storage under --data-dir) behind a Docker token realm that applies RAM
policies, the Container Registry OpenAPI 2018-12-01 and STS 2015-04-01 (plain HTTP
and HTTPS), ECS instance metadata (usable as the HTTP proxy for 100.100.100.200),
and, with --eci-containerd-socket, the ECI API 2018-08-08 running container groups
and image caches on that containerd.

Registry domains such as ferry-a-registry.cn-hangzhou.cr.aliyuncs.com are advertised
with the TLS registry listener's port (unless --bare-domains); point them at
127.0.0.1 with the lines written to --hosts-file. Once every listener is ready the
--info-file JSON names every endpoint, the CA file, identities and instances.`,
		s, args, func(cmd *cobra.Command) error {
			if err := f.Logging.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), f, s)
		})
	fl := cmd.Flags()
	fl.StringVar(&f.Config, "config", "", "world file (YAML or JSON: accounts, users, roles, policies, OIDC providers, instances); default: the built-in demo world")
	fl.StringVar(&f.DataDir, "data-dir", "acr-emulator-data", "directory for registry storage (<data-dir>/<instanceId>), the CA (ca.crt, ca.key) and the token signing key; reused across restarts")
	fl.StringVar(&f.InfoFile, "info-file", "", "write the info JSON (endpoints, caFile, accounts, instances) here once every listener is ready (mode 0600: it holds secrets)")
	fl.StringVar(&f.HostsFile, "hosts-file", "", "write '127.0.0.1 <domain>' lines for every registry domain here, to append to /etc/hosts")
	fl.StringVar(&f.OpenAPIAddr, "openapi-addr", "127.0.0.1:0", "plain-HTTP OpenAPI (CR, STS) listen address; loopback only, port 0 picks a free port")
	fl.StringVar(&f.OpenAPITLSAddr, "openapi-tls-addr", "127.0.0.1:0", "HTTPS OpenAPI listen address")
	fl.StringVar(&f.MetadataAddr, "metadata-addr", "127.0.0.1:0", "ECS instance metadata (HTTP, also an HTTP proxy target) listen address")
	fl.StringVar(&f.RegistryAddr, "registry-addr", "127.0.0.1:0", "plain-HTTP registry listen address")
	fl.StringVar(&f.RegistryTLSAddr, "registry-tls-addr", "127.0.0.1:0", "HTTPS registry listen address; its port is appended to every advertised domain unless --bare-domains")
	fl.DurationVar(&f.TokenTTL, "token-ttl", 0, "lifetime of registry AuthorizationTokens (GetAuthorizationToken, /tokens); 0 keeps the world's (default 1h)")
	fl.DurationVar(&f.BearerTTL, "bearer-ttl", 10*time.Minute, "lifetime of the registry bearer tokens (JWTs) the token realm issues")
	fl.BoolVar(&f.BareDomains, "bare-domains", false, "advertise domains without a port (when the TLS registry listener is on :443)")
	fl.StringVar(&f.DefaultInstance, "default-instance", "", "instance (ID or name) served to requests addressed to a bare IP without X-Ferry-Registry-Host or ns=; default the first")
	fl.StringVar(&f.OIDCIssuer, "oidc-issuer", "", "issuer URL of the demo world's RRSA OIDC provider (e.g. a kube-apiserver's --service-account-issuer)")
	fl.StringVar(&f.OIDCJWKSURL, "oidc-jwks-url", "", "JWKS URL of the demo world's RRSA OIDC provider (e.g. https://127.0.0.1:6443/openid/v1/jwks)")
	fl.StringVar(&f.OIDCJWKSFile, "oidc-jwks-file", "", "JWKS file of the demo world's RRSA OIDC provider")
	fl.StringVar(&f.OIDCCAFile, "oidc-ca-file", "", "CA bundle for fetching --oidc-jwks-url")
	fl.StringVar(&f.OIDCBearerFile, "oidc-bearer-token-file", "", "bearer token file for fetching --oidc-jwks-url")
	fl.StringVar(&f.ECISocket, "eci-containerd-socket", "", "CRI socket of the containerd that runs ECI container groups and image caches (CreateContainerGroup, CreateImageCache); without it the ECI actions answer ECIRuntimeNotConfigured")
	fl.StringVar(&f.ECIHostsDir, "eci-containerd-hosts-dir", "", "that containerd's registry config_path (hosts.toml directory): the emulator trusts its CA there for its registry domains and sets up PlainHttpRegistry / InsecureRegistry hosts for one pull at a time")
	f.Logging.AddFlags(fl)
	f.Logging.AddDeprecatedLevelFlag(fl)
	return cmd
}

// Run starts the emulator and serves until ctx ends.
func Run(ctx context.Context, f *Flags, s operator.Streams) error {
	w, err := loadWorld(f)
	if err != nil {
		return err
	}
	logger := f.Logging.Logger(s.Err, worldSecrets(w)...)
	emu, err := emulator.New(w, emulator.Options{
		DataDir: f.DataDir, InfoFile: f.InfoFile, HostsFile: f.HostsFile,
		OpenAPIAddr: f.OpenAPIAddr, OpenAPITLSAddr: f.OpenAPITLSAddr, MetadataAddr: f.MetadataAddr,
		RegistryAddr: f.RegistryAddr, RegistryTLSAddr: f.RegistryTLSAddr,
		BareDomains: f.BareDomains, DefaultInstance: f.DefaultInstance, RegistryTokenTTL: f.BearerTTL,
		Logger: logger, ECIContainerdSocket: f.ECISocket, ECIContainerdHostsDir: f.ECIHostsDir,
	})
	if err != nil {
		return err
	}
	if err := emu.Start(ctx); err != nil {
		return err
	}
	info := emu.Info()
	fmt.Fprintf(s.Out, "acr-emulator ready: openapi http://%s https://%s, registry http://%s https://%s, metadata %s, CA %s\n",
		info.OpenAPIEndpoint, info.OpenAPITLSEndpoint, info.RegistryEndpoint, info.RegistryTLSEndpoint, info.MetadataProxy, info.CAFile)
	<-ctx.Done()
	logger.Info("shutting down")
	return emu.Close()
}

func loadWorld(f *Flags) (*world.World, error) {
	oidcSet := f.OIDCIssuer != "" || f.OIDCJWKSURL != "" || f.OIDCJWKSFile != "" || f.OIDCCAFile != "" || f.OIDCBearerFile != ""
	if f.Config != "" {
		if oidcSet {
			return nil, errors.New("--oidc-* flags configure the built-in demo world; with --config set the provider in the world file")
		}
		w, err := world.Load(f.Config)
		if err != nil {
			return nil, err
		}
		if f.TokenTTL > 0 {
			w.TokenTTL = world.Duration(f.TokenTTL)
			if err := w.Finalize(); err != nil {
				return nil, fmt.Errorf("--token-ttl: %w", err)
			}
		}
		return w, nil
	}
	if f.OIDCJWKSURL != "" && f.OIDCJWKSFile != "" {
		return nil, errors.New("--oidc-jwks-url and --oidc-jwks-file are mutually exclusive")
	}
	return world.Default(world.DefaultOptions{
		OIDCIssuer: f.OIDCIssuer, OIDCJWKSURL: f.OIDCJWKSURL, OIDCJWKSFile: f.OIDCJWKSFile,
		OIDCCAFile: f.OIDCCAFile, OIDCBearerTokenFile: f.OIDCBearerFile, TokenTTL: f.TokenTTL,
	})
}

// worldSecrets lists the world's AccessKey secrets and passwords so the log
// handler can scrub them wherever they might appear.
func worldSecrets(w *world.World) []string {
	var out []string
	for _, a := range w.Accounts {
		for _, k := range a.AccessKeys {
			out = append(out, k.Secret)
		}
		for _, u := range a.Users {
			out = append(out, u.Password)
			for _, k := range u.AccessKeys {
				out = append(out, k.Secret)
			}
		}
	}
	return out
}
