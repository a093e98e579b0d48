package emulator_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
)

// TestContainerdPullWithAuthorizationToken pulls a seeded image with a real
// containerd through CRI, using TempUsername + AuthorizationToken, over the
// emulator's TLS registry listener reached by its domain.
func TestContainerdPullWithAuthorizationToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd")
	}
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	env := emulatorenv.Start(t, emulatorenv.Options{})
	hz := env.Instance(t, world.DemoInstanceAHangzhou)
	var bare []string
	for d := range env.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	host := hz.Domains[0] // domain:port of the TLS listener
	ctrd.WriteHostsTOML(t, host, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
		"https://"+host, "https://"+host, env.Info.CAFile))

	svc := env.Emulator.RAM()
	_, p, err := svc.ResolveAccessKey("LTAI5tFerryAPuller01", "")
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := env.Emulator.World().InstanceByID(world.DemoInstanceAHangzhou)
	user, token, _ := svc.IssueRegistryToken(p, inst)
	instB, _ := env.Emulator.World().InstanceByID(world.DemoInstanceBHangzhou)
	userB, tokenB, _ := svc.IssueRegistryToken(p, instB)

	tags, err := env.Emulator.Registry().ListTags(t.Context(), world.DemoInstanceAHangzhou, "apps", "hello")
	if err != nil || len(tags) != 1 {
		t.Fatalf("ListTags = %v, %v", tags, err)
	}
	hostOnly, _, _ := net.SplitHostPort(host)
	// containerd 1.6 parses ServerAddress as a URL: a bare "host:port"
	// would parse as scheme "host" and never match, so it carries the scheme.
	tests := []struct {
		name    string
		auth    *runtimeapi.AuthConfig
		wantErr string
	}{
		{name: "no credentials", auth: nil, wantErr: "authorization failed"},
		{name: "token for another account's instance", auth: &runtimeapi.AuthConfig{Username: userB, Password: tokenB, ServerAddress: "https://" + host}, wantErr: "failed to fetch oauth token: unexpected status: 401"},
		{name: "AuthorizationToken", auth: &runtimeapi.AuthConfig{Username: user, Password: token, ServerAddress: "https://" + host}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := ctrd.PullImage(t.Context(), hz.Image, tt.auth)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("pull: got %v, want an error with %q", err, tt.wantErr)
				}
				if strings.Contains(fmt.Sprint(err), tokenB) {
					t.Fatal("the error carries the token")
				}
				return
			}
			if err != nil {
				t.Fatalf("pull %s: %v\nemulator log:\n%s", hz.Image, err, env.Logs.String())
			}
			st, err := ctrd.Images.ImageStatus(t.Context(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: hz.Image}})
			if err != nil || st.Image == nil {
				t.Fatalf("image status of %s (%s): %v", hz.Image, ref, err)
			}
			want := hostOnly + ":" + strings.Split(host, ":")[1] + "/apps/hello@" + tags[0].Digest
			if !contains(st.Image.RepoDigests, want) {
				t.Fatalf("repo digests %v lack %s", st.Image.RepoDigests, want)
			}
		})
	}
	if !strings.Contains(env.Logs.String(), `action=pull decision=allow`) {
		t.Error("the emulator did not log the allowed pull")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
