package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/controller/pullsecret"
	"github.com/ferrypull/ferry/internal/redact"
)

// cloudTokens is the production TokenSource: the identity of each acr-registry-info entry from
// internal/cloudcred (documented precedence: customAccessKey, RRSA, alibaba-addon-secret,
// tokenMode; then assumeRoleARN), tokens from the internal/acr single-flight cache.
type cloudTokens struct {
	resolver *cloudcred.Resolver
	cache    *acr.Cache
	reader   client.Reader
	addonKey *types.NamespacedName
	addonTTL time.Duration

	mu      sync.Mutex
	addon   *cloudcred.AccessKey
	addonAt time.Time
}

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

// newTokenSource builds the token client from the flags.
func newTokenSource(ctx context.Context, o *Options, reader client.Reader) (pullsecret.TokenSource, error) {
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
	})
	if err != nil {
		return nil, fmt.Errorf("--sts-endpoint/--metadata-endpoint: %w", err)
	}
	m, err := acr.NewPrometheusMetrics(metrics.Registry)
	if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
		// A second helper in the same process (tests): the first one's collectors stay exported.
		m, err = acr.NewPrometheusMetrics(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("register token metrics: %w", err)
	}
	t := &cloudTokens{resolver: r, cache: acr.NewCache(c, acr.CacheOptions{Metrics: m, Logger: slogger}), reader: reader, addonTTL: o.AddonRefresh}
	if ns, name, ok := strings.Cut(o.AddonSecret, "/"); ok {
		t.addonKey = &types.NamespacedName{Namespace: ns, Name: name}
	}
	return t, nil
}

// Token implements pullsecret.TokenSource.
func (t *cloudTokens) Token(ctx context.Context, inst pullsecret.Instance, minValidity time.Duration) (pullsecret.Token, error) {
	src, ok := inst.Source.(pullsecret.ACRSource)
	if !ok {
		return pullsecret.Token{}, fmt.Errorf("instance %s: no acr-registry-info entry attached", inst.Key())
	}
	addon, err := t.addonAccessKey(ctx)
	if err != nil {
		return pullsecret.Token{}, err
	}
	id, err := t.resolver.Resolve(ctx, cloudcred.RequestFor(src.Config, src.Entry, addon))
	if err != nil {
		return pullsecret.Token{}, fmt.Errorf("identity for %s: %w", inst.Key(), err)
	}
	tok, err := t.cache.Token(ctx, id, acr.InstanceFor(src.Entry), minValidity)
	if err != nil {
		if a := acr.MissingAction(err); a != "" {
			return pullsecret.Token{}, fmt.Errorf("identity %s lacks RAM permission %s: %w", id.Key(), a, err)
		}
		return pullsecret.Token{}, fmt.Errorf("token with identity %s: %w", id.Key(), err)
	}
	return pullsecret.Token{Username: tok.Username, Password: tok.Password.Reveal(), ExpiresAt: tok.Expiry,
		Domains: tok.Domains, RetryAt: tok.RetryAt}, nil
}

// addonAccessKey reads kube-system/alibaba-addon-secret (uncached; at most once a minute).
// A missing Secret is not an error: the next source in the precedence applies.
func (t *cloudTokens) addonAccessKey(ctx context.Context) (*cloudcred.AccessKey, error) {
	if t.addonKey == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.addonAt.IsZero() && time.Since(t.addonAt) < t.addonTTL {
		return t.addon, nil
	}
	s := &corev1.Secret{}
	err := t.reader.Get(ctx, *t.addonKey, s)
	switch {
	case apierrors.IsNotFound(err):
		t.addon = nil
	case err != nil:
		if t.addon != nil { // keep using the last known key through an apiserver hiccup
			return t.addon, nil
		}
		return nil, fmt.Errorf("read Secret %s: %w", t.addonKey, err)
	default:
		id, secret := strings.TrimSpace(string(s.Data["access-key-id"])), strings.TrimSpace(string(s.Data["access-key-secret"]))
		if id == "" || secret == "" {
			return nil, errors.New("Secret " + t.addonKey.String() + ": access-key-id and access-key-secret must both be set")
		}
		t.addon = &cloudcred.AccessKey{ID: id, Secret: redact.Secret(secret)}
	}
	t.addonAt = time.Now()
	return t.addon, nil
}
