//go:build demo

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ecisdk "github.com/aliyun/alibaba-cloud-sdk-go/services/eci"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
)

// demoECI is the demo's ECI step: bin/acr-emulator with --eci-containerd-socket runs the
// seed's CreateContainerGroup example (two containers, the public and -vpc domains,
// AcrRegistryInfo with only the InstanceId) on a real containerd, with no password given,
// and prints the containers' logs.
func demoECI(t *testing.T, n int, bin, dir string) {
	step(n, "The ECI API: CreateContainerGroup with AcrRegistryInfo, no password (bin/acr-emulator --eci-containerd-socket)")
	if os.Geteuid() != 0 {
		say("SKIPPED: containerd needs root (running as uid %d)", os.Geteuid())
		return
	}
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	dataDir, infoPath := filepath.Join(dir, "eci-emulator"), filepath.Join(dir, "eci-info.json")
	run(t, dir, "acr-emulator-eci", filepath.Join(bin, "acr-emulator"), "--data-dir", dataDir, "--info-file", infoPath,
		"--eci-containerd-socket", ctrd.Socket, "--eci-containerd-hosts-dir", ctrd.HostsDir, "--log-format", "json")
	info := waitInfo(t, infoPath)
	a := info.Accounts[0]
	inst := instance(t, info, "cn-hangzhou", a.UID)
	var bare []string
	for _, d := range inst.Domains {
		bare = append(bare, strings.Split(d, ":")[0])
	}
	etchosts.Ensure(t, bare...)
	say("containerd %s; acr-emulator trusts its own CA there for %s (hosts.toml)", ctrd.Socket, strings.Join(inst.Domains, ", "))
	admin := user(t, a, "admin")
	ref, err := name.NewTag(inst.Domains[0] + "/apps/eci-demo:v1")
	must(t, err)
	must(t, remote.Write(ref, testimage.Hello(t, "demo"), remote.WithContext(t.Context()), remote.WithTransport(caTransport(t, info.CAFile)),
		remote.WithAuth(&authn.Basic{Username: admin.Name, Password: admin.Password})))
	say("pushed a private image %s (it prints a greeting and its arguments)", ref)

	c, err := ecisdk.NewClientWithAccessKey(inst.RegionID, admin.AccessKeyID, admin.AccessKeySecret)
	must(t, err)
	req := ecisdk.CreateCreateContainerGroupRequest()
	req.SetDomain(info.OpenAPIEndpoint)
	req.SetScheme("http")
	req.RegionId, req.ContainerGroupName, req.RestartPolicy = inst.RegionID, "test-cri", "Never"
	req.SecurityGroupId, req.VSwitchId = "sg-2zeh4cev9y7ulbr*****", "vsw-2zejlv7xjnw61w6z*****"
	req.Container = &[]ecisdk.CreateContainerGroupContainer{
		{Name: "nginx", Image: inst.Domains[0] + "/apps/eci-demo:v1", Arg: []string{"via", "the", "public", "domain"}},
		{Name: "nginx2", Image: inst.Domains[1] + "/apps/eci-demo:v1", Arg: []string{"via", "the", "-vpc", "domain"}},
	}
	req.QueryParams["AcrRegistryInfo.1.InstanceId"] = inst.InstanceID
	resp, err := c.CreateContainerGroup(req)
	must(t, err)
	say("CreateContainerGroup (official Go SDK, AcrRegistryInfo.1.InstanceId=%s, no ImageRegistryCredential): %s", inst.InstanceID, resp.ContainerGroupId)
	var g ecisdk.DescribeContainerGroupsContainerGroup0
	waitFor(t, 60*time.Second, "container group "+resp.ContainerGroupId+" to finish", func() bool {
		d := ecisdk.CreateDescribeContainerGroupsRequest()
		d.SetDomain(info.OpenAPIEndpoint)
		d.SetScheme("http")
		d.RegionId, d.ContainerGroupIds = inst.RegionID, fmt.Sprintf("[%q]", resp.ContainerGroupId)
		out, err := c.DescribeContainerGroups(d)
		if err != nil || len(out.ContainerGroups) != 1 {
			return false
		}
		g = out.ContainerGroups[0]
		return g.Status == "Succeeded" || g.Status == "Failed"
	})
	say("DescribeContainerGroups: %s", g.Status)
	for _, e := range g.Events {
		say("  event %s %s: %s", e.Type, e.Reason, e.Message)
	}
	for _, ct := range g.Containers {
		l := ecisdk.CreateDescribeContainerLogRequest()
		l.SetDomain(info.OpenAPIEndpoint)
		l.SetScheme("http")
		l.RegionId, l.ContainerGroupId, l.ContainerName = inst.RegionID, resp.ContainerGroupId, ct.Name
		out, err := c.DescribeContainerLog(l)
		must(t, err)
		say("DescribeContainerLog %s (%s, exit %d):", ct.Name, ct.CurrentState.State, ct.CurrentState.ExitCode)
		for _, line := range strings.Split(strings.TrimRight(out.Content, "\n"), "\n") {
			say("  | %s", line)
		}
	}
	if g.Status != "Succeeded" {
		t.Fatalf("container group %s", g.Status)
	}
	del := ecisdk.CreateDeleteContainerGroupRequest()
	del.SetDomain(info.OpenAPIEndpoint)
	del.SetScheme("http")
	del.RegionId, del.ContainerGroupId = inst.RegionID, resp.ContainerGroupId
	_, err = c.DeleteContainerGroup(del)
	must(t, err)
	say("DeleteContainerGroup: sandbox removed")
}
