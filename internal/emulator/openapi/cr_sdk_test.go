package openapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/ferrypull/ferry/internal/emulator/signature"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

func TestCRGetAuthorizationTokenWithAccessKey(t *testing.T) {
	e := newEnv(t, envOptions{world: world.DefaultOptions{TokenTTL: 10 * time.Minute}})
	secret := e.secret(t, "LTAI5tFerryAPuller01")
	for _, tc := range []struct {
		name string
		o    clientOpts
	}{
		{"ACS3 http", clientOpts{}},
		{"ACS3 https", clientOpts{tls: true}},
		{"RPC v1 http", clientOpts{algorithm: "v2"}},
		{"RPC v1 https", clientOpts{algorithm: "v2", tls: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.cr(t, "LTAI5tFerryAPuller01", secret, tc.o)
			before := time.Now()
			res, err := c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
			if err != nil {
				t.Fatal(err)
			}
			b := res.Body
			if !tea.BoolValue(b.IsSuccess) || tea.StringValue(b.Code) != "success" || tea.StringValue(b.RequestId) == "" {
				t.Fatalf("body = %s", b)
			}
			e.remember(tea.StringValue(b.AuthorizationToken))
			exp := time.UnixMilli(tea.Int64Value(b.ExpireTime))
			if exp.Before(before.Add(10*time.Minute-time.Second)) || exp.After(time.Now().Add(10*time.Minute)) {
				t.Errorf("ExpireTime %v is not now+10m", exp)
			}
			p, inst, err := e.svc.LookupRegistryToken(tea.StringValue(b.TempUsername), tea.StringValue(b.AuthorizationToken))
			if err != nil || inst.ID != world.DemoInstanceAHangzhou || p.User.Name != "acr-puller" {
				t.Fatalf("token does not resolve: %v", err)
			}
			ep, err := c.ListInstanceEndpoint(&cr.ListInstanceEndpointRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou), ModuleName: tea.String("Registry")})
			if err != nil {
				t.Fatal(err)
			}
			var domains []string
			for _, x := range ep.Body.Endpoints {
				if tea.BoolValue(x.Enable) {
					for _, d := range x.Domains {
						domains = append(domains, tea.StringValue(d.Domain))
					}
				}
			}
			if strings.Join(domains, ",") != "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com,ferry-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com" {
				t.Errorf("domains = %v", domains)
			}
		})
	}
}

// recorder keeps the first request of each action so a test can replay it byte for byte.
type recorder struct {
	mu   sync.Mutex
	reqs map[string]*http.Request
	body map[string]string
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		key := r.Header.Get("x-acs-action")
		if _, seen := rec.reqs[key]; !seen {
			rec.reqs[key] = r.Clone(context.WithoutCancel(r.Context()))
			rec.body[key] = string(b)
		}
		rec.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		h.ServeHTTP(w, r)
	})
}

func (rec *recorder) replay(t *testing.T, base, action string) (int, string) {
	t.Helper()
	rec.mu.Lock()
	orig := rec.reqs[action]
	body := rec.body[action]
	rec.mu.Unlock()
	req, err := http.NewRequestWithContext(t.Context(), orig.Method, base+orig.URL.RequestURI(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = orig.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCRDenied(t *testing.T) {
	rec := &recorder{reqs: map[string]*http.Request{}, body: map[string]string{}}
	e := newEnv(t, envOptions{wrap: rec.wrap})
	puller, deployer := e.secret(t, "LTAI5tFerryAPuller01"), e.secret(t, "LTAI5tFerryADeploy01")
	for _, tc := range []struct {
		name, ak, secret, instance string
		o                          clientOpts
		wantCode                   string
		wantStatus                 int
		wantMsg                    string
	}{
		{"unknown AK", "LTAI5tNobody00001", "x", world.DemoInstanceAHangzhou, clientOpts{}, "InvalidAccessKeyId.NotFound", 404, ""},
		{"bad signature ACS3", "LTAI5tFerryAPuller01", puller + "x", world.DemoInstanceAHangzhou, clientOpts{}, "SignatureDoesNotMatch", 400, "server string to sign is:ACS3-HMAC-SHA256\n"},
		{"bad signature RPC", "LTAI5tFerryAPuller01", puller + "x", world.DemoInstanceAHangzhou, clientOpts{algorithm: "v2"}, "SignatureDoesNotMatch", 400, "server string to sign is:POST&%2F&AccessKeyId%3DLTAI5tFerryAPuller01"},
		{"other account's instance", "LTAI5tFerryAPuller01", puller, world.DemoInstanceBHangzhou, clientOpts{}, "NoPrivilege", 403, "Access denied"},
		{"user without cr:GetAuthorizationToken", "LTAI5tFerryADeploy01", deployer, world.DemoInstanceAHangzhou, clientOpts{}, "NoPrivilege", 403, ""},
		{"unknown instance", "LTAI5tFerryAPuller01", puller, "cri-nope", clientOpts{}, "INSTANCE_NOT_EXIST", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.cr(t, tc.ak, tc.secret, tc.o).GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(tc.instance)})
			code, status := errCode(err)
			if code != tc.wantCode || status != tc.wantStatus {
				t.Fatalf("error = %v (code %q, status %d), want %s/%d", err, code, status, tc.wantCode, tc.wantStatus)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.wantMsg)
			}
		})
	}
	t.Run("replayed nonce", func(t *testing.T) {
		_, err := e.cr(t, "LTAI5tFerryAPuller01", puller, clientOpts{}).ListInstanceEndpoint(&cr.ListInstanceEndpointRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
		if err != nil {
			t.Fatal(err)
		}
		status, body := rec.replay(t, e.plain.URL, "ListInstanceEndpoint")
		if status != 400 || !strings.Contains(body, `"Code":"SignatureNonceUsed"`) || !strings.Contains(body, `"RequestId"`) {
			t.Fatalf("replay = %d %s", status, body)
		}
	})
	t.Run("skewed timestamp", func(t *testing.T) {
		e.clock.Advance(16 * time.Minute)
		defer e.clock.Advance(-16 * time.Minute)
		for _, alg := range []string{"", "v2"} {
			_, err := e.cr(t, "LTAI5tFerryAPuller01", puller, clientOpts{algorithm: alg}).GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
			if code, status := errCode(err); code != "InvalidTimeStamp.Expired" || status != 400 {
				t.Fatalf("alg %q: %v", alg, err)
			}
		}
	})
}

