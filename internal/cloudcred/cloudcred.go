// Package cloudcred resolves the Alibaba Cloud identity a registry token is requested with:
// a per-instance customAccessKey, RRSA (a projected ServiceAccount token exchanged with
// AssumeRoleWithOIDC), the AccessKey of kube-system/alibaba-addon-secret, the node's worker
// role from ECS instance metadata, or a managed role — with an optional assumeRoleARN chained
// on top. The result is an [Identity] whose [Identity.Credential] plugs into the official SDKs.
//
// Every endpoint defaults to the real Alibaba Cloud and can be pointed at acr-emulator:
//
//	r, _ := cloudcred.NewResolver(cloudcred.Options{
//		Region:      "cn-hangzhou",
//		STSEndpoint: "127.0.0.1:8443",            // default sts[-vpc].<region>.aliyuncs.com
//		HTTPClient:  client,                      // trusts the emulator's CA
//		MetadataURL: "http://127.0.0.1:9000",     // default http://100.100.100.200
//	})
//	id, _ := r.Resolve(ctx, cloudcred.RequestFor(cfg, inst, addonKey))
//	crClient, _ := cr.NewClient(&openapi.Config{Credential: id.Credential(), …})
//
// A ServiceAccount token handed over in memory ([Request.ServiceAccountToken], as a kubelet
// credential provider receives it) wins over every source below.
//
// Precedence (docs/configuration.md): customAccessKey, then RRSA (rrsa.enable and both
// ARNs), then the add-on Secret, then tokenMode (managedRole or workerRole; auto picks
// managedRole when a managed role ARN is configured). assumeRoleARN, when set, is assumed
// with the chosen identity for expireDuration seconds.
package cloudcred

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/redact"
)

// Kind names a credential source.
type Kind string

// Credential sources, in precedence order, plus the chained assume-role step.
const (
	KindCustomAccessKey Kind = "customAccessKey"
	KindRRSA            Kind = "rrsa"
	// KindServiceAccountToken is RRSA with a ServiceAccount token held in memory (handed to
	// a kubelet credential provider by the kubelet, KEP-4412) instead of a token file.
	KindServiceAccountToken Kind = "serviceAccountToken"
	KindAddonSecret         Kind = "addonSecret"
	KindManagedRole         Kind = "managedRole"
	KindWorkerRole          Kind = "workerRole"
	KindAssumeRole          Kind = "assumeRole"
)

// DefaultTokenFile is where ACK projects the RRSA ServiceAccount token.
const DefaultTokenFile = "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"

// DefaultSessionName is the RoleSessionName of every AssumeRole/AssumeRoleWithOIDC call.
const DefaultSessionName = "ferry-acr-credential-helper"

// DefaultMetadataURL is the ECS instance metadata service.
const DefaultMetadataURL = "http://100.100.100.200"

// AccessKey is a long-term AccessKey pair (from kube-system/alibaba-addon-secret or a
// customAccessKey entry).
type AccessKey struct {
	ID     string
	Secret redact.Secret
}

