package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/pullsecret"
)

// tokenMetrics are the internal/acr cache's collectors on controller-runtime's process-global
// registry: created once per process, like the registry itself.
var tokenMetrics = sync.OnceValues(func() (*acr.PrometheusMetrics, error) {
	return acr.NewPrometheusMetrics(metrics.Registry)
})

// splitEndpoint turns "https://host:port", "http://host:port" or "host:port" into the host and
// protocol the SDK clients want.
func splitEndpoint(v string) (host, protocol string) {
	switch {
	case strings.HasPrefix(v, "http://"):
		return strings.TrimSuffix(strings.TrimPrefix(v, "http://"), "/"), "http"
	case strings.HasPrefix(v, "https://"):
		return strings.TrimSuffix(strings.TrimPrefix(v, "https://"), "/"), "https"
	}
	return v, ""
}

// newCloudTokens wires the flags to the shared token source (internal/pullsecret.CloudTokens).
func newCloudTokens(ctx context.Context, o *Options, reader client.Reader, store *pullsecret.Store) (*pullsecret.CloudTokens, error) {
	hc, err := cloudcred.NewHTTPClient(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file %s: %w", o.CAFile, err)
	}
	slogger := slog.New(logr.ToSlogHandler(logr.FromContextOrDiscard(ctx).WithName("cloud")))
	crHost, crProto := splitEndpoint(o.CREndpoint)
	c, err := acr.NewClient(acr.ClientOptions{Endpoint: crHost, Protocol: crProto, VPC: o.VPC, DialAddr: o.CloudDialAddr, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("--cr-endpoint/--cloud-dial-address: %w", err)
	}
	stsHost, stsProto := splitEndpoint(o.STSEndpoint)
	r, err := cloudcred.NewResolver(cloudcred.Options{
		Region: o.Region, VPC: o.VPC, STSEndpoint: stsHost, STSProtocol: stsProto, HTTPClient: hc,
		MetadataURL: o.MetadataEndpoint, MetadataProxy: o.MetadataProxy, TokenFile: o.RRSATokenFile, Logger: slogger,
		ManagedRoleARN: o.ManagedRoleARN,
	})
	if err != nil {
		return nil, fmt.Errorf("--sts-endpoint/--metadata-endpoint: %w", err)
	}
	m, err := tokenMetrics()
	if err != nil {
		return nil, fmt.Errorf("register token metrics: %w", err)
	}
	mode, _ := acrconfig.ParseTokenMode(o.TokenMode)
	t := &pullsecret.CloudTokens{Resolver: r, Cache: acr.NewCache(c, acr.CacheOptions{Metrics: m, Logger: slogger}),
		Reader: reader, AddonTTL: o.AddonRefresh, Store: store, TokenMode: mode}
	if ns, name, ok := strings.Cut(o.AddonSecret, "/"); ok {
		t.AddonSecret = &types.NamespacedName{Namespace: ns, Name: name}
	}
	return t, nil
}
