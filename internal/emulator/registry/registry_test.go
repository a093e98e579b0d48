package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/registry"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

type fixture struct {
	logs    logbuf.Buffer
	secrets []string
	w       *world.World
	svc     *ram.Service
	clock   *fakeclock.Clock
	front   *registry.Front
	srv     *httptest.Server
	port    string
	dir     string
}

const (
	hzDomain    = "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com"
	bjDomain    = "ferry-a-registry.cn-beijing.cr.aliyuncs.com"
	bjVPCDomain = "ferry-a-registry-vpc.cn-beijing.cr.aliyuncs.com"
	bDomain     = "ferry-b-registry.cn-hangzhou.cr.aliyuncs.com"
	personalHZ  = "registry.cn-hangzhou.aliyuncs.com"
)

func newFixture(t testing.TB, dataDir string) *fixture {
	t.Helper()
	w, err := world.Default(world.DefaultOptions{TokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{w: w, clock: fakeclock.New(time.Now()), dir: dataDir}
	f.svc = ram.New(w, ram.WithClock(f.clock.Now))
	f.start(t)
	return f
}

func (f *fixture) start(t testing.TB) {
	t.Helper()
	dir := registry.NewWorldDirectory(f.svc)
	logger := slog.New(slog.NewTextHandler(&f.logs, nil))
	front, err := registry.New(dir, registry.Options{DataDir: f.dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := dir.Seeds()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := front.SeedAll(t.Context(), seeds); err != nil {
		t.Fatal(err)
	}
	f.front = front
	f.srv = httptest.NewServer(front)
	_, f.port, _ = net.SplitHostPort(f.srv.Listener.Addr().String())
	t.Cleanup(f.stop)
	t.Cleanup(func() {
		logs := f.logs.String()
		for _, s := range f.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a secret appears in the log")
			}
		}
	})
}

func (f *fixture) stop() {
	f.srv.Close()
	_ = f.front.Close()
}

// transport dials every host to the test listener, from source address src.
func (f *fixture) transport(src string) http.RoundTripper {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	addr := f.srv.Listener.Addr().String()
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
}

func (f *fixture) ref(t *testing.T, domain, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(domain+":"+f.port+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// token mints a registry token for an AccessKey's identity on an instance,
// as GetAuthorizationToken does.
func (f *fixture) token(t *testing.T, akID, instanceID string) authn.Authenticator {
	t.Helper()
	_, p, err := f.svc.ResolveAccessKey(akID, "")
	if err != nil {
		t.Fatal(err)
	}
	inst, ok := f.w.InstanceByID(instanceID)
	if !ok {
		t.Fatalf("no instance %s", instanceID)
	}
	user, tok, _ := f.svc.IssueRegistryToken(p, inst)
	f.secrets = append(f.secrets, tok)
	return &authn.Basic{Username: user, Password: tok}
}

// personalToken mints a Personal Edition token, as GET /tokens does.
func (f *fixture) personalToken(t *testing.T, akID, uid, region string) authn.Authenticator {
	t.Helper()
	_, p, err := f.svc.ResolveAccessKey(akID, "")
	if err != nil {
		t.Fatal(err)
	}
	inst, ok := f.w.PersonalInstance(uid, region)
	if !ok {
		t.Fatalf("no personal instance of %s in %s", uid, region)
	}
	user, tok, _ := f.svc.IssueRegistryToken(p, inst)
	f.secrets = append(f.secrets, tok)
	return &authn.Basic{Username: user, Password: tok}
}

func (f *fixture) password(t *testing.T, uid, user string) authn.Authenticator {
	t.Helper()
	a, _ := f.w.AccountByUID(uid)
	u, ok := a.User(user)
	if !ok {
		t.Fatalf("no user %s", user)
	}
	f.secrets = append(f.secrets, u.Password)
	return &authn.Basic{Username: user, Password: u.Password}
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

func TestPullPushWithAuthorizationToken(t *testing.T) {
	f := newFixture(t, t.TempDir())
	tr := f.transport("")
	admin := f.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou)
	puller := f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceAHangzhou)
	syncer := f.token(t, "LTAI5tFerryASyncer01", world.DemoInstanceAHangzhou)
	pullerOnB := f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceBHangzhou)
	personal := f.personalToken(t, "LTAI5tFerryAPuller01", world.DemoAccountA, "cn-hangzhou")
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}

	// Admin pushes into an auto-create namespace, the puller pulls it back.
	newRef := f.ref(t, hzDomain, "apps/pushed:v1")
	if err := remote.Write(newRef, img, remote.WithAuth(admin), remote.WithTransport(tr), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("admin push: %v", err)
	}
	if r, ok := f.w.Repository(mustInst(t, f.w, world.DemoInstanceAHangzhou), "apps", "pushed"); !ok || r.RepoType != world.RepoTypePrivate {
		t.Fatalf("auto-created repository = %+v, %v; want PRIVATE", r, ok)
	}
	got, err := remote.Image(newRef, remote.WithAuth(puller), remote.WithTransport(tr), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("puller pull: %v", err)
	}
	assertSameImage(t, img, got)

	tests := []struct {
		name       string
		auth       authn.Authenticator
		ref        string
		domain     string
		push       bool
		src        string
		wantStatus int // 0: success
	}{
		{name: "puller pulls seeded image", auth: puller, domain: hzDomain, ref: "apps/hello:v1"},
		{name: "puller cannot push", auth: puller, domain: hzDomain, ref: "apps/hello:v2", push: true, wantStatus: http.StatusUnauthorized},
		{name: "syncer pushes into image-syncer (auto-create)", auth: syncer, domain: hzDomain, ref: "image-syncer/nginx:1", push: true},
		{name: "syncer cannot push into apps", auth: syncer, domain: hzDomain, ref: "apps/hello:v3", push: true, wantStatus: http.StatusUnauthorized},
		{name: "admin cannot push into a namespace without auto-create", auth: admin, domain: hzDomain, ref: "locked/new:v1", push: true, wantStatus: http.StatusUnauthorized},
		{name: "admin cannot push into an unknown namespace", auth: admin, domain: hzDomain, ref: "nosuchns/new:v1", push: true, wantStatus: http.StatusUnauthorized},
		{name: "token of A's instance on B's instance", auth: puller, domain: bDomain, ref: "shared/hello:v1", wantStatus: http.StatusUnauthorized},
		{name: "A's token minted for B's instance", auth: pullerOnB, domain: bDomain, ref: "shared/hello:v1", wantStatus: http.StatusUnauthorized},
		{name: "anonymous pulls a public repository", auth: authn.Anonymous, domain: hzDomain, ref: "public/hello:v1"},
		{name: "anonymous cannot pull a private repository", auth: authn.Anonymous, domain: hzDomain, ref: "apps/hello:v1", wantStatus: http.StatusUnauthorized},
		{name: "anonymous cannot push to a public repository", auth: authn.Anonymous, domain: hzDomain, ref: "public/hello:v9", push: true, wantStatus: http.StatusUnauthorized},
		{name: "wrong password", auth: &authn.Basic{Username: ram.TempUsername, Password: "nope"}, domain: hzDomain, ref: "apps/hello:v1", wantStatus: http.StatusUnauthorized},
		{name: "access-credential password", auth: f.password(t, world.DemoAccountA, "acr-puller"), domain: hzDomain, ref: "apps/hello:v1"},
		{name: "whitelisted source on the public domain", auth: f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceABeijing), domain: bjDomain, ref: "apps/hello:v1", src: "127.0.0.1"},
		{name: "non-whitelisted source on the public domain", auth: f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceABeijing), domain: bjDomain, ref: "apps/hello:v1", src: "127.0.0.2", wantStatus: http.StatusForbidden},
		{name: "non-whitelisted source on the VPC domain", auth: f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceABeijing), domain: bjVPCDomain, ref: "apps/hello:v1", src: "127.0.0.2"},
		{name: "personal edition with a /tokens token", auth: personal, domain: personalHZ, ref: "ferry-a/hello:v1"},
		{name: "personal edition token cannot push to an EE instance", auth: personal, domain: hzDomain, ref: "apps/hello:v1", wantStatus: http.StatusUnauthorized},
		{name: "personal edition with access-credential password", auth: &authn.Basic{Username: "acr-puller@" + world.DemoAccountA, Password: f.password(t, world.DemoAccountA, "acr-puller").(*authn.Basic).Password}, domain: personalHZ, ref: "ferry-a/hello:v1"},
	}
	defer func() {
		logs := f.logs.String()
		for _, want := range []string{
			`msg="registry auth" site=cri-ahangzhou0001 principal=acs:ram::1000000000000001:user/acr-puller resource=repository:apps/hello action=push decision=deny`,
			`principal=anonymous resource=repository:public/hello action=pull decision=allow reason="public repository"`,
			`msg="registry access" site=cri-abeijing00001 decision=deny reason="source address 127.0.0.2 is not in the internet access whitelist"`,
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("log lacks %s", want)
			}
		}
	}()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []remote.Option{remote.WithAuth(tt.auth), remote.WithTransport(f.transport(tt.src)), remote.WithContext(t.Context())}
			ref := f.ref(t, tt.domain, tt.ref)
			if tt.push {
				err = remote.Write(ref, img, opts...)
			} else {
				_, err = remote.Image(ref, opts...)
				if err == nil {
					var im v1.Image
					im, err = remote.Image(ref, opts...)
					if err == nil {
						_, err = im.RawConfigFile()
					}
				}
			}
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if got := statusOf(err); got != tt.wantStatus {
				t.Fatalf("want HTTP %d, got %v (status %d)", tt.wantStatus, err, got)
			}
		})
	}
}