// Options configure a [Resolver]. The zero value talks to the real Alibaba Cloud from
// inside an ECS instance in no particular region.
type Options struct {
	// Region selects the STS endpoint sts.<region>.aliyuncs.com (sts.aliyuncs.com if empty).
	Region string
	// VPC selects sts-vpc.<region>.aliyuncs.com.
	VPC bool
	// STSEndpoint overrides the STS host[:port].
	STSEndpoint string
	// STSProtocol is "https" (default) or "http".
	STSProtocol string
	// HTTPClient is used for STS and metadata calls; nil uses [NewHTTPClient]("").
	HTTPClient *http.Client
	// MetadataURL overrides the ECS metadata base URL (default http://100.100.100.200).
	MetadataURL string
	// MetadataProxy, if set, is an HTTP proxy URL through which the metadata URL is reached
	// (acr-emulator serves 100.100.100.200 as a proxy).
	MetadataProxy string
	// MetadataRoleName skips the role-name lookup.
	MetadataRoleName string
	// DisableIMDSv1 refuses the tokenless fallback (ECS security-hardening mode).
	DisableIMDSv1 bool
	// TokenFile is the RRSA ServiceAccount token file (default [DefaultTokenFile]); it is
	// re-read at every refresh.
	TokenFile string
	// SessionName is the RoleSessionName (default [DefaultSessionName]).
	SessionName string
	// ManagedRoleARN is the role assumed in managedRole mode (and selected by auto).
	ManagedRoleARN string
	// Logger receives debug lines; discarded by default. Nothing secret is logged.
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// NewHTTPClient returns an HTTP client that trusts the system roots plus the PEM
// certificates in caFile (if not empty), honours HTTP(S)_PROXY, and times out after 30 s.
func NewHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// Identity is a resolved credential source. It is safe for concurrent use and caches its
// STS session until half of its life has passed.
type Identity struct {
	key   string
	kind  Kind
	chain []string
	cred  credentials.Credential
	hash  string // hash of the secrets below this identity; distinguishes rotated keys
}

func (i *Identity) secretsHash() string { return i.hash }

// Key identifies the identity for caching: source kind, ARN chain and AccessKey ID — never a
// secret. Two entries with equal keys get the same registry tokens.
func (i *Identity) Key() string { return i.key }

// Kind is the base source (the first link of the chain).
func (i *Identity) Kind() Kind { return i.kind }

// Chain describes each step, e.g. ["workerRole", "assumeRole:acs:ram::2:role/pull"].
func (i *Identity) Chain() []string { return append([]string(nil), i.chain...) }

// Credential is the credentials-go Credential to hand to an SDK client.
func (i *Identity) Credential() credentials.Credential { return i.cred }

// String is the key.
func (i *Identity) String() string { return i.key }

// LogValue lets slog print the identity without any secret.
func (i *Identity) LogValue() slog.Value { return slog.StringValue(i.key) }

// Request is what one acr-registry-info entry needs.
type Request struct {
	// ServiceAccountToken, when set, is exchanged with AssumeRoleWithOIDC for RRSARoleARN
	// through RRSAOIDCProviderARN (both required; RRSAEnabled is not needed) and wins over
	// every other source. It is the token a kubelet hands to a credential provider
	// (KEP-4412), held in memory instead of read from TokenFile.
	ServiceAccountToken redact.Secret
	CustomAccessKey     *AccessKey
	// RRSA is used when Enabled and both ARNs are set.
	RRSAEnabled         bool
	RRSARoleARN         string
	RRSAOIDCProviderARN string
	// AddonAccessKey comes from kube-system/alibaba-addon-secret (nil if absent).
	AddonAccessKey *AccessKey
	TokenMode      acrconfig.TokenMode
	// AssumeRoleARN, if set, is assumed on top of the base identity for ExpireDuration.
	AssumeRoleARN string
	// AssumeRoleChain are further roles, assumed in order after AssumeRoleARN: each hop calls
	// AssumeRole with the previous hop's session (ECI's acr-service-arns then acr-user-arns).
	AssumeRoleChain []string
	ExpireDuration  time.Duration
}

// RequestFor builds the request for one configured instance.
func RequestFor(cfg *acrconfig.Config, inst acrconfig.Instance, addon *AccessKey) Request {
	r := Request{
		RRSAEnabled:         cfg.RRSA.Enable,
		RRSARoleARN:         inst.RRSARoleARN,
		RRSAOIDCProviderARN: inst.RRSAOIDCProviderARN,
		AddonAccessKey:      addon,
		TokenMode:           cfg.TokenMode,
		AssumeRoleARN:       inst.AssumeRoleARN,
		ExpireDuration:      inst.ExpireDuration,
	}
	if inst.HasCustomAccessKey() {
		r.CustomAccessKey = &AccessKey{ID: inst.CustomAccessKeyID, Secret: inst.CustomAccessKeySecret}
	}
	return r
}

// Resolver builds identities and keeps one per key, so STS sessions are shared by every
// instance and namespace that resolves to the same identity.
type Resolver struct {
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	byID map[string]*Identity // internal key (includes a hash of secrets) → identity
}

// NewResolver validates opts and returns a Resolver.
func NewResolver(opts Options) (*Resolver, error) {
	var err error
	if opts.STSEndpoint, opts.STSProtocol, err = ResolveEndpoint(opts.STSEndpoint, opts.STSProtocol); err != nil {
		return nil, fmt.Errorf("cloudcred: STS %w", err)
	}
	if opts.STSEndpoint == "" {
		opts.STSEndpoint = STSEndpoint(opts.Region, opts.VPC)
	}
	if opts.HTTPClient == nil {
		c, err := NewHTTPClient("")
		if err != nil {
			return nil, err
		}
		opts.HTTPClient = c
	}
	if opts.MetadataURL == "" {
		opts.MetadataURL = DefaultMetadataURL
	}
	if opts.TokenFile == "" {
		opts.TokenFile = DefaultTokenFile
	}
	if opts.SessionName == "" {
		opts.SessionName = DefaultSessionName
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{opts: opts, log: log, byID: map[string]*Identity{}}, nil
}

// SplitEndpoint accepts "host[:port]" or an "http(s)://host[:port]" URL (as flags are often
// written) and returns the host[:port] and the scheme ("" when none was given).
func SplitEndpoint(s string) (host, scheme string, err error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/?#@ ") {
			return "", "", fmt.Errorf("%q is not host[:port]", s)
		}
		return s, "", nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL", redact.URL(s))
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", "", fmt.Errorf("%q: scheme must be http or https", redact.URL(s))
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("%q must be scheme://host[:port] with no path, query or credentials", redact.URL(s))
	}
	return u.Host, scheme, nil
}