type staticTags map[string][]Tag

func (s staticTags) ListTags(_ context.Context, inst *world.Instance, ns, repo string, offset, limit int) ([]Tag, int, error) {
	all := s[inst.ID+"/"+ns+"/"+repo]
	return all[min(offset, len(all)):min(offset+limit, len(all))], len(all), nil
}

func TestCRNamespacesRepositoriesTags(t *testing.T) {
	updated := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tags := staticTags{world.DemoInstanceAHangzhou + "/team/api": {{Tag: "v1", Digest: "sha256:abc", Size: 1234, Updated: updated}}}
	e := newEnv(t, envOptions{opts: []Option{WithTagLister(tags)}})
	admin := e.cr(t, "LTAI5tFerryAAdmin001", e.secret(t, "LTAI5tFerryAAdmin001"), clientOpts{})
	inst := tea.String(world.DemoInstanceAHangzhou)

	insts, err := admin.ListInstance(&cr.ListInstanceRequest{InstanceName: tea.String("ferry-a")})
	if err != nil {
		t.Fatal(err)
	}
	if tea.Int32Value(insts.Body.TotalCount) != 2 || len(insts.Body.Instances) != 2 || tea.StringValue(insts.Body.Instances[0].InstanceId) != world.DemoInstanceABeijing {
		t.Errorf("ListInstance = %s", insts.Body)
	}
	gi, err := admin.GetInstance(&cr.GetInstanceRequest{InstanceId: inst})
	if err != nil || tea.StringValue(gi.Body.InstanceStatus) != "RUNNING" || tea.Int64Value(gi.Body.CreateTime) == 0 {
		t.Fatalf("GetInstance = %v %v", gi, err)
	}
	if _, err := admin.CreateNamespace(&cr.CreateNamespaceRequest{InstanceId: inst, NamespaceName: tea.String("team"), AutoCreateRepo: tea.Bool(true), DefaultRepoType: tea.String("PUBLIC")}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.CreateNamespace(&cr.CreateNamespaceRequest{InstanceId: inst, NamespaceName: tea.String("team")})
	if code, status := errCode(err); code != "NAMESPACE_ALREADY_EXIST" || status != 400 {
		t.Errorf("duplicate namespace: %v", err)
	}
	ns, err := admin.ListNamespace(&cr.ListNamespaceRequest{InstanceId: inst, PageSize: tea.Int32(2), PageNo: tea.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(ns.Body.TotalCount) != "5" || len(ns.Body.Namespaces) != 2 {
		t.Errorf("ListNamespace = %s", ns.Body)
	}
	cr1, err := admin.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team"), RepoName: tea.String("api"), RepoType: tea.String("PRIVATE"), Summary: tea.String("s")})
	if err != nil || !strings.HasPrefix(tea.StringValue(cr1.Body.RepoId), "crr-") {
		t.Fatalf("CreateRepository = %v %v", cr1, err)
	}
	repos, err := admin.ListRepository(&cr.ListRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team")})
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(repos.Body.TotalCount) != "1" || tea.StringValue(repos.Body.Repositories[0].RepoId) != tea.StringValue(cr1.Body.RepoId) || tea.StringValue(repos.Body.Repositories[0].RepoType) != "PRIVATE" {
		t.Errorf("ListRepository = %s", repos.Body)
	}
	rt, err := admin.ListRepoTag(&cr.ListRepoTagRequest{InstanceId: inst, RepoId: cr1.Body.RepoId})
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(rt.Body.TotalCount) != "1" || tea.StringValue(rt.Body.Images[0].Tag) != "v1" || tea.Int64Value(rt.Body.Images[0].ImageSize) != 1234 ||
		tea.StringValue(rt.Body.Images[0].ImageUpdate) != "1767323045000" {
		t.Errorf("ListRepoTag = %s", rt.Body)
	}
	// The pull-only user may not create repositories.
	puller := e.cr(t, "LTAI5tFerryAPuller01", e.secret(t, "LTAI5tFerryAPuller01"), clientOpts{})
	_, err = puller.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team"), RepoName: tea.String("x"), RepoType: tea.String("PRIVATE")})
	if code, _ := errCode(err); code != "NoPrivilege" {
		t.Errorf("puller CreateRepository: %v", err)
	}
	// The image-syncer user may create repositories in its namespace only.
	syncer := e.cr(t, "LTAI5tFerryASyncer01", e.secret(t, "LTAI5tFerryASyncer01"), clientOpts{})
	if _, err := syncer.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("image-syncer"), RepoName: tea.String("x"), RepoType: tea.String("PRIVATE")}); err != nil {
		t.Errorf("syncer CreateRepository: %v", err)
	}
	_, err = syncer.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team"), RepoName: tea.String("y"), RepoType: tea.String("PRIVATE")})
	if code, _ := errCode(err); code != "NoPrivilege" {
		t.Errorf("syncer CreateRepository outside its namespace: %v", err)
	}
}

// TestAbsoluteURIThroughProxy: a client that keeps the real endpoint name and uses the emulator
// as its HTTP proxy sends absolute-URI request lines (POST http://cr.cn-hangzhou.aliyuncs.com/?…);
// the signed host is the real name and verification still succeeds.
func TestAbsoluteURIThroughProxy(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, alg := range []string{"", "v2"} {
		cfg := e.config("LTAI5tFerryAPuller01", e.secret(t, "LTAI5tFerryAPuller01"), clientOpts{algorithm: alg})
		cfg.Endpoint, cfg.HttpProxy = tea.String("cr.cn-hangzhou.aliyuncs.com"), tea.String(e.plain.URL)
		c, err := cr.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
		if err != nil {
			t.Fatalf("alg %q: %v", alg, err)
		}
		e.remember(tea.StringValue(res.Body.AuthorizationToken))
	}
}

// TestDomainAdvertiser: ListInstanceEndpoint reports each domain as the
// advertiser maps it (the emulator adds its registry port), asked per request.
func TestDomainAdvertiser(t *testing.T) {
	var port atomic.Value
	port.Store(":1")
	e := newEnv(t, envOptions{opts: []Option{WithDomainAdvertiser(func(d string) string { return d + port.Load().(string) })}})
	c := e.cr(t, "LTAI5tFerryAPuller01", e.secret(t, "LTAI5tFerryAPuller01"), clientOpts{})
	for _, p := range []string{":1", ":5443"} {
		port.Store(p)
		ep, err := c.ListInstanceEndpoint(&cr.ListInstanceEndpointRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range ep.Body.Endpoints {
			for _, d := range x.Domains {
				got = append(got, tea.StringValue(d.Domain))
			}
		}
		if want := "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com" + p + ",ferry-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com" + p; strings.Join(got, ",") != want {
			t.Errorf("domains = %v, want %s", got, want)
		}
	}
}

// TestReplayAfterAnonymousFlood (hostile input, regression): unsigned AssumeRoleWithOIDC
// requests with fresh nonces used to flush the shared nonce memory, after which a captured
// signed request replayed. It must stay SignatureNonceUsed however many come in between.
func TestReplayAfterAnonymousFlood(t *testing.T) {
	rec := &recorder{reqs: map[string]*http.Request{}, body: map[string]string{}}
	v := signature.NewVerifier()
	v.MaxNonces, v.MaxNoncesPerKey = 16, 8
	e := newEnv(t, envOptions{wrap: rec.wrap, opts: []Option{WithSignatureVerifier(v)}})
	v.Now = e.clock.Now
	c := e.cr(t, "LTAI5tFerryAPuller01", e.secret(t, "LTAI5tFerryAPuller01"), clientOpts{})
	if _, err := c.ListInstanceEndpoint(&cr.ListInstanceEndpointRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		q := url.Values{"Action": {"AssumeRoleWithOIDC"}, "Version": {"2015-04-01"}, "Format": {"JSON"},
			"SignatureNonce": {fmt.Sprintf("flood-%d", i)}, "Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05Z")},
			"RoleArn": {"acs:ram::" + world.DemoAccountA + ":role/" + world.DemoRRSARole}, "RoleSessionName": {"flood"},
			"OIDCProviderArn": {"acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID}, "OIDCToken": {"x.y.z"}}
		resp, err := http.Post(e.plain.URL+"/?"+q.Encode(), "application/x-www-form-urlencoded", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	status, body := rec.replay(t, e.plain.URL, "ListInstanceEndpoint")
	if status != 400 || !strings.Contains(body, `"Code":"SignatureNonceUsed"`) {
		t.Fatalf("replay after the flood = %d %s", status, body)
	}
}
