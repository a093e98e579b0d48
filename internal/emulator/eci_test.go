package emulator_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	ecisdk "github.com/aliyun/alibaba-cloud-sdk-go/services/eci"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// eciRig is an emulator whose ECI service runs on a real containerd, with a runnable private
// image pushed into instance A (apps/hello-eci:v1) and instance B (shared/hello-eci:v1).
type eciRig struct {
	env      *emulatorenv.Env
	ctrd     *containerdenv.Containerd
	hz, b    emulator.InfoInstance
	imgA     string // on A's public domain
	imgAVPC  string // the same image on A's -vpc domain
	imgB     string
	adminA   emulator.InfoUser
	adminB   emulator.InfoUser
	deployer emulator.InfoUser
}

func startECIRig(t *testing.T) *eciRig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containerd")
	}
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	env := emulatorenv.Start(t, emulatorenv.Options{ECIContainerdSocket: ctrd.Socket, ECIContainerdHostsDir: ctrd.HostsDir})
	var bare []string
	for d := range env.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	r := &eciRig{env: env, ctrd: ctrd, hz: env.Instance(t, world.DemoInstanceAHangzhou), b: env.Instance(t, world.DemoInstanceBHangzhou),
		adminA: env.User(t, world.DemoAccountA, "admin"), adminB: env.User(t, world.DemoAccountB, "admin"),
		deployer: env.User(t, world.DemoAccountA, "deployer")}
	r.imgA = r.push(t, r.hz.Domains[0]+"/apps/hello-eci:v1", r.adminA)
	r.imgAVPC = r.hz.Domains[1] + "/apps/hello-eci:v1"
	r.imgB = r.push(t, r.b.Domains[0]+"/shared/hello-eci:v1", r.adminB)
	return r
}