// ResolveEndpoint splits endpoint with SplitEndpoint and settles the
// protocol: a scheme in endpoint must agree with protocol when both are given
// (case-insensitively), and the default is https. It returns host[:port] and
// "http" or "https".
func ResolveEndpoint(endpoint, protocol string) (host, proto string, err error) {
	host, scheme, err := SplitEndpoint(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("endpoint: %w", err)
	}
	proto = protocol
	if scheme != "" {
		if proto != "" && !strings.EqualFold(proto, scheme) {
			return "", "", fmt.Errorf("endpoint %q conflicts with protocol %q", scheme+"://"+host, proto)
		}
		proto = scheme
	}
	if proto == "" {
		proto = "https"
	}
	proto = strings.ToLower(proto)
	if proto != "https" && proto != "http" {
		return "", "", fmt.Errorf("protocol %q must be http or https", proto)
	}
	return host, proto, nil
}

// STSEndpoint returns the real STS host for a region: sts.<region>.aliyuncs.com, or
// sts-vpc.<region>.aliyuncs.com inside a VPC, or sts.aliyuncs.com without a region.
func STSEndpoint(region string, vpc bool) string {
	switch {
	case region == "":
		return "sts.aliyuncs.com"
	case vpc:
		return "sts-vpc." + region + ".aliyuncs.com"
	default:
		return "sts." + region + ".aliyuncs.com"
	}
}

// ErrNoSource means no credential source applies (documented precedence exhausted).
var ErrNoSource = fmt.Errorf("cloudcred: no credential source")

