package emulator_test

import (
	"fmt"
	"strings"
	"testing"

	ecisdk "github.com/aliyun/alibaba-cloud-sdk-go/services/eci"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
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
