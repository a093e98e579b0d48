package cloudcred_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	sts "github.com/alibabacloud-go/sts-20150401/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/emulator/imds"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// These tests resolve every kind of identity against a real acr-emulator (STS,
// AssumeRoleWithOIDC, ECS metadata through its proxy) and prove it with GetCallerIdentity
// (official sts-20150401 SDK) and a registry token (cr-20181201).

type rig struct {
	env    *emulatorenv.Env
	logs   *logbuf.Buffer
	logger *slog.Logger
	tokens string // RRSA token file
	key    *rsa.PrivateKey
	issuer string
	// metadataProxy serves http://100.100.100.200 as an HTTP proxy.
	metadataProxy string
	hardenedProxy string
}

func startRig(t *testing.T) *rig {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "test-key", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	issuer := "https://oidc.test.example/" + world.DemoClusterID
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: issuer, OIDCJWKS: jwks})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{env: emulatorenv.Start(t, emulatorenv.Options{World: w}), logs: &logbuf.Buffer{}, key: key, issuer: issuer,
		tokens: filepath.Join(t.TempDir(), "token")}
	// The emulator's metadata listener is the HTTP proxy for 100.100.100.200. A second
	// instance of its metadata handler (same RAM service) runs in security-hardening mode
	// (IMDSv2 only) to prove ferry sends the token.
	r.metadataProxy = r.env.Info.MetadataProxy
	md := httptest.NewServer(imds.New(r.env.Emulator.RAM(), imds.Hardened(true)))
	t.Cleanup(md.Close)
	r.hardenedProxy = md.URL
	r.logger = slog.New(redact.NewHandler(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return r
}

// writeToken writes a projected-ServiceAccount-style JWT signed by the provider's key.
func (r *rig) writeToken(t *testing.T, sub, aud string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": r.issuer, "sub": sub, "aud": []string{aud},
		"iat": time.Now().Unix(), "nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "test-key"
	s, err := tok.SignedString(r.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.tokens, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) resolver(t *testing.T, mutate func(*cloudcred.Options)) *cloudcred.Resolver {
	t.Helper()
	hc, err := cloudcred.NewHTTPClient(r.env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	o := cloudcred.Options{
		Region: "cn-hangzhou", STSEndpoint: r.env.Info.OpenAPITLSEndpoint, HTTPClient: hc,
		MetadataProxy: r.metadataProxy, TokenFile: r.tokens, Logger: r.logger,
	}
	if mutate != nil {
		mutate(&o)
	}
	res, err := cloudcred.NewResolver(o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r *rig) callerARN(t *testing.T, id *cloudcred.Identity) (string, error) {
	t.Helper()
	c, err := sts.NewClient(&openapi.Config{Credential: id.Credential(), Endpoint: dara.String(r.env.Info.OpenAPIEndpoint), Protocol: dara.String("http")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.GetCallerIdentity()
	if err != nil {
		return "", err
	}
	return dara.StringValue(res.Body.Arn), nil
}

func (r *rig) token(t *testing.T, id *cloudcred.Identity, instanceID string) (acr.Token, error) {
	t.Helper()
	hc, err := cloudcred.NewHTTPClient(r.env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := acr.NewClient(acr.ClientOptions{DialAddr: r.env.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	in := r.env.Instance(t, instanceID)
	return c.AuthorizationToken(t.Context(), id.Credential(), acr.Instance{ID: in.InstanceID, Region: in.RegionID})
}

var (
	pullRoleB  = "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	rrsaRole   = "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoRRSARole
	rrsaProvAR = "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID
)

func TestEmulatorIdentities(t *testing.T) {
	r := startRig(t)
	r.writeToken(t, world.DemoRRSASA, "sts.aliyuncs.com")
	puller := r.env.User(t, world.DemoAccountA, "acr-puller")
	deployer := r.env.User(t, world.DemoAccountA, "deployer")
	adminB := r.env.User(t, world.DemoAccountB, "admin")

	tests := []struct {
		name      string
		opts      func(*cloudcred.Options)
		req       cloudcred.Request
		kind      cloudcred.Kind
		key       string
		arn       string // substring of GetCallerIdentity's Arn
		instance  string // a registry token for this instance must be minted
		forbidden string // …and this one must be refused
	}{
		{
			name: "add-on Secret AccessKey", req: cloudcred.Request{AddonAccessKey: &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}},
			kind: cloudcred.KindAddonSecret, key: "addonSecret:" + puller.AccessKeyID, arn: ":user/acr-puller", instance: world.DemoInstanceAHangzhou, forbidden: world.DemoInstanceBHangzhou,
		},
		{
			name: "customAccessKey of another account wins over the add-on Secret",
			req: cloudcred.Request{CustomAccessKey: &cloudcred.AccessKey{ID: adminB.AccessKeyID, Secret: redact.Secret(adminB.AccessKeySecret)},
				AddonAccessKey: &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}},
			kind: cloudcred.KindCustomAccessKey, key: "customAccessKey:" + adminB.AccessKeyID, arn: world.DemoAccountB + ":user/admin", instance: world.DemoInstanceBHangzhou,
		},
		{
			name: "AccessKey user assumes a role in the registry owner's account",
			req:  cloudcred.Request{AddonAccessKey: &cloudcred.AccessKey{ID: deployer.AccessKeyID, Secret: redact.Secret(deployer.AccessKeySecret)}, AssumeRoleARN: pullRoleB, ExpireDuration: 2 * time.Hour},
			kind: cloudcred.KindAddonSecret, key: "addonSecret:" + deployer.AccessKeyID + ">assumeRole:" + pullRoleB + ":7200s",
			arn: "acs:ram::" + world.DemoAccountB + ":|/" + world.DemoPullRole + "/" + cloudcred.DefaultSessionName, instance: world.DemoInstanceBHangzhou, forbidden: world.DemoInstanceAHangzhou,
		},
		{
			name: "worker role from ECS metadata (IMDSv2) through the proxy", req: cloudcred.Request{TokenMode: acrconfig.TokenModeWorkerRole},
			kind: cloudcred.KindWorkerRole, key: "workerRole", arn: "acs:ram::" + world.DemoAccountA + ":|/" + world.DemoWorkerRole + "/", instance: world.DemoInstanceAHangzhou,
		},
		{
			name: "worker role then assumeRoleARN (003 worker-role scenario)", req: cloudcred.Request{TokenMode: acrconfig.TokenModeAuto, AssumeRoleARN: pullRoleB, ExpireDuration: time.Hour},
			kind: cloudcred.KindWorkerRole, key: "workerRole>assumeRole:" + pullRoleB + ":3600s", arn: "acs:ram::" + world.DemoAccountB + ":|/" + world.DemoPullRole + "/", instance: world.DemoInstanceBHangzhou,
		},
		{
			name: "managedRole assumes the managed role with the worker identity", opts: func(o *cloudcred.Options) { o.ManagedRoleARN = pullRoleB },
			req:  cloudcred.Request{TokenMode: acrconfig.TokenModeManagedRole},
			kind: cloudcred.KindManagedRole, key: "workerRole>managedRole:" + pullRoleB, arn: "acs:ram::" + world.DemoAccountB + ":|/" + world.DemoPullRole + "/", instance: world.DemoInstanceBHangzhou,
		},
		{
			name: "RRSA (003 RRSA scenario without the chain)",
			req:  cloudcred.Request{RRSAEnabled: true, RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR, AddonAccessKey: &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}},
			kind: cloudcred.KindRRSA, key: "rrsa:" + rrsaProvAR + ":" + rrsaRole, arn: "acs:ram::" + world.DemoAccountA + ":|/" + world.DemoRRSARole + "/", instance: world.DemoInstanceAHangzhou,
		},
		{
			name: "RRSA then cross-account assumeRoleARN (003 RRSA scenario)",
			req:  cloudcred.Request{RRSAEnabled: true, RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR, AssumeRoleARN: pullRoleB, ExpireDuration: time.Hour},
			kind: cloudcred.KindRRSA, key: "rrsa:" + rrsaProvAR + ":" + rrsaRole + ">assumeRole:" + pullRoleB + ":3600s", arn: "acs:ram::" + world.DemoAccountB + ":|/" + world.DemoPullRole + "/", instance: world.DemoInstanceBHangzhou,
		},
		{
			name: "RRSA fields without rrsa.enable fall through to the add-on Secret",
			req:  cloudcred.Request{RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR, AddonAccessKey: &cloudcred.AccessKey{ID: puller.AccessKeyID, Secret: redact.Secret(puller.AccessKeySecret)}},
			kind: cloudcred.KindAddonSecret, key: "addonSecret:" + puller.AccessKeyID, arn: ":user/acr-puller", instance: world.DemoInstanceAHangzhou,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.resolver(t, tt.opts)
			id, err := res.Resolve(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if id.Kind() != tt.kind || id.Key() != tt.key {
				t.Fatalf("identity = %s (%s), want %s (%s)", id.Key(), id.Kind(), tt.key, tt.kind)
			}
			again, _ := res.Resolve(t.Context(), tt.req)
			if again != id {
				t.Error("resolving the same request twice built a second identity")
			}
			arn, err := r.callerARN(t, id)
			if err != nil {
				t.Fatalf("GetCallerIdentity: %v", err)
			}
			for _, part := range strings.Split(tt.arn, "|") {
				if !strings.Contains(arn, part) {
					t.Fatalf("caller = %s, want it to contain %q", arn, part)
				}
			}
			tok, err := r.token(t, id, tt.instance)
			if err != nil || tok.Password.IsZero() {
				t.Fatalf("token for %s: %v", tt.instance, err)
			}
			if tt.forbidden != "" {
				_, err := r.token(t, id, tt.forbidden)
				if acr.MissingAction(err) != "cr:GetAuthorizationToken" {
					t.Fatalf("token for %s should be refused naming cr:GetAuthorizationToken, got %v", tt.forbidden, err)
				}
			}
		})
	}
	secrets := []string{puller.AccessKeySecret, deployer.AccessKeySecret, adminB.AccessKeySecret}
	for _, a := range r.env.Info.Accounts {
		secrets = append(secrets, a.AccessKeySecret)
	}
	out := r.logs.String()
	if !strings.Contains(out, "resolved identity") {
		t.Fatalf("no logs captured: %q", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("AccessKey secret in the logs:\n%s", out)
		}
	}
}

func TestEmulatorRRSATokenFileReRead(t *testing.T) {
	r := startRig(t)
	res := r.resolver(t, nil)
	req := cloudcred.Request{RRSAEnabled: true, RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR}
	id, err := res.Resolve(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// no token file yet (RRSA enabled on the cluster after the helper started)
	// the message survives redaction (it once read "token: <path>", which redact.Text hid)
	if _, err := r.callerARN(t, id); err == nil || !strings.Contains(redact.Text(err.Error()), "could not read the ServiceAccount token file (open ") {
		t.Fatalf("want a readable missing-token-file error, got %v (redacted: %s)", err, redact.Text(fmt.Sprint(err)))
	}
	// a token for the wrong subject is refused by STS, and the JWT is not echoed
	bad := r.writeToken(t, "system:serviceaccount:default:intruder", "sts.aliyuncs.com")
	_, err = r.callerARN(t, id)
	if err == nil || strings.Contains(err.Error(), bad) {
		t.Fatalf("want a refusal without the JWT, got %v", err)
	}
	// the right token, written later, is picked up without a restart
	good := r.writeToken(t, world.DemoRRSASA, "sts.aliyuncs.com")
	arn, err := r.callerARN(t, id)
	if err != nil || !strings.Contains(arn, world.DemoRRSARole) {
		t.Fatalf("after the token appeared: %s %v", arn, err)
	}
	if out := r.logs.String(); strings.Contains(out, good) || strings.Contains(out, bad) {
		t.Fatal("a JWT reached the logs")
	}
}

// TestEmulatorServiceAccountTokenInMemory: a token held in memory (as the kubelet hands it to
// a credential provider) is exchanged with AssumeRoleWithOIDC; no token file is read, a token
// for another subject is refused by the role's trust policy, and the JWT is never echoed.
func TestEmulatorServiceAccountTokenInMemory(t *testing.T) {
	r := startRig(t)
	res := r.resolver(t, func(o *cloudcred.Options) { o.TokenFile = filepath.Join(t.TempDir(), "absent") })
	good := r.writeToken(t, world.DemoRRSASA, "sts.aliyuncs.com")
	if err := os.Remove(r.tokens); err != nil {
		t.Fatal(err)
	}
	id, err := res.Resolve(t.Context(), cloudcred.Request{ServiceAccountToken: redact.Secret(good), RRSARoleARN: rrsaRole,
		RRSAOIDCProviderARN: rrsaProvAR, AssumeRoleARN: pullRoleB})
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind() != cloudcred.KindServiceAccountToken || strings.Contains(id.Key(), good) {
		t.Fatalf("identity %s (%s)", id.Key(), id.Kind())
	}
	arn, err := r.callerARN(t, id)
	if err != nil || !strings.Contains(arn, world.DemoAccountB) || !strings.Contains(arn, world.DemoPullRole) {
		t.Fatalf("caller = %s, %v", arn, err)
	}
	if tok, err := r.token(t, id, world.DemoInstanceBHangzhou); err != nil || tok.Password.IsZero() {
		t.Fatalf("token through the ServiceAccount token and the hop: %v", err)
	}
	bad := r.writeToken(t, "system:serviceaccount:default:intruder", "sts.aliyuncs.com")
	intruder, err := res.Resolve(t.Context(), cloudcred.Request{ServiceAccountToken: redact.Secret(bad), RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.callerARN(t, intruder)
	if err == nil || strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "AssumeRoleWithOIDC") {
		t.Fatalf("want an AssumeRoleWithOIDC refusal without the JWT, got %v", err)
	}
	if out := r.logs.String(); strings.Contains(out, good) || strings.Contains(out, bad) {
		t.Fatal("a JWT reached the logs")
	}
}

func TestEmulatorWorkerRoleIMDSv1Disabled(t *testing.T) {
	r := startRig(t)
	res := r.resolver(t, func(o *cloudcred.Options) {
		o.MetadataProxy = r.hardenedProxy
		o.DisableIMDSv1 = true
		o.MetadataRoleName = world.DemoWorkerRole
	})
	id, err := res.Resolve(t.Context(), cloudcred.Request{TokenMode: acrconfig.TokenModeWorkerRole})
	if err != nil {
		t.Fatal(err)
	}
	if id.Key() != "workerRole:"+world.DemoWorkerRole {
		t.Fatalf("key = %s", id.Key())
	}
	if arn, err := r.callerARN(t, id); err != nil || !strings.Contains(arn, world.DemoWorkerRole) {
		t.Fatalf("%s %v", arn, err)
	}
	// the role name discovered through the hardened service as well (auto mode, no managed role)
	res = r.resolver(t, func(o *cloudcred.Options) { o.MetadataProxy = r.hardenedProxy })
	id, _ = res.Resolve(t.Context(), cloudcred.Request{})
	if arn, err := r.callerARN(t, id); err != nil || !strings.Contains(arn, world.DemoWorkerRole) {
		t.Fatalf("auto: %s %v", arn, err)
	}
	// no metadata service at all: a clear error, not a hang or a panic
	res = r.resolver(t, func(o *cloudcred.Options) {
		o.MetadataProxy = ""
		o.MetadataURL = "http://127.0.0.1:1"
		o.DisableIMDSv1 = true
	})
	id, _ = res.Resolve(t.Context(), cloudcred.Request{TokenMode: acrconfig.TokenModeWorkerRole})
	if _, err := r.callerARN(t, id); err == nil || !strings.Contains(redact.Text(err.Error()), "could not get an IMDSv2 session from the metadata service (Put ") {
		t.Fatalf("want a readable IMDSv2 error, got %v (redacted: %s)", err, redact.Text(fmt.Sprint(err)))
	}
}

// TestEmulatorRRSAWithKubernetesToken is RRSA end to end with a real ServiceAccount token:
// a kube-apiserver (envtest) issues the token for kube-system/aliyun-acr-credential-helper
// with audience sts.aliyuncs.com, the emulator's OIDC provider trusts the apiserver's issuer
// and fetches its JWKS, and ferry exchanges the token with AssumeRoleWithOIDC.
func TestEmulatorRRSAWithKubernetesToken(t *testing.T) {
	kube := kubeenv.Start(t)
	ctx := t.Context()
	raw, err := kube.Clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		t.Fatalf("discovery document: %v", err)
	}
	var disc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &disc); err != nil || disc.Issuer == "" {
		t.Fatalf("discovery document %s: %v", raw, err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "apiserver-ca.pem")
	if err := os.WriteFile(caFile, kube.Config.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aliyun-acr-credential-helper"}}
	if _, err := kube.Clientset.CoreV1().ServiceAccounts("kube-system").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mint := func(aud string) string {
		t.Helper()
		tr, err := kube.Clientset.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest: %v", err)
		}
		return tr.Status.Token
	}
	// the emulator reads the JWKS with a ServiceAccount token (service-account-issuer-discovery)
	bearer := filepath.Join(dir, "jwks-bearer")
	if err := os.WriteFile(bearer, []byte(mint(disc.Issuer)), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: disc.Issuer, OIDCJWKSURL: strings.TrimRight(kube.Config.Host, "/") + "/openid/v1/jwks",
		OIDCCAFile: caFile, OIDCBearerTokenFile: bearer})
	if err != nil {
		t.Fatal(err)
	}
	env := emulatorenv.Start(t, emulatorenv.Options{World: w})
	r := &rig{env: env, logs: &logbuf.Buffer{}, tokens: filepath.Join(dir, "rrsa-token")}
	r.logger = slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	jwtToken := mint("sts.aliyuncs.com")
	if err := os.WriteFile(r.tokens, []byte(jwtToken), 0o600); err != nil {
		t.Fatal(err)
	}
	res := r.resolver(t, nil)
	id, err := res.Resolve(ctx, cloudcred.Request{RRSAEnabled: true, RRSARoleARN: rrsaRole, RRSAOIDCProviderARN: rrsaProvAR,
		AssumeRoleARN: pullRoleB, ExpireDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	arn, err := r.callerARN(t, id)
	if err != nil || !strings.Contains(arn, world.DemoAccountB) || !strings.Contains(arn, world.DemoPullRole) {
		t.Fatalf("caller = %s, %v\nemulator logs:\n%s", arn, err, env.Logs.String())
	}
	if tok, err := r.token(t, id, world.DemoInstanceBHangzhou); err != nil || tok.Password.IsZero() {
		t.Fatalf("cross-account token through RRSA: %v", err)
	}
	if strings.Contains(r.logs.String(), jwtToken) {
		t.Fatal("the ServiceAccount token reached the logs")
	}
}

func ptr[T any](v T) *T { return &v }

// TestEmulatorAssumeRoleChain: each hop of AssumeRoleChain calls AssumeRole with the previous
// hop's session. Hop 1 (account A's admin → B's acr-pull) works on its own; assuming acr-pull
// again is refused (NoPermission: the acr-pull session may not call sts:AssumeRole, A's admin
// may), which only happens if the second hop really runs as the first hop's role.
func TestEmulatorAssumeRoleChain(t *testing.T) {
	r := startRig(t)
	admin := r.env.User(t, world.DemoAccountA, "admin")
	ak := &cloudcred.AccessKey{ID: admin.AccessKeyID, Secret: redact.Secret(admin.AccessKeySecret)}
	res := r.resolver(t, nil)

	one, err := res.Resolve(t.Context(), cloudcred.Request{AddonAccessKey: ak, AssumeRoleChain: []string{pullRoleB}})
	if err != nil {
		t.Fatal(err)
	}
	if arn, err := r.callerARN(t, one); err != nil || !strings.Contains(arn, world.DemoAccountB) {
		t.Fatalf("one hop: caller %q, %v", arn, err)
	}
	two, err := res.Resolve(t.Context(), cloudcred.Request{AddonAccessKey: ak, AssumeRoleChain: []string{pullRoleB, pullRoleB}})
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Chain()) != 3 {
		t.Fatalf("chain %v", two.Chain())
	}
	_, err = r.callerARN(t, two)
	if err == nil || !strings.Contains(err.Error(), "AssumeRole") {
		t.Fatalf("second hop from B's session: %v, want an AssumeRole refusal", err)
	}
	if strings.Contains(err.Error(), admin.AccessKeySecret) {
		t.Fatal("error carries the AccessKey secret")
	}
	t.Logf("second hop refused: %v", err)
}