func mustInst(t *testing.T, w *world.World, id string) *world.Instance {
	t.Helper()
	i, ok := w.InstanceByID(id)
	if !ok {
		t.Fatalf("no instance %s", id)
	}
	return i
}

func assertSameImage(t *testing.T, want, got v1.Image) {
	t.Helper()
	wd, _ := want.Digest()
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if wd != gd {
		t.Fatalf("digest %s, want %s", gd, wd)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		rc.Close()
	}
}

func TestExpiredAuthorizationToken(t *testing.T) {
	f := newFixture(t, t.TempDir())
	tok := f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceAHangzhou)
	opts := []remote.Option{remote.WithAuth(tok), remote.WithTransport(f.transport("")), remote.WithContext(t.Context())}
	ref := f.ref(t, hzDomain, "apps/hello:v1")
	if _, err := remote.Head(ref, opts...); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	f.clock.Advance(time.Hour + time.Second)
	_, err := remote.Head(ref, opts...)
	if got := statusOf(err); got != http.StatusUnauthorized {
		t.Fatalf("expired token: want 401, got %v", err)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.ref(t, hzDomain, "apps/persist:v1")
	admin := f.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou)
	if err := remote.Write(ref, img, remote.WithAuth(admin), remote.WithTransport(f.transport("")), remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	f.stop()

	// A new world and a new front over the same data directory.
	g := newFixture(t, dir)
	admin = g.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou)
	got, err := remote.Image(g.ref(t, hzDomain, "apps/persist:v1"), remote.WithAuth(admin), remote.WithTransport(g.transport("")), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	assertSameImage(t, img, got)
	tags, err := g.front.ListTags(t.Context(), world.DemoInstanceAHangzhou, "apps", "persist")
	if err != nil || len(tags) != 1 || tags[0].Tag != "v1" || tags[0].Size <= 1024 {
		t.Fatalf("ListTags = %+v, %v", tags, err)
	}
	wd, _ := img.Digest()
	if tags[0].Digest != wd.String() {
		t.Fatalf("ListTags digest %s, want %s", tags[0].Digest, wd)
	}
	if cfg, _ := img.ConfigName(); tags[0].Config != cfg.String() {
		t.Fatalf("ListTags config %s, want %s", tags[0].Config, cfg)
	}
}

