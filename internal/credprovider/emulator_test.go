package credprovider_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// These tests answer requests against a real acr-emulator (ECS metadata with IMDSv2 only,
// STS AssumeRole/AssumeRoleWithOIDC, Container Registry OpenAPI through the official SDKs)
// and prove every answer by pulling the image's manifest with the returned credential.

const (
	teamANS, teamASA = "team-a", "puller"
	teamBNS, teamBSA = "team-b", "builder"
	rolePull         = "team-a-pull"   // may pull; trusted by B's acr-pull
	roleNoPull       = "team-b-nopull" // may mint tokens, not pull
)

var (
	providerARN = "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID
	pullRoleB   = "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
)

// addServiceAccountRoles adds the two ServiceAccount roles to account A, each trusting one
// ServiceAccount through the cluster's OIDC provider, and lets B's acr-pull trust team-a-pull.
func addServiceAccountRoles(w *world.World, issuer string) {
	a, b := w.Accounts[0], w.Accounts[1]
	trust := func(ns, sa string) world.PolicyDocument {
		return world.PolicyDocument{Version: "1", Statement: []world.Statement{{
			Effect: "Allow", Action: world.StringList{"sts:AssumeRole"},
			Principal: &world.PolicyPrincipal{Federated: world.StringList{providerARN}},
			Condition: map[string]map[string]world.StringList{"StringEquals": {
				"oidc:iss": {issuer}, "oidc:aud": {credprovider.DefaultAudience}, "oidc:sub": {"system:serviceaccount:" + ns + ":" + sa},
			}},
		}}}
	}
	a.Policies = append(a.Policies, &world.Policy{Name: "token-only", Document: world.PolicyDocument{Version: "1", Statement: []world.Statement{
		{Effect: "Allow", Action: world.StringList{"cr:GetAuthorizationToken", "cr:ListInstanceEndpoint"}, Resource: world.StringList{"*"}}}}})
	a.Roles = append(a.Roles,
		&world.Role{Name: rolePull, TrustPolicy: trust(teamANS, teamASA), Policies: []string{"AliyunCSManagedAcrRolePolicy", "AliyunSTSAssumeRoleAccess"}},
		&world.Role{Name: roleNoPull, TrustPolicy: trust(teamBNS, teamBSA), Policies: []string{"token-only"}})
	for _, r := range b.Roles {
		if r.Name == world.DemoPullRole {
			p := r.TrustPolicy.Statement[0].Principal
			p.RAM = append(p.RAM, "acs:ram::"+world.DemoAccountA+":role/"+rolePull)
		}
	}
}

type rig struct {
	env    *emulatorenv.Env
	hc     *http.Client
	key    *rsa.PrivateKey
	issuer string
	logs   *logbuf.Buffer
}

func startRig(t *testing.T, ttl time.Duration) *rig {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	issuer := "https://oidc.test.example/" + world.DemoClusterID
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: issuer, OIDCJWKS: jwks, TokenTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	addServiceAccountRoles(w, issuer)
	env := emulatorenv.Start(t, emulatorenv.Options{World: w})
	hc, err := cloudcred.NewHTTPClient(env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, hc: hc, key: key, issuer: issuer, logs: &logbuf.Buffer{}}
}

