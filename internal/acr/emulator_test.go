package acr

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// These tests drive the official SDKs (cr-20181201, darabonba CallApi, sts-20150401)
// against a real acr-emulator.

func akIdentity(t *testing.T, r *cloudcred.Resolver, u emulator.InfoUser, assume string) *cloudcred.Identity {
	t.Helper()
	id, err := r.Resolve(t.Context(), cloudcred.Request{
		AddonAccessKey: &cloudcred.AccessKey{ID: u.AccessKeyID, Secret: redact.Secret(u.AccessKeySecret)},
		AssumeRoleARN:  assume, ExpireDuration: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type emu struct {
	env      *emulatorenv.Env
	client   *Client
	resolver *cloudcred.Resolver
	logs     *logbuf.Buffer
	logger   *slog.Logger
}

func startEmu(t *testing.T, opts emulatorenv.Options, now func() time.Time) *emu {
	t.Helper()
	env := emulatorenv.Start(t, opts)
	hc, err := cloudcred.NewHTTPClient(env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	// HTTPS with the emulator's CA (no SSL_CERT_FILE), real endpoint names
	// (cr.<region>.aliyuncs.com, which the emulator's certificate covers and which select the
	// region), every connection dialled to the emulator.
	c, err := NewClient(ClientOptions{DialAddr: env.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := cloudcred.NewResolver(cloudcred.Options{
		Region: "cn-hangzhou", STSEndpoint: env.Info.OpenAPITLSEndpoint, HTTPClient: hc,
		MetadataProxy: env.Info.MetadataProxy, Logger: logger, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &emu{env: env, client: c, resolver: r, logs: logs, logger: logger}
}

// pullable proves a token is accepted by the emulator's registry (HEAD of a seeded image).
func pullable(t *testing.T, env *emulatorenv.Env, image string, tok Token) error {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(ref, remote.WithContext(t.Context()), remote.WithTransport(env.Transport),
		remote.WithAuth(&authn.Basic{Username: tok.Username, Password: tok.Password.Reveal()}))
	return err
}

func hostOf(image string) string { return strings.SplitN(image, "/", 2)[0] }

func TestEmulatorEnterpriseTokenAndDomains(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{}, nil)
	puller := e.env.User(t, world.DemoAccountA, "acr-puller")
	id := akIdentity(t, e.resolver, puller, "")
	info := e.env.Instance(t, world.DemoInstanceAHangzhou)
	inst := Instance{ID: info.InstanceID, Region: info.RegionID}

	tok, err := e.client.AuthorizationToken(t.Context(), id.Credential(), inst)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Username == "" || tok.Password.IsZero() || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("token = %v", tok)
	}
	domains, err := e.client.Domains(t.Context(), id.Credential(), inst)
	if err != nil {
		t.Fatal(err)
	}
	// every domain of every enabled endpoint, public and VPC, as the emulator advertises them
	// (compared without ports: the emulator may advertise its random TLS port)
	bare := func(ds []string) []string {
		var out []string
		for _, d := range ds {
			out = append(out, strings.ToLower(strings.SplitN(d, ":", 2)[0]))
		}
		return slices.Sorted(slices.Values(out))
	}
	if !slices.Equal(bare(domains), bare(info.Domains)) || len(domains) < 2 {
		t.Fatalf("domains = %v, want %v", domains, info.Domains)
	}
	if !slices.Contains(bare(domains), bare([]string{hostOf(info.Image)})[0]) {
		t.Fatalf("image host %s not among %v", hostOf(info.Image), domains)
	}
	if err := pullable(t, e.env, info.Image, tok); err != nil {
		t.Fatalf("the minted token does not pull %s: %v", info.Image, err)
	}
	if err := pullable(t, e.env, info.Image, Token{Username: tok.Username, Password: "wrong-password"}); err == nil {
		t.Fatal("a wrong password pulled too: the check proves nothing")
	}
	// the same over plain HTTP, with the endpoint given as a URL (as --cr-endpoint allows)
	plain, err := NewClient(ClientOptions{Endpoint: "http://" + e.env.Info.OpenAPIEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Endpoint("cn-beijing") != e.env.Info.OpenAPIEndpoint {
		t.Fatalf("endpoint = %s", plain.Endpoint("cn-beijing"))
	}
	if tok2, err := plain.AuthorizationToken(t.Context(), id.Credential(), inst); err != nil || tok2.Password.IsZero() {
		t.Fatalf("plain HTTP: %v", err)
	}
	if _, err := NewClient(ClientOptions{Endpoint: "http://x", Protocol: "https"}); err == nil {
		t.Error("conflicting scheme and protocol accepted")
	}
}

func TestEmulatorPersonalToken(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{}, nil)
	puller := e.env.User(t, world.DemoAccountA, "acr-puller")
	id := akIdentity(t, e.resolver, puller, "")
	tok, err := e.client.AuthorizationToken(t.Context(), id.Credential(), Instance{Region: "cn-hangzhou"})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.env.Logs.String())
	}
	var personal emulator.InfoInstance
	for _, in := range e.env.Info.Instances {
		if in.Edition == "Personal" && in.RegionID == "cn-hangzhou" {
			personal = in
		}
	}
	if personal.Image == "" {
		t.Fatal("the emulator has no Personal Edition image in cn-hangzhou")
	}
	if err := pullable(t, e.env, personal.Image, tok); err != nil {
		t.Fatalf("Personal Edition token does not pull %s: %v", personal.Image, err)
	}
	// a RAM user that never set a registry password gets USER_NOT_EXIST (lower-case JSON)
	deployer := e.env.User(t, world.DemoAccountA, "deployer")
	_, err = e.client.AuthorizationToken(t.Context(), akIdentity(t, e.resolver, deployer, "").Credential(), Instance{Region: "cn-hangzhou"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "USER_NOT_EXIST" || ae.HTTPStatus != http.StatusNotFound {
		t.Fatalf("want USER_NOT_EXIST, got %#v (%v)", ae, err)
	}
}

// Seed 001 scenario 2: Personal Edition registries in two regions, one config. The region
// travels in the endpoint name (cr.<region>.aliyuncs.com), as with the real cloud.
func TestEmulatorPersonalTwoRegions(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{Mutate: func(w *world.World) {
		for _, a := range w.Accounts {
			if a.UID == world.DemoAccountA {
				a.Personal = append(a.Personal, &world.Instance{
					Region:       "cn-beijing",
					Namespaces:   []*world.Namespace{{Name: "ferry-a-bj", AutoCreateRepo: true, DefaultRepoType: world.RepoTypePrivate}},
					Repositories: []*world.Repository{{Namespace: "ferry-a-bj", Name: "hello"}},
					Images:       []string{"ferry-a-bj/hello:v1"},
				})
			}
		}
	}}, nil)
	puller := e.env.User(t, world.DemoAccountA, "acr-puller")
	id := akIdentity(t, e.resolver, puller, "")
	cache := NewCache(e.client, CacheOptions{})
	for _, region := range []string{"cn-beijing", "cn-hangzhou"} {
		var image string
		for _, in := range e.env.Info.Instances {
			if in.Edition == "Personal" && in.RegionID == region {
				image = in.Image
			}
		}
		if image == "" {
			t.Fatalf("no Personal Edition image in %s", region)
		}
		tok, err := cache.Token(t.Context(), id, Instance{Region: region}, 15*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", region, err)
		}
		if !slices.Equal(tok.Domains, PersonalDomains(region)) {
			t.Errorf("%s: domains = %v", region, tok.Domains)
		}
		if err := pullable(t, e.env, image, tok); err != nil {
			t.Fatalf("%s: token does not pull %s: %v", region, image, err)
		}
	}
	if s := cache.Stats(); s.TokenCalls != 2 || s.DomainCalls != 0 {
		t.Errorf("stats = %+v, want 2 token calls and no domain calls", s)
	}
	// an account without a Personal Edition registry in the region
	adminB := e.env.User(t, world.DemoAccountB, "admin")
	_, err := cache.Token(t.Context(), akIdentity(t, e.resolver, adminB, ""), Instance{Region: "cn-beijing"}, 15*time.Minute)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "USER_NOT_EXIST" {
		t.Fatalf("account B in cn-beijing: %v", err)
	}
}

func TestEmulatorCrossAccountAssumeRole(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{}, nil)
	deployer := e.env.User(t, world.DemoAccountA, "deployer")
	pullRole := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	id := akIdentity(t, e.resolver, deployer, pullRole)
	if !strings.Contains(id.Key(), "assumeRole:"+pullRole) || strings.Contains(id.Key(), deployer.AccessKeySecret) {
		t.Fatalf("identity key = %s", id.Key())
	}
	info := e.env.Instance(t, world.DemoInstanceBHangzhou)
	cache := NewCache(e.client, CacheOptions{Logger: e.logger})
	tok, err := cache.Token(t.Context(), id, Instance{ID: info.InstanceID, Region: info.RegionID}, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := pullable(t, e.env, info.Image, tok); err != nil {
		t.Fatalf("cross-account token does not pull %s: %v", info.Image, err)
	}
	// without the role, the deployer (sts:AssumeRole only) is refused, and the error names
	// the missing RAM action
	_, err = cache.Token(t.Context(), akIdentity(t, e.resolver, deployer, ""), Instance{ID: info.InstanceID, Region: info.RegionID}, 15*time.Minute)
	if got := MissingAction(err); got != "cr:GetAuthorizationToken" {
		t.Fatalf("MissingAction = %q for %v", got, err)
	}
	if !strings.Contains(err.Error(), "grant the RAM action cr:GetAuthorizationToken") {
		t.Errorf("error does not name the action: %v", err)
	}
	assertNoSecrets(t, e, err.Error(), deployer.AccessKeySecret, tok.Password.Reveal())
}

func TestEmulatorCacheSingleFlightAndRotation(t *testing.T) {
	clk := fakeclock.New(time.Now())
	e := startEmu(t, emulatorenv.Options{TokenTTL: 60 * time.Second, Now: clk.Now}, clk.Now)
	puller := e.env.User(t, world.DemoAccountA, "acr-puller")
	id := akIdentity(t, e.resolver, puller, "")
	info := e.env.Instance(t, world.DemoInstanceAHangzhou)
	inst := Instance{ID: info.InstanceID, Region: info.RegionID}
	// The real SDK-to-emulator minter, held open until all 50 callers are concurrent with the
	// flight (each caller's cache lookup reads the clock once the pair has an entry).
	held := &heldMinter{Minter: e.client, hold: make(chan struct{})}
	var clockReads atomic.Int64
	cache := NewCache(held, CacheOptions{Logger: e.logger, Rand: func() float64 { return 0 },
		Now: func() time.Time { clockReads.Add(1); return clk.Now() }})
	close(held.hold)
	if _, err := cache.Token(t.Context(), id, inst, 45*time.Second); err != nil { // the pair gets an entry
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second) // expired: every caller must refresh
	held.hold = make(chan struct{})
	toks := concurrentCallers(t, cache, id, inst, 45*time.Second, &clockReads, held.calls.Load, func() { close(held.hold) })
	if s := cache.Stats(); s.TokenCalls != 2 || s.DomainCalls != 1 {
		t.Fatalf("50 concurrent callers made %+v, want one token call (2 in all) and one domain call", s)
	}
	first := toks[0]
	if d := first.Expiry.Sub(clk.Now()); d <= 0 || d > 60*time.Second {
		t.Fatalf("token life %v, want the emulator's 60s", d)
	}

	// 10s later: 50s left > 45s threshold, still cached
	clk.Advance(10 * time.Second)
	same, err := cache.Token(t.Context(), id, inst, 45*time.Second)
	if err != nil || same.Password != first.Password {
		t.Fatalf("refreshed too early: %v", err)
	}
	// 16s after issue: 44s left, renewed before expiry; the new token pulls
	clk.Advance(6 * time.Second)
	second, err := cache.Token(t.Context(), id, inst, 45*time.Second)
	if err != nil || second.Password == first.Password || !second.Expiry.After(first.Expiry) {
		t.Fatalf("not renewed: %v %v", second, err)
	}
	if s := cache.Stats(); s.TokenCalls != 3 || s.DomainCalls != 1 {
		t.Fatalf("stats after one rotation = %+v", s)
	}
	if err := pullable(t, e.env, info.Image, second); err != nil {
		t.Fatalf("rotated token does not pull: %v", err)
	}

	// the token API goes down: the last good token is served, nobody gets an error
	e.env.Fault("GetAuthorizationToken", http.StatusServiceUnavailable)
	clk.Advance(20 * time.Second) // 40s left < 45s: refresh due, fails
	kept, err := cache.Token(t.Context(), id, inst, 45*time.Second)
	if err != nil || kept.Password != second.Password || kept.RetryAt.IsZero() {
		t.Fatalf("outage: tok=%v retryAt=%v err=%v", kept, kept.RetryAt, err)
	}
	if err := pullable(t, e.env, info.Image, kept); err != nil {
		t.Fatalf("the kept token no longer pulls during the outage: %v", err)
	}
	failures := cache.Stats().Failures
	if failures == 0 {
		t.Fatal("the failed call was not counted")
	}
	// recovery: after the backoff the next call gets a new token
	e.env.ClearFaults()
	clk.Advance(kept.RetryAt.Sub(clk.Now()))
	third, err := cache.Token(t.Context(), id, inst, 45*time.Second)
	if err != nil || third.Password == second.Password || !third.RetryAt.IsZero() {
		t.Fatalf("after recovery: %v %v", third, err)
	}
	if err := pullable(t, e.env, info.Image, third); err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, e, "", puller.AccessKeySecret, first.Password.Reveal(), second.Password.Reveal(), third.Password.Reveal())
}

func assertNoSecrets(t *testing.T, e *emu, extra string, secrets ...string) {
	t.Helper()
	out := e.logs.String() + extra
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Fatalf("a secret appears in the logs or errors:\n%s", out)
		}
	}
	if !strings.Contains(e.logs.String(), "registry token") && !strings.Contains(e.logs.String(), "resolved identity") {
		t.Fatalf("expected some log output to search, got %q", e.logs.String())
	}
}

func TestEmulatorBadCredentialsNoSecretInError(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{}, nil)
	puller := e.env.User(t, world.DemoAccountA, "acr-puller")
	wrong := emulator.InfoUser{AccessKeyID: puller.AccessKeyID, AccessKeySecret: "WrongSecretValue-123456"}
	info := e.env.Instance(t, world.DemoInstanceAHangzhou)
	inst := Instance{ID: info.InstanceID, Region: info.RegionID}
	cache := NewCache(e.client, CacheOptions{Logger: e.logger})
	_, err := cache.Token(t.Context(), akIdentity(t, e.resolver, wrong, ""), inst, time.Minute)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "SignatureDoesNotMatch" || ae.Temporary() {
		t.Fatalf("want SignatureDoesNotMatch, got %v", err)
	}
	// and through an assume-role chain (the STS error quotes its string to sign)
	_, err2 := cache.Token(t.Context(), akIdentity(t, e.resolver, wrong, "acs:ram::"+world.DemoAccountB+":role/"+world.DemoPullRole), inst, time.Minute)
	if err2 == nil {
		t.Fatal("a wrong secret assumed a role")
	}
	assertNoSecrets(t, e, err.Error()+err2.Error(), wrong.AccessKeySecret, puller.AccessKeySecret)
}

// TestEmulatorInstanceIDByName: ListInstance finds an instance by the name its registry
// domain carries; the worker role's registry policy lacks cr:ListInstance and the error names it.
func TestEmulatorInstanceIDByName(t *testing.T) {
	e := startEmu(t, emulatorenv.Options{}, nil)
	admin := akIdentity(t, e.resolver, e.env.User(t, world.DemoAccountA, "admin"), "")
	for _, tt := range []struct{ region, want string }{
		{"cn-hangzhou", world.DemoInstanceAHangzhou},
		{"cn-beijing", world.DemoInstanceABeijing},
	} {
		id, err := e.client.InstanceIDByName(t.Context(), admin.Credential(), tt.region, "ferry-a")
		if err != nil || id != tt.want {
			t.Errorf("ferry-a in %s = %q, %v; want %s", tt.region, id, err, tt.want)
		}
	}
	if _, err := e.client.InstanceIDByName(t.Context(), admin.Credential(), "cn-hangzhou", "ferry-b"); !errors.Is(err, ErrInstanceNotFound) {
		t.Errorf("another account's instance: %v, want ErrInstanceNotFound", err)
	}
	puller := akIdentity(t, e.resolver, e.env.User(t, world.DemoAccountA, "acr-puller"), "")
	if _, err := e.client.InstanceIDByName(t.Context(), puller.Credential(), "cn-hangzhou", "ferry-a"); MissingAction(err) != "cr:ListInstance" {
		t.Errorf("without cr:ListInstance: %v", err)
	}
}

// heldMinter passes token calls to the real minter once hold is closed, counting them.
type heldMinter struct {
	Minter
	hold  chan struct{}
	calls atomic.Int64
}

func (m *heldMinter) AuthorizationToken(ctx context.Context, cred credentials.Credential, inst Instance) (Token, error) {
	m.calls.Add(1)
	select {
	case <-m.hold:
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
	return m.Minter.AuthorizationToken(ctx, cred, inst)
}
