package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

// TestMetadataProxy reaches the hard-coded ECS metadata address through the
// emulator's metadata listener used as an HTTP proxy (IMDSv2).
func TestMetadataProxy(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{})
	proxy, err := url.Parse(env.Info.MetadataProxy)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	do := func(method, u string, hdr http.Header) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, u, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, tok := do(http.MethodPut, "http://100.100.100.200/latest/api/token", http.Header{"X-Aliyun-Ecs-Metadata-Token-Ttl-Seconds": {"60"}})
	if code != 200 || tok == "" {
		t.Fatalf("IMDSv2 token: %d %q", code, tok)
	}
	code, role := do(http.MethodGet, "http://100.100.100.200/latest/meta-data/ram/security-credentials/", http.Header{"X-Aliyun-Ecs-Metadata-Token": {tok}})
	if code != 200 || strings.TrimSpace(role) != world.DemoWorkerRole {
		t.Fatalf("role name: %d %q, want %s", code, role, world.DemoWorkerRole)
	}
	code, creds := do(http.MethodGet, "http://100.100.100.200/latest/meta-data/ram/security-credentials/"+world.DemoWorkerRole, http.Header{"X-Aliyun-Ecs-Metadata-Token": {tok}})
	var got struct{ Code, AccessKeyId, Expiration string }
	if err := json.Unmarshal([]byte(creds), &got); err != nil || code != 200 || got.Code != "Success" || !strings.HasPrefix(got.AccessKeyId, "STS.") || got.Expiration == "" {
		t.Fatalf("role credentials: %d code %q ak %q err %v (body withheld)", code, got.Code, got.AccessKeyId, err)
	}
}