// TestListTagsPage pages through the tags registry storage holds: sorted by
// tag, each once, the total on every page, nothing past the end.
func TestListTagsPage(t *testing.T) {
	f := newFixture(t, t.TempDir())
	admin := f.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c", "d", "e"}
	for _, tag := range []string{"d", "a", "e", "c", "b"} {
		if err := remote.Write(f.ref(t, hzDomain, "apps/paged:"+tag), img, remote.WithAuth(admin), remote.WithTransport(f.transport("")), remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for offset := 0; offset <= 6; offset += 2 {
		page, total, err := f.front.ListTagsPage(t.Context(), world.DemoInstanceAHangzhou, "apps", "paged", offset, 2)
		if err != nil || total != 5 || len(page) != min(2, max(0, 5-offset)) {
			t.Fatalf("offset %d: %d tags, total %d, %v", offset, len(page), total, err)
		}
		for _, tg := range page {
			got = append(got, tg.Tag)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged tags %v, want %v", got, want)
	}
	if page, total, err := f.front.ListTagsPage(t.Context(), world.DemoInstanceAHangzhou, "apps", "never-pushed", 0, 10); err != nil || total != 0 || len(page) != 0 {
		t.Fatalf("empty repository: %v, %d, %v", page, total, err)
	}
}

// TestTokenEndpoint drives the realm directly: the OAuth2 POST form that
// containerd sends first, the challenge realm, and catalog access.
func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, t.TempDir())
	client := &http.Client{Transport: f.transport("")}
	base := "http://" + hzDomain + ":" + f.port
	service := "registry.aliyuncs.com:cn-hangzhou:china:" + world.DemoInstanceAHangzhou

	// The challenge names the realm on the host and scheme the client used.
	resp, err := client.Get(base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantChallenge := fmt.Sprintf(`Bearer realm="%s/auth",service="%s"`, base, service)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("GET /v2/ = %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), wantChallenge)
	}

	admin := f.token(t, "LTAI5tFerryAAdmin001", world.DemoInstanceAHangzhou).(*authn.Basic)
	puller := f.token(t, "LTAI5tFerryAPuller01", world.DemoInstanceAHangzhou).(*authn.Basic)
	tests := []struct {
		name       string
		user, pass string
		scope      string
		wantStatus int
		wantCode   int // status of GET /v2/_catalog with the token
	}{
		{name: "admin catalog", user: admin.Username, pass: admin.Password, scope: "registry:catalog:*", wantStatus: 200, wantCode: 200},
		{name: "puller catalog dropped", user: puller.Username, pass: puller.Password, scope: "registry:catalog:*", wantStatus: 200, wantCode: 401},
		{name: "bad password", user: puller.Username, pass: "x", scope: "registry:catalog:*", wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"password"}, "username": {tt.user}, "password": {tt.pass},
				"service": {service}, "scope": {tt.scope}, "client_id": {"containerd-client"}}
			resp, err := client.PostForm(base+"/auth", form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("POST /auth = %d %s", resp.StatusCode, body)
			}
			if strings.Contains(string(body), tt.pass) && tt.pass != "" {
				t.Fatal("token response echoes the password")
			}
			if tt.wantCode == 0 {
				return
			}
			tok := between(string(body), `"access_token":"`, `"`)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/_catalog", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			cr, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			cb, _ := io.ReadAll(cr.Body)
			cr.Body.Close()
			if cr.StatusCode != tt.wantCode {
				t.Fatalf("GET /v2/_catalog = %d %s, want %d", cr.StatusCode, cb, tt.wantCode)
			}
			if tt.wantCode == 200 && !strings.Contains(string(cb), "apps/hello") {
				t.Fatalf("catalog %s lacks apps/hello", cb)
			}
		})
	}

	// Bare address routing: X-Ferry-Registry-Host picks the instance.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/v2/", nil)
	req.Header.Set(registry.HostHeader, bDomain)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, world.DemoInstanceBHangzhou) {
		t.Fatalf("routing by %s: challenge %q does not name %s", registry.HostHeader, got, world.DemoInstanceBHangzhou)
	}
}