// saToken is a projected ServiceAccount token as the kubelet requests it (audience sts.aliyuncs.com).
func (r *rig) saToken(t *testing.T, ns, sa string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": r.issuer, "sub": "system:serviceaccount:" + ns + ":" + sa, "aud": []string{credprovider.DefaultAudience},
		"iat": time.Now().Unix(), "nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(r.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) provider(t *testing.T, mutate func(*credprovider.Options)) *credprovider.Provider {
	t.Helper()
	o := credprovider.Options{
		Node: credprovider.NodeIdentity{TokenMode: acrconfig.TokenModeAuto},
		Cloud: cloudcred.Options{STSEndpoint: r.env.Info.OpenAPITLSEndpoint, HTTPClient: r.hc, MetadataProxy: r.env.Info.MetadataProxy,
			DisableIMDSv1: true},
		ACR:    acr.ClientOptions{DialAddr: r.env.Info.OpenAPITLSEndpoint, HTTPClient: r.hc},
		Logger: slog.New(redact.NewHandler(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	if mutate != nil {
		mutate(&o)
	}
	p, err := credprovider.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func request(image, token string, ann map[string]string) *credentialproviderv1.CredentialProviderRequest {
	return &credentialproviderv1.CredentialProviderRequest{Image: image, ServiceAccountToken: token, ServiceAccountAnnotations: ann}
}

// pull HEADs the image with the response's credential for its host.
func (r *rig) pull(t *testing.T, image string, resp *credentialproviderv1.CredentialProviderResponse, tr http.RoundTripper) error {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	auth, ok := resp.Auth[ref.Context().RegistryStr()]
	if !ok || len(resp.Auth) != 1 {
		t.Fatalf("response auth keys %v, want exactly %s", keys(resp.Auth), ref.Context().RegistryStr())
	}
	_, err = remote.Head(ref, remote.WithAuth(&authn.Basic{Username: auth.Username, Password: auth.Password}), remote.WithTransport(tr), remote.WithContext(t.Context()))
	return err
}

func keys(m map[string]credentialproviderv1.AuthConfig) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func personal(t *testing.T, env *emulatorenv.Env, region string) emulator.InfoInstance {
	for _, in := range env.Info.Instances {
		if in.Edition == world.EditionPersonal && in.RegionID == region {
			return in
		}
	}
	t.Fatalf("no Personal Edition in %s", region)
	return emulator.InfoInstance{}
}

// withImageOn rewrites image onto another domain of its instance.
func withImageOn(image, from, to string) string { return strings.Replace(image, from, to, 1) }

func TestEmulatorNodeIdentity(t *testing.T) {
	r := startRig(t, 0)
	hzA, bjA, hzB := r.env.Instance(t, world.DemoInstanceAHangzhou), r.env.Instance(t, world.DemoInstanceABeijing), r.env.Instance(t, world.DemoInstanceBHangzhou)
	pers := personal(t, r.env, "cn-hangzhou")
	admin := r.env.User(t, world.DemoAccountA, "admin")
	puller := r.env.User(t, world.DemoAccountA, "acr-puller")
	byName := []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a", Source: "t"}}
	tests := []struct {
		name      string
		mutate    func(*credprovider.Options)
		image     string
		transport http.RoundTripper
	}{
		{name: "worker role (IMDSv2), instance configured by name", mutate: func(o *credprovider.Options) { o.Instances = byName }, image: hzA.Image},
		{name: "VPC domain of the same instance", mutate: func(o *credprovider.Options) { o.Instances = byName }, image: withImageOn(hzA.Image, hzA.Domains[0], hzA.Domains[1])},
		{name: "instance configured by ID only: its domain found with ListInstanceEndpoint",
			mutate: func(o *credprovider.Options) {
				o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou"}, {ID: bjA.InstanceID, Region: "cn-beijing"}}
			}, image: bjA.Image},
		{name: "no configuration: ListInstance by name (AccessKey file with cr:ListInstance)", mutate: func(o *credprovider.Options) {
			o.Node.AccessKey = &cloudcred.AccessKey{ID: admin.AccessKeyID, Secret: redact.Secret(admin.AccessKeySecret)}
		}, image: hzA.Image},
		{name: "Personal Edition, no configuration", image: pers.Image},
		{name: "AccessKey file (acr-puller)", mutate: func(o *credprovider.Options) {
			o.Node.AccessKey = &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}
			o.Instances = byName
		}, image: hzA.Image},
		{name: "cross-account: worker role then the instance's assumeRoleARN", mutate: func(o *credprovider.Options) {
			o.Instances = []credprovider.Instance{{ID: hzB.InstanceID, Region: "cn-hangzhou", Name: "ferry-b", AssumeRoleARN: pullRoleB, ExpireDuration: time.Hour}}
		}, image: hzB.Image},
		{name: "managed role (--managed-role-arn) as the base identity", mutate: func(o *credprovider.Options) {
			o.Cloud.ManagedRoleARN = pullRoleB
			o.Instances = []credprovider.Instance{{ID: hzB.InstanceID, Region: "cn-hangzhou", Name: "ferry-b"}}
		}, image: hzB.Image},
		{name: "custom domain: the emulator's bare registry address mapped to its default instance", mutate: func(o *credprovider.Options) {
			o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Domains: []string{r.env.Info.RegistryTLSEndpoint}}}
		}, image: withImageOn(hzA.Image, hzA.Domains[0], r.env.Info.RegistryTLSEndpoint)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := r.provider(t, tt.mutate).Credentials(t.Context(), request(tt.image, "", nil))
			if err != nil {
				t.Fatalf("%v (exit %d)\nemulator:\n%s", err, credprovider.ExitCode(err), r.env.Logs.String())
			}
			if resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
				t.Fatalf("cacheKeyType %s", resp.CacheKeyType)
			}
			// 1 h tokens, 15 min margin
			if d := resp.CacheDuration.Duration; d < 44*time.Minute || d > 45*time.Minute {
				t.Fatalf("cacheDuration %s, want about 45m", d)
			}
			if err := r.pull(t, tt.image, resp, r.env.Transport); err != nil {
				t.Fatalf("pull with the answer: %v", err)
			}
		})
	}
	if strings.Contains(r.logs.String(), admin.AccessKeySecret) || !strings.Contains(r.logs.String(), "registry token issued") {
		t.Fatalf("provider logs:\n%s", r.logs.String())
	}
}