func (r *eciRig) push(t *testing.T, ref string, u emulator.InfoUser) string {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, testimage.Hello(t, ref), remote.WithAuth(&authn.Basic{Username: u.Name, Password: u.Password}),
		remote.WithTransport(r.env.Transport), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// client is the official Go SDK's ECI client (alibaba-cloud-sdk-go services/eci) for user.
func (r *eciRig) client(t *testing.T, u emulator.InfoUser) *ecisdk.Client {
	t.Helper()
	c, err := ecisdk.NewClientWithAccessKey("cn-hangzhou", u.AccessKeyID, u.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// target points a request at the emulator's plain-HTTP OpenAPI endpoint.
func (r *eciRig) target(req interface {
	SetDomain(string)
	SetScheme(string)
}) {
	req.SetDomain(r.env.Info.OpenAPIEndpoint)
	req.SetScheme("http")
}

type groupContainer struct{ name, image string }

// create runs CreateContainerGroup (RestartPolicy Never) with extra, the parameters the
// served SDK version has no fields for (AcrRegistryInfo, PlainHttpRegistry, …), added to
// its query as any RPC parameter travels.
func (r *eciRig) create(t *testing.T, c *ecisdk.Client, groupName string, containers []groupContainer, extra map[string]string) (string, error) {
	t.Helper()
	req := ecisdk.CreateCreateContainerGroupRequest()
	r.target(req)
	req.RegionId = "cn-hangzhou"
	req.ContainerGroupName = groupName
	req.RestartPolicy = "Never"
	req.SecurityGroupId, req.VSwitchId = "sg-emulated", "vsw-emulated"
	cs := make([]ecisdk.CreateContainerGroupContainer, 0, len(containers))
	for _, ct := range containers {
		cs = append(cs, ecisdk.CreateContainerGroupContainer{Name: ct.name, Image: ct.image, Arg: []string{groupName},
			EnvironmentVar: &[]ecisdk.CreateContainerGroupEnvironmentVar{{Key: "HELLO_MESSAGE", Value: "container " + ct.name}}})
	}
	req.Container = &cs
	for k, v := range extra {
		req.QueryParams[k] = v
	}
	resp, err := c.CreateContainerGroup(req)
	if err != nil {
		return "", err
	}
	return resp.ContainerGroupId, nil
}

func (r *eciRig) describe(t *testing.T, c *ecisdk.Client, id string) ecisdk.DescribeContainerGroupsContainerGroup0 {
	t.Helper()
	req := ecisdk.CreateDescribeContainerGroupsRequest()
	r.target(req)
	req.RegionId = "cn-hangzhou"
	req.ContainerGroupIds = `["` + id + `"]`
	resp, err := c.DescribeContainerGroups(req)
	if err != nil {
		t.Fatalf("DescribeContainerGroups: %v", err)
	}
	if resp.TotalCount != 1 || len(resp.ContainerGroups) != 1 {
		t.Fatalf("DescribeContainerGroups %s: %d groups", id, resp.TotalCount)
	}
	return resp.ContainerGroups[0]
}

// wait polls until the group reaches a final status and returns it.
func (r *eciRig) wait(t *testing.T, c *ecisdk.Client, id string) ecisdk.DescribeContainerGroupsContainerGroup0 {
	t.Helper()
	var g ecisdk.DescribeContainerGroupsContainerGroup0
	poll.Until(t, "container group "+id+" finishes", func() error {
		g = r.describe(t, c, id)
		if g.Status == "Succeeded" || g.Status == "Failed" {
			return nil
		}
		return fmt.Errorf("status %s, events %s", g.Status, events(g))
	})
	return g
}

func events(g ecisdk.DescribeContainerGroupsContainerGroup0) string {
	var b strings.Builder
	for _, e := range g.Events {
		fmt.Fprintf(&b, "\n  %s %s: %s", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

func (r *eciRig) log(t *testing.T, c *ecisdk.Client, id, container string) string {
	t.Helper()
	req := ecisdk.CreateDescribeContainerLogRequest()
	r.target(req)
	req.RegionId = "cn-hangzhou"
	req.ContainerGroupId, req.ContainerName = id, container
	resp, err := c.DescribeContainerLog(req)
	if err != nil {
		t.Fatalf("DescribeContainerLog %s/%s: %v", id, container, err)
	}
	return resp.Content
}

// TestECIAcrRegistryInfo: the seed's three AcrRegistryInfo forms each run a two-container
// group (public and -vpc domain) whose containers succeed and print their output, with no
// password given; without AcrRegistryInfo the same private image fails with an auth reason.
func TestECIAcrRegistryInfo(t *testing.T) {
	r := startECIRig(t)
	c := r.client(t, r.adminA)
	two := []groupContainer{{"c1", r.imgA}, {"c2", r.imgAVPC}}
	for _, tc := range []struct {
		name  string
		extra map[string]string
	}{
		{"region-id-name-domains", map[string]string{
			"AcrRegistryInfo.1.RegionId": "cn-hangzhou", "AcrRegistryInfo.1.InstanceId": r.hz.InstanceID,
			"AcrRegistryInfo.1.InstanceName": r.hz.InstanceName,
			"AcrRegistryInfo.1.Domain.1":     strings.Split(r.hz.Domains[1], ":")[0], "AcrRegistryInfo.1.Domain.2": strings.Split(r.hz.Domains[0], ":")[0],
		}},
		{"id-name", map[string]string{"AcrRegistryInfo.1.InstanceId": r.hz.InstanceID, "AcrRegistryInfo.1.InstanceName": r.hz.InstanceName}},
		{"id-only", map[string]string{"AcrRegistryInfo.1.InstanceId": r.hz.InstanceID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := r.create(t, c, "acr-"+tc.name, two, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			g := r.wait(t, c, id)
			if g.Status != "Succeeded" {
				t.Fatalf("status %s, events:%s", g.Status, events(g))
			}
			for _, ct := range g.Containers {
				if ct.CurrentState.State != "Terminated" || ct.CurrentState.ExitCode != 0 {
					t.Errorf("container %s state %+v", ct.Name, ct.CurrentState)
				}
				out := r.log(t, c, id, ct.Name)
				if !strings.Contains(out, "hello from /hello\nargs: acr-"+tc.name+"\ncontainer "+ct.Name+"\n") {
					t.Errorf("log of %s = %q", ct.Name, out)
				}
			}
		})
	}
	t.Run("without AcrRegistryInfo", func(t *testing.T) {
		id, err := r.create(t, c, "no-acr", two[:1], nil)
		if err != nil {
			t.Fatal(err)
		}
		g := r.wait(t, c, id)
		if g.Status != "Failed" || !strings.Contains(events(g), "Failed to pull image") || !strings.Contains(events(g), "authoriz") {
			t.Fatalf("status %s, events:%s", g.Status, events(g))
		}
	})
}

// TestECICrossAccountRAMAndSignatures: account A's group pulls account B's image through the
// ArnService (A, trusted by eci.aliyuncs.com) → ArnUser (B, trusting A's role) chain and fails
// without it; a RAM user without eci:CreateContainerGroup is denied; a bad signature is
// rejected; DeleteContainerGroup removes the sandbox.
func TestECICrossAccountRAMAndSignatures(t *testing.T) {
	r := startECIRig(t)
	c := r.client(t, r.adminA)
	arnService := "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoECIRole
	arnUser := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	for _, tc := range []struct {
		name       string
		extra      map[string]string
		wantStatus string
		wantEvent  string
	}{
		{"ArnService and ArnUser", map[string]string{"AcrRegistryInfo.1.InstanceId": r.b.InstanceID,
			"AcrRegistryInfo.1.ArnService": arnService, "AcrRegistryInfo.1.ArnUser": arnUser}, "Succeeded", "Successfully pulled"},
		{"no roles", map[string]string{"AcrRegistryInfo.1.InstanceId": r.b.InstanceID}, "Failed", "belongs to another account"},
		{"ArnUser that does not trust the ArnService", map[string]string{"AcrRegistryInfo.1.InstanceId": r.b.InstanceID,
			"AcrRegistryInfo.1.ArnService": arnService, "AcrRegistryInfo.1.ArnUser": "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoWorkerRole}, "Failed", "cannot assume ArnUser"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := r.create(t, c, "cross-"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"), []groupContainer{{"c1", r.imgB}}, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			g := r.wait(t, c, id)
			if g.Status != tc.wantStatus || !strings.Contains(events(g), tc.wantEvent) {
				t.Fatalf("status %s, events:%s", g.Status, events(g))
			}
			if tc.wantStatus == "Failed" && !strings.Contains(events(g), "Failed to pull image") {
				t.Fatalf("no pull failure in events:%s", events(g))
			}
		})
	}

	t.Run("user without eci:CreateContainerGroup", func(t *testing.T) {
		_, err := r.create(t, r.client(t, r.deployer), "denied", []groupContainer{{"c1", r.imgA}}, nil)
		if code, status := legacyErr(err); code != "NoPermission" || status != 403 {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		bad := r.adminA
		bad.AccessKeySecret += "x"
		_, err := r.create(t, r.client(t, bad), "badsig", []groupContainer{{"c1", r.imgA}}, nil)
		if code, status := legacyErr(err); code != "SignatureDoesNotMatch" || status != 400 {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("delete removes the sandbox", func(t *testing.T) {
		id, err := r.create(t, c, "deleted", []groupContainer{{"c1", r.imgA}}, map[string]string{"AcrRegistryInfo.1.InstanceId": r.hz.InstanceID})
		if err != nil {
			t.Fatal(err)
		}
		r.wait(t, c, id)
		if n := r.sandboxes(t, id); n != 1 {
			t.Fatalf("%d sandboxes for %s before delete", n, id)
		}
		req := ecisdk.CreateDeleteContainerGroupRequest()
		r.target(req)
		req.RegionId, req.ContainerGroupId = "cn-hangzhou", id
		if _, err := c.DeleteContainerGroup(req); err != nil {
			t.Fatal(err)
		}
		if n := r.sandboxes(t, id); n != 0 {
			t.Fatalf("%d sandboxes for %s after delete", n, id)
		}
		if _, err := c.DeleteContainerGroup(req); !strings.Contains(fmt.Sprint(err), "InvalidContainerGroup.NotFound") {
			t.Fatalf("second delete: %v", err)
		}
	})
}

// sandboxes counts the CRI pod sandboxes of a group.
func (r *eciRig) sandboxes(t *testing.T, id string) int {
	t.Helper()
	resp, err := r.ctrd.Runtime.ListPodSandbox(t.Context(), &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"ferry.dev/eci-group": id}}})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Items)
}

// legacyErr returns the code and HTTP status of an alibaba-cloud-sdk-go error.
func legacyErr(err error) (string, int) {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		return se.ErrorCode(), se.HttpStatus()
	}
	return "", 0
}

// TestECIImageCache: CreateImageCache pulls the image into containerd; a group created
// afterwards from the cache (ImageSnapshotId, and AutoMatchImageCache) does not pull again:
// the registry sees no further token request for the repository.
func TestECIImageCache(t *testing.T) {
	r := startECIRig(t)
	c := r.client(t, r.adminA)
	img := r.push(t, r.hz.Domains[0]+"/apps/hello-cache:v1", r.adminA)
	req := ecisdk.CreateCreateImageCacheRequest()
	r.target(req)
	req.RegionId, req.ImageCacheName, req.Image = "cn-hangzhou", "hello-cache", []string{img}
	req.SecurityGroupId, req.VSwitchId = "sg-emulated", "vsw-emulated"
	req.QueryParams["AcrRegistryInfo.1.InstanceId"] = r.hz.InstanceID
	resp, err := c.CreateImageCache(req)
	if err != nil {
		t.Fatal(err)
	}
	cacheID := resp.ImageCacheId
	poll.Until(t, "image cache "+cacheID+" Ready", func() error {
		dreq := ecisdk.CreateDescribeImageCachesRequest()
		r.target(dreq)
		dreq.RegionId, dreq.ImageCacheId = "cn-hangzhou", cacheID
		d, err := c.DescribeImageCaches(dreq)
		if err != nil {
			return err
		}
		if len(d.ImageCaches) != 1 || d.ImageCaches[0].Status != "Ready" || d.ImageCaches[0].Progress != "100%" {
			return fmt.Errorf("caches %+v", d.ImageCaches)
		}
		return nil
	})
	tokenRequests := func() int { return strings.Count(r.env.Logs.String(), "resource=repository:apps/hello-cache") }
	before := tokenRequests()
	if before == 0 {
		t.Fatal("the cache build made no registry token request for apps/hello-cache")
	}
	for _, extra := range []map[string]string{{"ImageSnapshotId": cacheID}, {"AutoMatchImageCache": "true"}} {
		id, err := r.create(t, c, "from-cache", []groupContainer{{"c1", img}}, extra)
		if err != nil {
			t.Fatal(err)
		}
		g := r.wait(t, c, id)
		if g.Status != "Succeeded" || !strings.Contains(events(g), "already present on machine (image cache "+cacheID+")") {
			t.Fatalf("%v: status %s, events:%s", extra, g.Status, events(g))
		}
		if out := r.log(t, c, id, "c1"); !strings.Contains(out, "hello from /hello") {
			t.Errorf("log = %q", out)
		}
	}
	if after := tokenRequests(); after != before {
		t.Fatalf("groups from the cache made %d registry token requests for the image", after-before)
	}
	// Without the cache the same group pulls (and so asks the registry).
	id, err := r.create(t, c, "no-cache", []groupContainer{{"c1", img}}, map[string]string{"AcrRegistryInfo.1.InstanceId": r.hz.InstanceID})
	if err != nil {
		t.Fatal(err)
	}
	if g := r.wait(t, c, id); g.Status != "Succeeded" || tokenRequests() == before {
		t.Fatalf("status %s, token requests %d → %d", g.Status, before, tokenRequests())
	}
}

// TestECISelfManagedRegistries: ImageRegistryCredential pulls from an htpasswd docker-registry;
// PlainHttpRegistry and InsecureRegistry pull from plain-HTTP and self-signed docker-registries,
// and each pull fails without its parameter.
func TestECISelfManagedRegistries(t *testing.T) {
	r := startECIRig(t)
	c := r.client(t, r.adminA)
	const user, pass = "robot$eci", "s3cr$t-eci"
	// Registry names, not 127.0.0.1: containerd falls back to plain HTTP for loopback addresses
	// by itself, so only a name shows what PlainHttpRegistry and InsecureRegistry change.
	const plainName, tlsName = "plain-registry.ferry.test", "tls-registry.ferry.test"
	etchosts.Ensure(t, plainName, tlsName)
	plainReg := registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{user: pass}})
	plainReg.Push(t, "team/hello:v1", testimage.Hello(t, "plain"), user, pass)
	tlsReg := registryenv.StartDocker(t, registryenv.Options{TLS: true, Hosts: []string{tlsName}})
	tlsReg.Push(t, "team/hello:v1", testimage.Hello(t, "tls"), "", "")
	plain := struct{ Addr string }{plainName + ":" + strings.Split(plainReg.Addr, ":")[1]}
	selfSigned := struct{ Addr string }{tlsName + ":" + strings.Split(tlsReg.Addr, ":")[1]}
	cred := map[string]string{"ImageRegistryCredential.1.Server": plain.Addr, "ImageRegistryCredential.1.UserName": user,
		"ImageRegistryCredential.1.Password": pass}
	with := func(m map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range m {
			out[a] = b
		}
		return out
	}
	for _, tc := range []struct {
		name, image string
		extra       map[string]string
		wantStatus  string
		wantEvent   string
	}{
		{"credential and plain HTTP", plain.Addr + "/team/hello:v1", with(cred, "PlainHttpRegistry", plain.Addr), "Succeeded", "Successfully pulled"},
		{"plain HTTP without credential", plain.Addr + "/team/hello:v1", map[string]string{"PlainHttpRegistry": plain.Addr}, "Failed", "401"},
		{"credential without PlainHttpRegistry", plain.Addr + "/team/hello:v1", cred, "Failed", "HTTP response to HTTPS client"},
		{"insecure registry", selfSigned.Addr + "/team/hello:v1", map[string]string{"InsecureRegistry": "example.invalid, " + selfSigned.Addr}, "Succeeded", "Successfully pulled"},
		{"self-signed without InsecureRegistry", selfSigned.Addr + "/team/hello:v1", nil, "Failed", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := r.create(t, c, "self-"+strings.ToLower(strings.ReplaceAll(tc.name, " ", "-")), []groupContainer{{"c1", tc.image}}, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			g := r.wait(t, c, id)
			if g.Status != tc.wantStatus || !strings.Contains(events(g), tc.wantEvent) {
				t.Fatalf("status %s, events:%s", g.Status, events(g))
			}
			if strings.Contains(events(g), pass) {
				t.Fatal("an event shows the password")
			}
		})
	}
	// The temporary hosts.toml of a plain-HTTP or insecure pull is gone afterwards.
	for _, h := range []string{plain.Addr, selfSigned.Addr} {
		if _, err := os.Stat(filepath.Join(r.ctrd.HostsDir, h, "hosts.toml")); !os.IsNotExist(err) {
			t.Errorf("hosts.toml for %s left behind: %v", h, err)
		}
	}
	if strings.Contains(r.env.Logs.String(), pass) {
		t.Error("the emulator log shows the registry password")
	}
}

// TestECIPopCore drives the seed's Python example, translated to Alibaba's Node POP client
// @alicloud/pop-core (installed by `make tools`, hack/npm-tools.sh), against the emulator:
// a second official client, from another ecosystem, so the wire format is not only what the
// Go SDK tolerates. Under FERRY_REQUIRE_RIG=1 a missing node or pop-core fails the test.
func TestECIPopCore(t *testing.T) {
	nodePath := tools.Env("FERRY_NODE_PATH")
	if _, err := os.Stat(filepath.Join(nodePath, "@alicloud", "pop-core", "package.json")); nodePath == "" || err != nil {
		tools.Require(t, "@alicloud/pop-core is not installed (FERRY_NODE_PATH=%q; run `make tools`): %v", nodePath, err)
	}
	node := tools.LookPath(t, "node")
	r := startECIRig(t)
	cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "eci_seed_example.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath, "ECI_ENDPOINT=http://"+r.env.Info.OpenAPIEndpoint,
		"ALIBABA_CLOUD_ACCESS_KEY_ID="+r.adminA.AccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+r.adminA.AccessKeySecret,
		"REGION_ID="+r.hz.RegionID, "INSTANCE_ID="+r.hz.InstanceID, "DOMAIN_PUBLIC="+r.hz.Domains[0], "DOMAIN_VPC="+r.hz.Domains[1],
		"IMAGE_PATH=apps/hello-eci:v1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	for _, want := range []string{": Succeeded\n", "log of nginx (Terminated, exit 0):\n  | hello from /hello\n", "log of nginx2 (Terminated, exit 0):", "deleted eci-"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), r.adminA.AccessKeySecret) {
		t.Error("the output shows the AccessKey secret")
	}
}
