package emulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

func TestInfoFileAndRegistryListeners(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{})
	raw, err := os.ReadFile(filepath.Join(env.DataDir, "info.json"))
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"region", "openapiEndpoint", "openapiTLSEndpoint", "caFile", "metadataProxy", "registryEndpoint", "registryTLSEndpoint", "accounts", "instances"} {
		if v, ok := generic[k]; !ok || v == "" || v == nil {
			t.Errorf("info file key %q missing or empty", k)
		}
	}
	if fi, err := os.Stat(filepath.Join(env.DataDir, "info.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("info file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if env.Info.Region != "cn-hangzhou" || env.Info.Instances[0].InstanceID != world.DemoInstanceAHangzhou {
		t.Errorf("info region %q, first instance %q; want the world's first instance (cn-hangzhou)", env.Info.Region, env.Info.Instances[0].InstanceID)
	}
	acctA := env.Account(t, world.DemoAccountA)
	if acctA.AccessKeyID == "" || acctA.AccessKeySecret == "" || len(acctA.Users) == 0 || len(acctA.Roles) == 0 {
		t.Fatalf("account A info incomplete: users %d roles %d", len(acctA.Users), len(acctA.Roles))
	}
	hz := env.Instance(t, world.DemoInstanceAHangzhou)
	_, tlsPort, _ := strings.Cut(env.Info.RegistryTLSEndpoint, ":")
	wantDomain := "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:" + tlsPort
	if len(hz.Domains) != 2 || hz.Domains[0] != wantDomain || hz.Image != wantDomain+"/apps/hello:v1" {
		t.Fatalf("instance info = %+v; want first domain %s", hz, wantDomain)
	}
	hosts, err := os.ReadFile(env.Info.HostsFile)
	if err != nil || !strings.Contains(string(hosts), "127.0.0.1 ferry-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com\n") {
		t.Fatalf("hosts file = %q, %v", hosts, err)
	}

	var admin emulator.InfoUser
	for _, u := range acctA.Users {
		if u.Name == "admin" {
			admin = u
		}
	}
	auth := &authn.Basic{Username: admin.Name, Password: admin.Password}

	// By domain over TLS, trusting the CA from the info file.
	ref, err := name.ParseReference(hz.Image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(auth), remote.WithTransport(env.Transport), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull %s over TLS: %v", hz.Image, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}

	// Address-only mode: the plain listener picks the instance from X-Ferry-Registry-Host.
	plain, err := name.ParseReference(env.Info.RegistryEndpoint+"/apps/hello:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	hostHeader := &headerTransport{next: env.Transport, key: "X-Ferry-Registry-Host", value: "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com"}
	desc, err := remote.Head(plain, remote.WithAuth(auth), remote.WithTransport(hostHeader), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull by address: %v", err)
	}
	d, _ := img.Digest()
	if desc.Digest != d {
		t.Fatalf("address-only digest %s, want %s (same instance)", desc.Digest, d)
	}
	if strings.Contains(env.Logs.String(), admin.Password) {
		t.Fatal("a password appears in the emulator log")
	}
}

type headerTransport struct {
	next       http.RoundTripper
	key, value string
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.key, h.value)
	return h.next.RoundTrip(r)
}

func TestFaultSwitch(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{})
	do := func(method, url, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := env.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	api := "http://" + env.Info.OpenAPIEndpoint + "/"
	realm := "http://" + env.Info.RegistryEndpoint + "/auth?service=x"

	// Through the admin endpoint, as the binary offers it.
	if code, body := do(http.MethodPost, env.Info.AdminURL, `{"action":"GetAuthorizationToken","status":503}`, nil); code != 200 || !strings.Contains(body, "GetAuthorizationToken") {
		t.Fatalf("set fault: %d %s", code, body)
	}
	tests := []struct {
		name     string
		url      string
		body     string
		hdr      map[string]string
		wantCode int
		faulted  bool
	}{
		{name: "ACS3 header action", url: api, hdr: map[string]string{"x-acs-action": "GetAuthorizationToken"}, faulted: true, wantCode: 503},
		{name: "RPC query action", url: api + "?Action=GetAuthorizationToken", faulted: true, wantCode: 503},
		{name: "RPC form action", url: api, body: "Action=GetAuthorizationToken&Format=JSON", hdr: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, faulted: true, wantCode: 503},
		{name: "other action", url: api, hdr: map[string]string{"x-acs-action": "ListInstance"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(http.MethodPost, tt.url, tt.body, tt.hdr)
			isFault := strings.Contains(body, "fault switch")
			if isFault != tt.faulted || (tt.faulted && code != tt.wantCode) {
				t.Fatalf("got %d %s; faulted=%v want %v", code, body, isFault, tt.faulted)
			}
			if tt.faulted && !strings.Contains(body, `"Code":"ServiceUnavailable"`) {
				t.Fatalf("fault body %s lacks the error code", body)
			}
		})
	}

	// The registry token realm, through the Env helper.
	env.Fault(emulator.RegistryTokenAction, http.StatusServiceUnavailable)
	if code, _ := do(http.MethodGet, realm, "", nil); code != 503 {
		t.Fatalf("realm with fault: %d, want 503", code)
	}
	env.ClearFaults()
	if code, _ := do(http.MethodGet, realm, "", nil); code == 503 {
		t.Fatal("realm still faulted after ClearFaults")
	}
	if code, body := do(http.MethodGet, env.Info.AdminURL, "", nil); code != 200 || !strings.Contains(body, `"faults":[]`) {
		t.Fatalf("list faults: %d %s", code, body)
	}
	if code, _ := do(http.MethodPost, env.Info.AdminURL, `{"action":"X","status":200}`, nil); code != http.StatusBadRequest {
		t.Fatalf("non-error status accepted: %d", code)
	}
}

func TestRestartReusesCAAndImages(t *testing.T) {
	dir := t.TempDir()
	first := emulatorenv.Start(t, emulatorenv.Options{DataDir: dir})
	ca1, err := os.ReadFile(first.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	hz := first.Instance(t, world.DemoInstanceAHangzhou)
	ref, _ := name.ParseReference(hz.Image)
	desc1, err := remote.Head(ref, remote.WithAuth(authn.Anonymous), remote.WithTransport(first.Transport), remote.WithContext(t.Context()))
	if err == nil {
		t.Fatalf("anonymous HEAD of a private image succeeded: %v", desc1.Digest)
	}
	if err := first.Emulator.Close(); err != nil {
		t.Fatal(err)
	}
	second := emulatorenv.Start(t, emulatorenv.Options{DataDir: dir})
	ca2, err := os.ReadFile(second.Info.CAFile)
	if err != nil || !bytes.Equal(ca1, ca2) {
		t.Fatalf("CA changed across restart (err %v)", err)
	}
	pub := second.Instance(t, world.DemoInstanceAHangzhou)
	var public string
	for _, im := range pub.Images {
		if strings.Contains(im, "/public/") {
			public = im
		}
	}
	pref, _ := name.ParseReference(public)
	if _, err := remote.Head(pref, remote.WithAuth(authn.Anonymous), remote.WithTransport(second.Transport), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("anonymous HEAD of public %s after restart: %v", public, err)
	}
}