// Resolve returns the identity for req, reusing an existing one with the same key. It does
// not call the cloud: credentials are fetched lazily, on first use.
func (r *Resolver) Resolve(ctx context.Context, req Request) (*Identity, error) {
	_ = ctx
	base, err := r.base(req)
	if err != nil {
		return nil, err
	}
	id := base
	d := req.ExpireDuration
	if d == 0 {
		d = acrconfig.DefaultExpireDuration
	}
	roles := req.AssumeRoleChain
	if req.AssumeRoleARN != "" {
		roles = append([]string{req.AssumeRoleARN}, roles...)
	}
	for _, arn := range roles {
		if arn == "" {
			return nil, fmt.Errorf("%w: empty role ARN in the AssumeRole chain", ErrNoSource)
		}
		prev := id
		link := fmt.Sprintf("%s:%s:%ds", KindAssumeRole, arn, int64(d/time.Second))
		id = r.intern(prev.key+">"+link, prev.secretsHash(), func() *Identity {
			p := r.assumeRoleProvider(prev.cred, arn, d)
			return &Identity{kind: prev.kind, chain: append(prev.Chain(), link),
				cred: credentials.FromCredentialsProvider("ram_role_arn", p)}
		})
	}
	r.log.Debug("resolved identity", "identity", id.key)
	return id, nil
}

func (r *Resolver) base(req Request) (*Identity, error) {
	if !req.ServiceAccountToken.IsZero() {
		return r.serviceAccountToken(req)
	}
	switch {
	case req.CustomAccessKey != nil && req.CustomAccessKey.ID != "" && !req.CustomAccessKey.Secret.IsZero():
		return r.accessKey(KindCustomAccessKey, *req.CustomAccessKey)
	case req.RRSAEnabled && req.RRSARoleARN != "" && req.RRSAOIDCProviderARN != "":
		key := fmt.Sprintf("%s:%s:%s", KindRRSA, req.RRSAOIDCProviderARN, req.RRSARoleARN)
		return r.intern(key, "", func() *Identity {
			p := r.oidcProvider(req.RRSARoleARN, req.RRSAOIDCProviderARN)
			return &Identity{kind: KindRRSA, chain: []string{key}, cred: credentials.FromCredentialsProvider("oidc_role_arn", p)}
		}), nil
	case req.AddonAccessKey != nil && req.AddonAccessKey.ID != "" && !req.AddonAccessKey.Secret.IsZero():
		return r.accessKey(KindAddonSecret, *req.AddonAccessKey)
	}
	mode := req.TokenMode
	if mode == "" || mode == acrconfig.TokenModeAuto {
		mode = acrconfig.TokenModeWorkerRole
		if r.opts.ManagedRoleARN != "" {
			mode = acrconfig.TokenModeManagedRole
		}
	}
	worker := r.workerRole()
	switch mode {
	case acrconfig.TokenModeWorkerRole:
		return worker, nil
	case acrconfig.TokenModeManagedRole:
		if r.opts.ManagedRoleARN == "" {
			return nil, fmt.Errorf("%w: tokenMode managedRole needs the ARN of the managed role to assume (e.g. acs:ram::<uid>:role/AliyunCSManagedAcrRole)", ErrNoSource)
		}
		key := fmt.Sprintf("%s:%s", KindManagedRole, r.opts.ManagedRoleARN)
		return r.intern(worker.key+">"+key, "", func() *Identity {
			p := r.assumeRoleProvider(worker.cred, r.opts.ManagedRoleARN, time.Hour)
			return &Identity{kind: KindManagedRole, chain: []string{worker.key, key}, cred: credentials.FromCredentialsProvider("ram_role_arn", p)}
		}), nil
	}
	return nil, fmt.Errorf("%w: unknown tokenMode %q", ErrNoSource, mode)
}

