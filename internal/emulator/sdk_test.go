package emulator_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapiv2 "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

func crClient(t *testing.T, env *emulatorenv.Env, user emulator.InfoUser) *cr.Client {
	t.Helper()
	c, err := cr.NewClient(&openapiv2.Config{
		AccessKeyId: tea.String(user.AccessKeyID), AccessKeySecret: tea.String(user.AccessKeySecret),
		RegionId: tea.String("cn-hangzhou"), Endpoint: tea.String(env.Info.OpenAPIEndpoint), Protocol: tea.String("http"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSDKTokenThenRegistry takes the whole path a credential helper takes:
// the official cr-20181201 SDK mints TempUsername + AuthorizationToken,
// go-containerregistry pulls with them and is refused a push; ListRepoTag
// reports what the registry stores; the fault switch takes the token API down.
func TestSDKTokenThenRegistry(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{})
	puller := env.User(t, world.DemoAccountA, "acr-puller")
	c := crClient(t, env, puller)
	res, err := c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	auth := &authn.Basic{Username: tea.StringValue(res.Body.TempUsername), Password: tea.StringValue(res.Body.AuthorizationToken)}
	hz := env.Instance(t, world.DemoInstanceAHangzhou)
	opts := []remote.Option{remote.WithAuth(auth), remote.WithTransport(env.Transport), remote.WithContext(t.Context())}

	ref, _ := name.ParseReference(hz.Image)
	img, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", hz.Image, err)
	}
	digest, _ := img.Digest()
	push, _ := name.ParseReference(hz.Domains[0] + "/apps/hello:pushed")
	rnd, _ := random.Image(512, 1)
	var te *transport.Error
	if err := remote.Write(push, rnd, opts...); !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pull-only push: got %v, want 401", err)
	}

	// ListInstanceEndpoint advertises the same host names as the info file.
	ep, err := c.ListInstanceEndpoint(&cr.ListInstanceEndpointRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou), ModuleName: tea.String("Registry")})
	if err != nil {
		t.Fatalf("ListInstanceEndpoint: %v", err)
	}
	var domains []string
	for _, x := range ep.Body.Endpoints {
		if tea.BoolValue(x.Enable) {
			for _, d := range x.Domains {
				domains = append(domains, tea.StringValue(d.Domain))
			}
		}
	}
	if strings.Join(domains, ",") != strings.Join(hz.Domains, ",") {
		t.Fatalf("ListInstanceEndpoint domains %v, info domains %v", domains, hz.Domains)
	}

	admin := crClient(t, env, env.User(t, world.DemoAccountA, "admin"))
	repos, err := admin.ListRepository(&cr.ListRepositoryRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou), RepoNamespaceName: tea.String("apps")})
	if err != nil {
		t.Fatalf("ListRepository: %v", err)
	}
	var repoID string
	for _, r := range repos.Body.Repositories {
		if tea.StringValue(r.RepoName) == "hello" {
			repoID = tea.StringValue(r.RepoId)
		}
	}
	tags, err := admin.ListRepoTag(&cr.ListRepoTagRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou), RepoId: tea.String(repoID)})
	if err != nil {
		t.Fatalf("ListRepoTag: %v", err)
	}
	if len(tags.Body.Images) != 1 || tea.StringValue(tags.Body.Images[0].Digest) != digest.String() || tea.Int64Value(tags.Body.Images[0].ImageSize) <= 0 {
		t.Fatalf("ListRepoTag images = %v, want v1 with digest %s", tags.Body.Images, digest)
	}
	if cfg, _ := img.ConfigName(); tea.StringValue(tags.Body.Images[0].ImageId) != cfg.Hex {
		t.Fatalf("ListRepoTag ImageId = %s, want the config digest %s", tea.StringValue(tags.Body.Images[0].ImageId), cfg.Hex)
	}

	env.Fault("GetAuthorizationToken", http.StatusServiceUnavailable)
	_, err = c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
	if code, status := errCode(err); status != 503 || code != "ServiceUnavailable" {
		t.Fatalf("with fault: got %v, want 503 ServiceUnavailable", err)
	}
	env.ClearFaults()
	if _, err := c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)}); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
}

// errCode extracts the Alibaba error code and HTTP status from an SDK error.
func errCode(err error) (string, int) {
	var re dara.ResponseError
	if errors.As(err, &re) {
		return dara.StringValue(re.GetCode()), dara.IntValue(re.GetStatusCode())
	}
	var se *tea.SDKError
	if errors.As(err, &se) {
		return tea.StringValue(se.Code), tea.IntValue(se.StatusCode)
	}
	return "", 0
}
