package imds

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapiv2 "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	sts "github.com/alibabacloud-go/sts-20150401/v2/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/ferrypull/ferry/internal/emulator/openapi"
	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

type fixture struct {
	svc  *ram.Service
	meta *httptest.Server
	api  *httptest.Server
	logs *bytes.Buffer
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	w, err := world.Default(world.DefaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: ram.New(w), logs: &bytes.Buffer{}}
	f.meta = httptest.NewServer(New(f.svc, append([]Option{WithLogger(slog.New(slog.NewJSONHandler(f.logs, nil)))}, opts...)...))
	f.api = httptest.NewServer(openapi.New(f.svc))
	t.Cleanup(f.meta.Close)
	t.Cleanup(f.api.Close)
	return f
}

// TestECSRAMRoleThroughProxy: credentials-go's ecs_ram_role provider reaches the hard-coded
// 100.100.100.200 through the handler used as HTTP proxy, in both normal and hardened mode,
// and the CR SDK then mints a registry token with the worker role's credentials.
func TestECSRAMRoleThroughProxy(t *testing.T) {
	for _, tc := range []struct {
		name          string
		hardened      bool
		disableIMDSv1 bool
	}{
		{"IMDSv2 with v1 fallback", false, false},
		{"hardened, IMDSv1 disabled", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Hardened(tc.hardened))
			p, err := providers.NewECSRAMRoleCredentialsProviderBuilder().WithDisableIMDSv1(tc.disableIMDSv1).
				WithHttpOptions(&providers.HttpOptions{Proxy: f.meta.URL}).Build()
			if err != nil {
				t.Fatal(err)
			}
			cred := credentials.FromCredentialsProvider("ecs_ram_role", p)
			got, err := cred.GetCredential()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tea.StringValue(got.AccessKeyId), "STS.") || tea.StringValue(got.SecurityToken) == "" {
				t.Fatalf("credential %s", tea.StringValue(got.AccessKeyId))
			}
			crc, err := cr.NewClient(&openapiv2.Config{Credential: cred, RegionId: tea.String("cn-hangzhou"),
				Endpoint: tea.String(strings.TrimPrefix(f.api.URL, "http://")), Protocol: tea.String("http")})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := crc.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
			if err != nil {
				t.Fatal(err)
			}
			sess, _, err := f.svc.LookupRegistryToken(tea.StringValue(tok.Body.TempUsername), tea.StringValue(tok.Body.AuthorizationToken))
			if err != nil || sess.Role.Name != world.DemoWorkerRole || sess.Chain[0] != "ecs.aliyuncs.com" {
				t.Fatalf("token principal %v %v", sess, err)
			}
			// The worker role session can chain into account B's acr-pull role.
			stsc, err := sts.NewClient(&openapiv2.Config{AccessKeyId: got.AccessKeyId, AccessKeySecret: got.AccessKeySecret, SecurityToken: got.SecurityToken,
				Endpoint: tea.String(strings.TrimPrefix(f.api.URL, "http://")), Protocol: tea.String("http")})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stsc.AssumeRole(&sts.AssumeRoleRequest{RoleArn: tea.String("acs:ram::" + world.DemoAccountB + ":role/acr-pull"), RoleSessionName: tea.String("node")}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(f.logs.String(), tea.StringValue(got.AccessKeySecret)) || strings.Contains(f.logs.String(), tea.StringValue(got.SecurityToken)) {
				t.Error("a credential reached the metadata log")
			}
		})
	}
}

func do(t *testing.T, proxy, method, path string, hdr map[string]string) (int, string) {
	t.Helper()
	pu, _ := url.Parse(proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://100.100.100.200"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetadataRequests(t *testing.T) {
	f := newFixture(t)
	hard := newFixture(t, Hardened(true))
	_, token := do(t, f.meta.URL, http.MethodPut, "/latest/api/token", map[string]string{HeaderTokenTTL: "60"})
	for _, tc := range []struct {
		name, proxy, method, path string
		hdr                       map[string]string
		status                    int
		body                      string
	}{
		{"role name", f.meta.URL, "GET", credsPrefix, nil, 200, world.DemoWorkerRole},
		{"role name with token", f.meta.URL, "GET", credsPrefix, map[string]string{HeaderToken: token}, 200, world.DemoWorkerRole},
		{"bad token", f.meta.URL, "GET", credsPrefix, map[string]string{HeaderToken: "nope"}, 401, ""},
		{"token TTL missing", f.meta.URL, "PUT", "/latest/api/token", nil, 400, ""},
		{"token TTL too long", f.meta.URL, "PUT", "/latest/api/token", map[string]string{HeaderTokenTTL: "21601"}, 400, ""},
		{"token by GET", f.meta.URL, "GET", "/latest/api/token", nil, 405, ""},
		{"other role", f.meta.URL, "GET", credsPrefix + "admin", nil, 404, ""},
		{"hardened tokenless", hard.meta.URL, "GET", credsPrefix, nil, 403, ""},
		{"instance id", f.meta.URL, "GET", "/latest/meta-data/instance-id", nil, 200, "i-ferry0emulator01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, tc.proxy, tc.method, tc.path, tc.hdr)
			if status != tc.status || (tc.body != "" && body != tc.body) {
				t.Fatalf("%s %s = %d %q, want %d %q", tc.method, tc.path, status, body, tc.status, tc.body)
			}
		})
	}
	status, body := do(t, f.meta.URL, "GET", credsPrefix+world.DemoWorkerRole, nil)
	var creds map[string]string
	if err := json.Unmarshal([]byte(body), &creds); err != nil || status != 200 {
		t.Fatalf("credentials %d: %v", status, err)
	}
	exp, err := time.Parse("2006-01-02T15:04:05Z", creds["Expiration"])
	if creds["Code"] != "Success" || err != nil || time.Until(exp) < 5*time.Hour {
		t.Errorf("credentials = Code %q, Expiration %q", creds["Code"], creds["Expiration"])
	}
	// Cached: a second read returns the same session.
	_, body2 := do(t, f.meta.URL, "GET", credsPrefix+world.DemoWorkerRole, nil)
	var creds2 map[string]string
	_ = json.Unmarshal([]byte(body2), &creds2)
	if creds2["AccessKeyId"] != creds["AccessKeyId"] {
		t.Error("credentials were not reused")
	}
}