func TestEmulatorFailures(t *testing.T) {
	r := startRig(t, 0)
	hzA := r.env.Instance(t, world.DemoInstanceAHangzhou)
	puller := r.env.User(t, world.DemoAccountA, "acr-puller")
	byName := func(o *credprovider.Options) {
		o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a"}}
	}
	tests := []struct {
		name   string
		mutate func(*credprovider.Options)
		image  string
		fault  string
		code   int
		want   string
	}{
		{name: "unknown host", image: "registry.example.com/apps/hello:v1", code: credprovider.ExitUnknownHost, want: "registry.example.com is not an ACR domain"},
		{name: "Personal Edition instance domain", image: "crpi-abc123.cn-hangzhou.personal.cr.aliyuncs.com/ns/app:v1", code: credprovider.ExitUnknownHost, want: "no temporary-token API"},
		{name: "unconfigured instance, worker role may not ListInstance", image: hzA.Image, code: credprovider.ExitUnknownHost, want: "grant the RAM action cr:ListInstance"},
		{name: "unconfigured instance of another account", image: "ferry-b-registry.cn-hangzhou.cr.aliyuncs.com/shared/hello:v1", code: credprovider.ExitUnknownHost,
			mutate: func(o *credprovider.Options) {
				admin := r.env.User(t, world.DemoAccountA, "admin")
				o.Node.AccessKey = &cloudcred.AccessKey{ID: admin.AccessKeyID, Secret: redact.Secret(admin.AccessKeySecret)}
			}, want: "no such instance"},
		{name: "token API down", mutate: byName, image: hzA.Image, fault: "GetAuthorizationToken", code: credprovider.ExitTokenAPI, want: "GetAuthorizationToken failed (HTTP 503)"},
		{name: "STS down for the cross-account hop", image: hzA.Image, fault: "AssumeRole", code: credprovider.ExitTokenAPI, want: "AssumeRole failed (HTTP 503)",
			mutate: func(o *credprovider.Options) {
				o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a", AssumeRoleARN: pullRoleB}}
			}},
		{name: "AccessKey lacking cr:GetAuthorizationToken on the instance", image: r.env.Instance(t, world.DemoInstanceBHangzhou).Image, code: credprovider.ExitTokenAPI,
			want: "grant the RAM action cr:GetAuthorizationToken", mutate: func(o *credprovider.Options) {
				o.Node.AccessKey = &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}
				o.Instances = []credprovider.Instance{{ID: world.DemoInstanceBHangzhou, Region: "cn-hangzhou", Name: "ferry-b"}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != "" {
				r.env.Fault(tt.fault, http.StatusServiceUnavailable)
				defer r.env.ClearFaults()
			}
			resp, err := r.provider(t, tt.mutate).Credentials(t.Context(), request(tt.image, "", nil))
			if err == nil {
				t.Fatalf("answered %v", keys(resp.Auth))
			}
			if credprovider.ExitCode(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v (exit %d), want %q (exit %d)", err, credprovider.ExitCode(err), tt.want, tt.code)
			}
			if strings.Contains(err.Error(), puller.AccessKeySecret) {
				t.Fatal("the error carries a secret")
			}
		})
	}
}

