package app

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/imagesync/report"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestHarborToACREmulatorWithRAMCredentials syncs from a Harbor-like docker-registry into the
// acr-emulator's Enterprise registry using only an AccessKey in the auth file: the token is minted
// with GetAuthorizationToken through the official SDK (internal/acr).
func TestHarborToACREmulatorWithRAMCredentials(t *testing.T) {
	h := startHarbor(t)
	env := emulatorenv.Start(t, emulatorenv.Options{})
	var inst emulator.InfoInstance
	for _, in := range env.Info.Instances {
		if in.Edition != "Personal" && len(in.Domains) > 0 {
			inst = in
			break
		}
	}
	if inst.InstanceID == "" {
		t.Fatal("no Enterprise instance in the demo world")
	}
	acct := env.Account(t, inst.OwnerUID)
	domain := inst.Domains[0]
	hc, err := cloudcred.NewHTTPClient(env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	auth := h.write(t, "acr-auth.yaml", fmt.Sprintf(`
%s: {username: %q, password: %q, insecure: true}
%s:
  accessKeyId: %s
  accessKeySecret: %s
  instanceId: %s
  regionId: %s
`, h.src.Addr, robotUser, robotPass, domain, acct.AccessKeyID, acct.AccessKeySecret, inst.InstanceID, inst.RegionID))
	images := h.write(t, "acr-images.yaml", fmt.Sprintf(`
%[1]s/library/app: %[2]s/%[3]s/app
%[1]s/library/oci:1: %[2]s/%[3]s/oci
`, h.src.Addr, domain, inst.Namespace))
	reportFile := filepath.Join(h.dir, "acr-report.json")
	ct := &methodCounter{inner: env.Transport, n: map[string]int{}}
	run := func() runResult {
		var r runResult
		var out, errb strings.Builder
		cmd := NewCommand(Options{
			Transport: ct,
			ACR: ACRConfig{
				Client:   acr.ClientOptions{DialAddr: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
				Resolver: cloudcred.Options{Region: inst.RegionID, STSEndpoint: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
			},
		}.Run, operator.Streams{Out: &out, Err: &errb}, []string{"--auth", auth, "--images", images, "--report", reportFile, "--retries", "0"})
		r.err = cmd.ExecuteContext(t.Context())
		r.stdout, r.stderr = out.String(), errb.String()
		return r
	}
	for i, want := range []struct{ copied, skipped int }{{4, 0}, {0, 4}} {
		r := run()
		if i == 0 {
			// the two-request upload (POST ?mount=&from=, monolithic PUT) works with ACR's bearer
			// tokens: no chunked PATCH fallback was needed
			if ct.get("PATCH") != 0 || ct.get("PUT blob") == 0 {
				t.Errorf("uploads: %v", ct.snapshot())
			}
		}
		if r.err != nil {
			t.Fatalf("run %d: %v\n%s", i, r.err, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, acct.AccessKeySecret) {
			t.Error("AccessKey secret in output")
		}
		noSecrets(t, r.stdout+r.stderr)
		var rep report.Report
		data, _ := os.ReadFile(reportFile)
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Summary.Copied != want.copied || rep.Summary.Skipped != want.skipped {
			t.Fatalf("run %d: summary %+v\n%s", i, rep.Summary, r.stderr)
		}
		for _, img := range rep.Images {
			src := strings.TrimPrefix(img.Source, h.src.Addr+"/")
			for _, d := range img.Destinations {
				if d.Digest != h.digests[src].String() {
					t.Errorf("run %d: %s -> %s digest %s, want %s", i, img.Source, d.Ref, d.Digest, h.digests[src])
				}
			}
		}
	}
}

// methodCounter counts requests by method (and "PUT blob" for blob upload commits).
type methodCounter struct {
	inner http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
}

func (c *methodCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method]++
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
		c.n["PUT blob"]++
	}
	c.mu.Unlock()
	return c.inner.RoundTrip(r)
}

func (c *methodCounter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *methodCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// TestDeniedPushHintsAtPermissions: the acr-puller user of the demo world may pull but not push.
// A sync into its instance fails naming the permission, not with a bare "401 Unauthorized" of
// a HEAD request; an error from the ACR token API keeps its words ("GetAuthorizationToken").
func TestDeniedPushHintsAtPermissions(t *testing.T) {
	h := startHarbor(t)
	env := emulatorenv.Start(t, emulatorenv.Options{})
	inst := env.Instance(t, world.DemoInstanceAHangzhou)
	puller := env.User(t, inst.OwnerUID, "acr-puller")
	hc, err := cloudcred.NewHTTPClient(env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	domain := inst.Domains[0]
	auth := h.write(t, "denied-auth.yaml", fmt.Sprintf(`
%s: {username: %q, password: %q, insecure: true}
%s: {accessKeyId: %s, accessKeySecret: %s, instanceId: %s, regionId: %s}
`, h.src.Addr, robotUser, robotPass, domain, puller.AccessKeyID, puller.AccessKeySecret, inst.InstanceID, inst.RegionID))
	images := h.write(t, "denied-images.yaml", fmt.Sprintf("%s/library/app:v1: %s/%s/app\n", h.src.Addr, domain, inst.Namespace))
	reportFile := filepath.Join(h.dir, "denied-report.json")
	run := func() (string, string) {
		var out, errb strings.Builder
		cmd := NewCommand(Options{
			Transport: env.Transport,
			Retry:     &quick,
			ACR: ACRConfig{
				Client:   acr.ClientOptions{DialAddr: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
				Resolver: cloudcred.Options{Region: inst.RegionID, STSEndpoint: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
			},
		}.Run, operator.Streams{Out: &out, Err: &errb}, []string{"--auth", auth, "--images", images, "--report", reportFile, "--retries", "0", "--state-dir", ""})
		err := cmd.ExecuteContext(t.Context())
		var rep report.Report
		data, _ := os.ReadFile(reportFile)
		_ = json.Unmarshal(data, &rep)
		if err == nil || rep.Summary.Failed != 1 {
			t.Fatalf("err %v, summary %+v\n%s", err, rep.Summary, errb.String())
		}
		if strings.Contains(errb.String()+out.String()+string(data), puller.AccessKeySecret) {
			t.Error("AccessKey secret in the output")
		}
		return rep.Images[0].Error, errb.String()
	}
	msg, _ := run()
	t.Logf("denied push: %s", msg)
	if !strings.Contains(msg, "the destination refused the push (POST 401: UNAUTHORIZED: authentication required): the credentials used for "+domain) ||
		!strings.Contains(msg, "may not push to "+inst.Namespace+"/app") {
		t.Errorf("the error does not hint at push permissions: %s", msg)
	}

	// the token API fails: its error is not redacted into "[redacted] token for …"
	env.Fault("GetAuthorizationToken", http.StatusForbidden)
	defer env.ClearFaults()
	msg, log := run()
	t.Logf("token API down: %s", msg)
	if strings.Contains(msg+log, redact.Placeholder+" token for") || !strings.Contains(msg, "could not mint an ACR token (acr: token for "+inst.RegionID+"/"+inst.InstanceID) {
		t.Errorf("the token API error is over-redacted or unclear: %s", msg)
	}
}

// TestACRSourceListedThroughOpenAPI: a namespace rule whose source is an ACR Enterprise instance
// reached with RAM credentials is listed with ListRepository and ListRepoTag (the requests are
// counted at the OpenAPI), not with the registry's /v2/_catalog or tags list, and is copied.
func TestACRSourceListedThroughOpenAPI(t *testing.T) {
	h := startHarbor(t)
	env := emulatorenv.Start(t, emulatorenv.Options{})
	inst := env.Instance(t, world.DemoInstanceAHangzhou)
	acct := env.Account(t, inst.OwnerUID)
	hc, err := cloudcred.NewHTTPClient(env.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	actions := &actionCounter{inner: hc.Transport, n: map[string]int{}}
	hc.Transport = actions
	domain := inst.Domains[0]
	auth := h.write(t, "acr-src-auth.yaml", fmt.Sprintf(`
%s: {accessKeyId: %s, accessKeySecret: %s, instanceId: %s, regionId: %s}
%s: {username: %q, password: %q, insecure: true}
`, domain, acct.AccessKeyID, acct.AccessKeySecret, inst.InstanceID, inst.RegionID, h.src.Addr, robotUser, robotPass))
	// the destination is the plain-HTTP docker-registry (the emulator's transport reaches it)
	images := h.write(t, "acr-src-images.yaml", fmt.Sprintf("%q: %s/from-acr\n", domain+"/"+inst.Namespace+"/*", h.src.Addr))
	reg := &methodCounter{inner: env.Transport, n: map[string]int{}}
	paths := &pathCounter{inner: reg, n: map[string]int{}}
	var out, errb strings.Builder
	cmd := NewCommand(Options{
		Transport: paths,
		ACR: ACRConfig{
			// the endpoint itself (no DialAddr, which would replace the counting transport)
			Client:   acr.ClientOptions{Endpoint: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
			Resolver: cloudcred.Options{Region: inst.RegionID, STSEndpoint: env.Info.OpenAPITLSEndpoint, HTTPClient: hc},
		},
	}.Run, operator.Streams{Out: &out, Err: &errb}, []string{"--auth", auth, "--images", images, "--retries", "0", "--state-dir", ""})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if actions.get("ListRepository") == 0 || actions.get("ListRepoTag") == 0 {
		t.Errorf("OpenAPI actions %v, want ListRepository and ListRepoTag", actions.snapshot())
	}
	if n := paths.get("/v2/_catalog") + paths.get("tags/list"); n != 0 {
		t.Errorf("%d registry listing requests, want none (the OpenAPI lists)", n)
	}
	if strings.Contains(out.String()+errb.String(), acct.AccessKeySecret) {
		t.Error("AccessKey secret in the output")
	}
	// the seeded image is in the mirror with its digest
	seeded := strings.TrimPrefix(inst.Image, domain+"/"+inst.Namespace+"/")
	ref, err := name.ParseReference(h.src.Addr+"/from-acr/"+seeded, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, h.src.Options(t.Context(), robotUser, robotPass)...); err != nil {
		t.Errorf("%s not copied (source %s): %v\n%s", seeded, inst.Image, err, errb.String())
	}
}

// actionCounter counts OpenAPI requests by Action (RPC query or x-acs-action header).
type actionCounter struct {
	inner http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
}

func (c *actionCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	var a string
	for k, vs := range r.Header { // the SDK sets the key in lower case, not canonical
		if strings.EqualFold(k, "x-acs-action") && len(vs) > 0 {
			a = vs[0]
		}
	}
	if a == "" {
		a = r.URL.Query().Get("Action")
	}
	c.mu.Lock()
	c.n[a]++
	c.mu.Unlock()
	inner := c.inner
	if inner == nil {
		inner = http.DefaultTransport
	}
	return inner.RoundTrip(r)
}

func (c *actionCounter) get(k string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[k] }

func (c *actionCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// pathCounter counts registry requests whose path ends in a suffix of interest.
type pathCounter struct {
	inner http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
}

func (c *pathCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	for _, s := range []string{"/v2/_catalog", "tags/list"} {
		if strings.HasSuffix(r.URL.Path, s) {
			c.n[s]++
		}
	}
	c.mu.Unlock()
	return c.inner.RoundTrip(r)
}

func (c *pathCounter) get(k string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[k] }