// serviceAccountToken is the identity of one in-memory ServiceAccount token. Its key carries
// a hash of the token, so two ServiceAccounts (or two tokens) never share a session or the
// registry tokens cached under the key, even for the same role.
func (r *Resolver) serviceAccountToken(req Request) (*Identity, error) {
	if req.RRSARoleARN == "" || req.RRSAOIDCProviderARN == "" {
		return nil, fmt.Errorf("%w: a ServiceAccount token needs both a role ARN and an OIDC provider ARN", ErrNoSource)
	}
	jwt := strings.TrimSpace(req.ServiceAccountToken.Reveal())
	h := hashSecret(jwt)
	key := fmt.Sprintf("%s:%s:%s:%s", KindServiceAccountToken, req.RRSAOIDCProviderARN, req.RRSARoleARN, h)
	return r.intern(key, h, func() *Identity {
		p := r.oidcTokenProvider(req.RRSARoleARN, req.RRSAOIDCProviderARN, func() (string, error) { return jwt, nil })
		return &Identity{kind: KindServiceAccountToken, chain: []string{key}, cred: credentials.FromCredentialsProvider("oidc_role_arn", p)}
	}), nil
}

func (r *Resolver) accessKey(kind Kind, ak AccessKey) (*Identity, error) {
	key := fmt.Sprintf("%s:%s", kind, ak.ID)
	p, err := providers.NewStaticAKCredentialsProviderBuilder().
		WithAccessKeyId(ak.ID).WithAccessKeySecret(ak.Secret.Reveal()).Build()
	if err != nil {
		return nil, fmt.Errorf("cloudcred: %s %s: %w", kind, ak.ID, redact.Error(err, ak.Secret.Reveal()))
	}
	id := r.intern(key, hashSecret(ak.Secret.Reveal()), func() *Identity {
		return &Identity{kind: kind, chain: []string{key}, cred: credentials.FromCredentialsProvider("static_ak", p)}
	})
	return id, nil
}

func (r *Resolver) workerRole() *Identity {
	key := string(KindWorkerRole)
	if r.opts.MetadataRoleName != "" {
		key += ":" + r.opts.MetadataRoleName
	}
	return r.intern(key, "", func() *Identity {
		p := &refreshing{name: "ecs_ram_role", now: r.opts.Now, fetch: r.metadataFetch}
		return &Identity{kind: KindWorkerRole, chain: []string{key}, cred: credentials.FromCredentialsProvider("ecs_ram_role", p)}
	})
}

// intern returns the identity stored under internal key (public key + secrets hash),
// creating it with mk on first use.
func (r *Resolver) intern(publicKey, secretsHash string, mk func() *Identity) *Identity {
	internal := publicKey
	if secretsHash != "" {
		internal += "#" + secretsHash
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byID[internal]; ok {
		return id
	}
	id := mk()
	id.key = publicKey
	id.hash = secretsHash
	r.byID[internal] = id
	return id
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// Keys of the add-on Secret (kube-system/alibaba-addon-secret).
const (
	AddonSecretKeyID     = "access-key-id"
	AddonSecretKeySecret = "access-key-secret"
)

// AccessKeyFromSecretData reads the AccessKey pair from the data of the add-on Secret,
// trimming surrounding whitespace (kubectl --from-file keeps a trailing newline). The error
// names the missing key and never contains the secret.
func AccessKeyFromSecretData(data map[string][]byte) (*AccessKey, error) {
	id := strings.TrimSpace(string(data[AddonSecretKeyID]))
	secret := strings.TrimSpace(string(data[AddonSecretKeySecret]))
	switch {
	case id == "" && secret == "":
		return nil, fmt.Errorf("cloudcred: add-on Secret has neither %s nor %s", AddonSecretKeyID, AddonSecretKeySecret)
	case id == "":
		return nil, fmt.Errorf("cloudcred: add-on Secret has no %s", AddonSecretKeyID)
	case secret == "":
		return nil, fmt.Errorf("cloudcred: add-on Secret has no %s", AddonSecretKeySecret)
	case strings.ContainsAny(id, " \t\r\n") || strings.ContainsAny(secret, " \t\r\n"):
		return nil, fmt.Errorf("cloudcred: add-on Secret: %s or %s contains whitespace", AddonSecretKeyID, AddonSecretKeySecret)
	}
	return &AccessKey{ID: id, Secret: redact.Secret(secret)}, nil
}