func TestBareAddressRouting(t *testing.T) {
	f := newFixture(t, t.TempDir())
	tests := []struct {
		name     string
		header   string
		query    string
		wantInst string
	}{
		{name: "X-Ferry-Registry-Host", header: bDomain, wantInst: world.DemoInstanceBHangzhou},
		{name: "containerd ns parameter", query: "?ns=" + bjVPCDomain + ":443", wantInst: world.DemoInstanceABeijing},
		{name: "header wins over ns", header: bDomain, query: "?ns=" + bjDomain, wantInst: world.DemoInstanceBHangzhou},
		{name: "default instance", wantInst: world.DemoInstanceAHangzhou},
		{name: "unknown header falls back to default", header: "nosuch.example.com", wantInst: world.DemoInstanceAHangzhou},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/v2/"+tt.query, nil)
			if tt.header != "" {
				req.Header.Set(registry.HostHeader, tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, ":"+tt.wantInst+`"`) || !strings.Contains(got, `realm="`+f.srv.URL+`/auth"`) {
				t.Fatalf("challenge %q does not name %s with realm %s/auth", got, tt.wantInst, f.srv.URL)
			}
		})
	}
}

// FuzzRealm sends arbitrary token requests to the realm: it must answer
// with a defined status and never echo the password it was given.
func FuzzRealm(f *testing.F) {
	fx := newFixture(f, f.TempDir())
	svc := "registry.aliyuncs.com:cn-hangzhou:china:" + world.DemoInstanceAHangzhou
	f.Add("GET", "service="+url.QueryEscape(svc)+"&scope=repository:apps/hello:pull", "cr_temp_user", "secretpw")
	f.Add("POST", "grant_type=password&username=admin&password=secretpw&service="+url.QueryEscape(svc)+"&scope=registry:catalog:*", "", "")
	f.Add("GET", "service=x&scope=a:b:c", "", "")
	f.Fuzz(func(t *testing.T, method, payload, user, pass string) {
		var req *http.Request
		if method == "POST" {
			req = httptest.NewRequest(http.MethodPost, "http://"+hzDomain+"/auth", strings.NewReader(payload))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(http.MethodGet, "http://"+hzDomain+"/auth", nil)
			req.URL.RawQuery = payload
			if user != "" && !strings.Contains(user, ":") {
				req.SetBasicAuth(user, pass)
			}
		}
		rec := httptest.NewRecorder()
		fx.front.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 403:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		if len(pass) >= 6 && strings.Contains(rec.Body.String(), pass) {
			t.Fatal("the response echoes the password")
		}
	})
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}