// TestEmulatorServiceAccounts is the KEP-4412 mode: the request's ServiceAccount token is
// exchanged for the annotated role, so the two ServiceAccounts get different answers.
func TestEmulatorServiceAccounts(t *testing.T) {
	r := startRig(t, 0)
	hzA, hzB := r.env.Instance(t, world.DemoInstanceAHangzhou), r.env.Instance(t, world.DemoInstanceBHangzhou)
	instances := []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a"}, {ID: hzB.InstanceID, Region: "cn-hangzhou", Name: "ferry-b"}}
	saMode := func(fallback bool) func(*credprovider.Options) {
		return func(o *credprovider.Options) {
			o.Instances = instances
			o.ServiceAccount = &credprovider.ServiceAccountOptions{OIDCProviderARN: providerARN, FallbackToNode: fallback}
		}
	}
	tokA, tokB := r.saToken(t, teamANS, teamASA), r.saToken(t, teamBNS, teamBSA)
	role := func(name string) map[string]string { return map[string]string{credprovider.RoleNameAnnotation: name} }

	t.Run("team-a's role pulls", func(t *testing.T) {
		resp, err := r.provider(t, saMode(false)).Credentials(t.Context(), request(hzA.Image, tokA, role(rolePull)))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.pull(t, hzA.Image, resp, r.env.Transport); err != nil {
			t.Fatal(err)
		}
		// the emulator saw the ServiceAccount's token, not a node credential
		if !strings.Contains(r.env.Logs.String(), "caller=oidc:system:serviceaccount:team-a:puller") {
			t.Fatalf("no AssumeRoleWithOIDC for team-a:puller in the emulator log:\n%s", r.env.Logs.String())
		}
	})
	t.Run("team-b's role mints a token that may not pull", func(t *testing.T) {
		resp, err := r.provider(t, saMode(false)).Credentials(t.Context(), request(hzA.Image, tokB, role(roleNoPull)))
		if err != nil {
			t.Fatal(err)
		}
		err = r.pull(t, hzA.Image, resp, r.env.Transport)
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Fatalf("pull with team-b's credential: %v, want an auth error", err)
		}
	})
	t.Run("a ServiceAccount naming another team's role is refused by its trust policy", func(t *testing.T) {
		_, err := r.provider(t, saMode(false)).Credentials(t.Context(), request(hzA.Image, tokB, role(rolePull)))
		if err == nil || credprovider.ExitCode(err) != credprovider.ExitTokenAPI || !strings.Contains(err.Error(), "AssumeRoleWithOIDC") {
			t.Fatalf("got %v (exit %d)", err, credprovider.ExitCode(err))
		}
	})
	t.Run("cross-account: the role's session assumes B's acr-pull (annotation)", func(t *testing.T) {
		ann := map[string]string{credprovider.RoleNameAnnotation: rolePull, credprovider.AssumeRoleAnnotation: pullRoleB}
		resp, err := r.provider(t, saMode(false)).Credentials(t.Context(), request(hzB.Image, tokA, ann))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.pull(t, hzB.Image, resp, r.env.Transport); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no role annotation: refused without fallback, node identity with it", func(t *testing.T) {
		_, err := r.provider(t, saMode(false)).Credentials(t.Context(), request(hzA.Image, tokA, nil))
		if credprovider.ExitCode(err) != credprovider.ExitIdentity {
			t.Fatalf("without fallback: %v", err)
		}
		resp, err := r.provider(t, saMode(true)).Credentials(t.Context(), request(hzA.Image, tokA, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.pull(t, hzA.Image, resp, r.env.Transport); err != nil {
			t.Fatal(err)
		}
	})
	for _, tok := range []string{tokA, tokB} {
		if strings.Contains(r.logs.String(), tok) || strings.Contains(r.env.Logs.String(), tok) {
			t.Fatal("a ServiceAccount token reached a log")
		}
	}
	if !strings.Contains(r.logs.String(), "identitySource=serviceAccount") {
		t.Fatalf("provider log:\n%s", r.logs.String())
	}
}

// TestEmulatorShortTokens: a token shorter than twice the margin is cached for half its life.
func TestEmulatorShortTokens(t *testing.T) {
	r := startRig(t, 60*time.Second)
	hzA := r.env.Instance(t, world.DemoInstanceAHangzhou)
	resp, err := r.provider(t, func(o *credprovider.Options) {
		o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a"}}
	}).Credentials(t.Context(), request(hzA.Image, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.CacheDuration.Duration; d < 29*time.Second || d > 30*time.Second {
		t.Fatalf("cacheDuration %s for a 60 s token, want 30s", d)
	}
}

// TestEmulatorDiskCache: with a cache directory, a second run of the plugin answers from the
// node-identity token written by the first, even while the token API is down; the file is
// 0600 in a 0700 directory; ServiceAccount tokens are never written; after half of the
// token's life a new token is minted.
func TestEmulatorDiskCache(t *testing.T) {
	r := startRig(t, 0)
	hzA := r.env.Instance(t, world.DemoInstanceAHangzhou)
	dir := filepath.Join(t.TempDir(), "cache")
	now := time.Now()
	clock := func() time.Time { return now }
	withCache := func(o *credprovider.Options) {
		o.Instances = []credprovider.Instance{{ID: hzA.InstanceID, Region: "cn-hangzhou", Name: "ferry-a"}}
		o.CacheDir, o.Now = dir, clock
	}
	first, err := r.provider(t, withCache).Credentials(t.Context(), request(hzA.Image, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %s", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory mode %s", st.Mode().Perm())
	}
	r.env.Fault("GetAuthorizationToken", http.StatusServiceUnavailable)
	defer r.env.ClearFaults()
	second, err := r.provider(t, withCache).Credentials(t.Context(), request(hzA.Image, "", nil))
	if err != nil {
		t.Fatalf("warm run with the token API down: %v", err)
	}
	host := strings.SplitN(hzA.Image, "/", 2)[0]
	if second.Auth[host].Password != first.Auth[host].Password || second.CacheDuration.Duration > first.CacheDuration.Duration {
		t.Fatal("the warm run did not answer the cached token")
	}
	if !strings.Contains(r.logs.String(), "fromDiskCache=true") {
		t.Fatalf("provider log:\n%s", r.logs.String())
	}
	// a file others may read is not trusted
	if err := os.Chmod(files[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.provider(t, withCache).Credentials(t.Context(), request(hzA.Image, "", nil)); credprovider.ExitCode(err) != credprovider.ExitTokenAPI {
		t.Fatalf("a 0644 cache file was used: %v", err)
	}
	_ = os.Chmod(files[0], 0o600)
	// past half of the token's life the token API is asked again
	now = now.Add(31 * time.Minute)
	if _, err := r.provider(t, withCache).Credentials(t.Context(), request(hzA.Image, "", nil)); credprovider.ExitCode(err) != credprovider.ExitTokenAPI {
		t.Fatalf("a half-spent token was reused: %v", err)
	}
	r.env.ClearFaults()
	now = time.Now()
	// ServiceAccount identities are never written
	saDir := filepath.Join(t.TempDir(), "sa-cache")
	if _, err := r.provider(t, func(o *credprovider.Options) {
		withCache(o)
		o.CacheDir = saDir
		o.ServiceAccount = &credprovider.ServiceAccountOptions{OIDCProviderARN: providerARN}
	}).Credentials(t.Context(), request(hzA.Image, r.saToken(t, teamANS, teamASA), map[string]string{credprovider.RoleNameAnnotation: rolePull})); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(saDir, "*")); len(files) != 0 {
		t.Fatalf("a ServiceAccount token was cached on disk: %v", files)
	}
	// a directory others may read is refused
	loose := filepath.Join(t.TempDir(), "loose")
	_ = os.Mkdir(loose, 0o755)
	if _, err := credprovider.New(credprovider.Options{CacheDir: loose}); err == nil || !strings.Contains(err.Error(), "must be 0700") {
		t.Fatalf("a 0755 cache directory: %v", err)
	}
	b, _ := os.ReadFile(files[0])
	if strings.Contains(r.logs.String(), first.Auth[host].Password) || !strings.Contains(string(b), first.Auth[host].Password) {
		t.Fatal("the password is in the log, or not in the cache file")
	}
}
