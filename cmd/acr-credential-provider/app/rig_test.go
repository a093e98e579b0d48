package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// The rig: kube-apiserver + etcd, acr-emulator (its RRSA OIDC provider reads the apiserver's
// JWKS), containerd, and a kubelet started with --image-credential-provider-config and
// --image-credential-provider-bin-dir running the real acr-credential-provider binary. A small
// wrapper around the binary keeps each request, response and stderr in files, so the test can
// show what the kubelet sent and check that no secret reached a log.

const (
	rigRolePull   = "team-a-pull"   // trusted by team-a/puller and team-a/cross; trusted by B's acr-pull
	rigRoleNoPull = "team-b-nopull" // trusted by team-b/builder; cr:GetAuthorizationToken but no cr:PullRepository
)

type kubeletRig struct {
	kube    *kubeenv.Env
	emu     *emulatorenv.Env
	kl      *kubeletenv.Kubelet
	callDir string
}

// calls returns the recorded plugin calls: request, response and stderr of each.
type pluginCall struct {
	Request  credentialProviderRequest
	Response string
	Stderr   string
}

type credentialProviderRequest struct {
	APIVersion                string            `json:"apiVersion"`
	Image                     string            `json:"image"`
	ServiceAccountToken       string            `json:"serviceAccountToken"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations"`
}

func (r *kubeletRig) calls(t *testing.T) []pluginCall {
	t.Helper()
	reqs, _ := filepath.Glob(filepath.Join(r.callDir, "req.*"))
	var out []pluginCall
	for _, f := range reqs {
		n := strings.TrimPrefix(filepath.Base(f), "req.")
		var c pluginCall
		b, _ := os.ReadFile(f)
		_ = json.Unmarshal(b, &c.Request)
		resp, _ := os.ReadFile(filepath.Join(r.callDir, "resp."+n))
		errb, _ := os.ReadFile(filepath.Join(r.callDir, "stderr."+n))
		c.Response, c.Stderr = string(resp), string(errb)
		out = append(out, c)
	}
	return out
}

// jwtSubject reads the sub claim of a JWT without verifying it (the emulator verified it).
func jwtSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct{ Sub string }
	_ = json.Unmarshal(b, &c)
	return c.Sub
}

func startKubeletRig(t *testing.T) *kubeletRig {
	t.Helper()
	kube := kubeenv.Start(t)
	ctx := t.Context()
	dir := t.TempDir()
	raw, err := kube.Clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct{ Issuer string }
	if err := json.Unmarshal(raw, &disc); err != nil || disc.Issuer == "" {
		t.Fatalf("discovery %s: %v", raw, err)
	}
	caFile := filepath.Join(dir, "apiserver-ca.pem")
	writeFile(t, caFile, string(kube.Config.CAData))
	// the emulator reads the apiserver's JWKS with a ServiceAccount token
	kube.CreateNamespace(t, "oidc-reader")
	tr, err := kube.Clientset.CoreV1().ServiceAccounts("oidc-reader").CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{disc.Issuer}, ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bearer := filepath.Join(dir, "jwks-bearer")
	writeFile(t, bearer, tr.Status.Token)
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: disc.Issuer, OIDCJWKSURL: strings.TrimRight(kube.Config.Host, "/") + "/openid/v1/jwks",
		OIDCCAFile: caFile, OIDCBearerTokenFile: bearer})
	if err != nil {
		t.Fatal(err)
	}
	addRigRoles(w, disc.Issuer)
	emu := emulatorenv.Start(t, emulatorenv.Options{World: w})

	var bare []string
	for d := range emu.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	for _, in := range emu.Info.Instances {
		for _, d := range in.Domains {
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, emu.Info.CAFile))
		}
	}

	// the plugin: the real binary behind a recording wrapper, under two provider names
	real := filepath.Join(dir, "real", "acr-credential-provider")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", real, "github.com/ferrypull/ferry/cmd/acr-credential-provider").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	callDir, binDir := filepath.Join(dir, "calls"), filepath.Join(dir, "plugins")
	for _, d := range []string{callDir, binDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wrapper := fmt.Sprintf(`#!/bin/bash
n=$(date +%%s%%N)-$$
cat > %[1]q/req.$n
%[2]q "$@" < %[1]q/req.$n > %[1]q/resp.$n 2> %[1]q/stderr.$n
rc=$?
cat %[1]q/resp.$n
cat %[1]q/stderr.$n >&2
exit $rc
`, callDir, real)
	for _, name := range []string{"acr-credential-provider", "acr-credential-provider-v1beta1"} {
		if err := os.WriteFile(filepath.Join(binDir, name), []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hzA, hzB := emu.Instance(t, world.DemoInstanceAHangzhou), emu.Instance(t, world.DemoInstanceBHangzhou)
	cfg := filepath.Join(dir, "acr-credential-provider.yaml")
	writeFile(t, cfg, fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: ACRCredentialProviderConfig
instances:
- {instanceId: %s, region: cn-hangzhou, name: ferry-a}
- {instanceId: %s, region: cn-hangzhou, name: ferry-b}
`, hzA.InstanceID, hzB.InstanceID))
	_, port, _ := strings.Cut(hzA.Domains[0], ":")
	args := []string{"--config", cfg, "--oidc-provider-arn", "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID,
		"--service-account-fallback-to-node", "--cloud-dial-address", emu.Info.OpenAPITLSEndpoint, "--sts-endpoint", emu.Info.OpenAPITLSEndpoint,
		"--ca-file", emu.Info.CAFile, "--metadata-proxy", emu.Info.MetadataProxy, "-v", "1"}
	quoted := func(ss []string) string {
		b, _ := json.Marshal(ss)
		return string(b)
	}
	kcfg := filepath.Join(dir, "credential-providers.yaml")
	writeFile(t, kcfg, fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: acr-credential-provider
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  matchImages: ["*.*.cr.aliyuncs.com:%[1]s", "*.example.invalid:%[1]s"]
  defaultCacheDuration: 10m
  args: %[2]s
  tokenAttributes:
    serviceAccountTokenAudience: %[3]s
    cacheType: ServiceAccount
    requireServiceAccount: false
    optionalServiceAccountAnnotationKeys: [%[4]s, %[5]s]
# the same binary asked in an API version it does not serve (what a misconfigured or future
# kubelet would send): it must refuse with exit 2
- name: acr-credential-provider-v1beta1
  apiVersion: credentialprovider.kubelet.k8s.io/v1beta1
  matchImages: ["registry.*.aliyuncs.com:%[1]s"]
  defaultCacheDuration: 10m
  args: %[2]s
`, port, quoted(args), credprovider.DefaultAudience, credprovider.RoleNameAnnotation, credprovider.AssumeRoleAnnotation))
	kl := kubeletenv.Start(t, kube, ctrd, kubeletenv.WithCredentialProvider(kcfg, binDir))
	return &kubeletRig{kube: kube, emu: emu, kl: kl, callDir: callDir}
}

// addRigRoles: team-a-pull (trusted by team-a/puller and team-a/cross, may pull, trusted by B's
// acr-pull) and team-b-nopull (trusted by team-b/builder, may mint tokens but not pull).
func addRigRoles(w *world.World, issuer string) {
	a, b := w.Accounts[0], w.Accounts[1]
	provider := "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID
	trust := func(subs ...string) world.PolicyDocument {
		return world.PolicyDocument{Version: "1", Statement: []world.Statement{{
			Effect: "Allow", Action: world.StringList{"sts:AssumeRole"},
			Principal: &world.PolicyPrincipal{Federated: world.StringList{provider}},
			Condition: map[string]map[string]world.StringList{"StringEquals": {
				"oidc:iss": {issuer}, "oidc:aud": {credprovider.DefaultAudience}, "oidc:sub": subs,
			}},
		}}}
	}
	a.Policies = append(a.Policies, &world.Policy{Name: "token-only", Document: world.PolicyDocument{Version: "1", Statement: []world.Statement{
		{Effect: "Allow", Action: world.StringList{"cr:GetAuthorizationToken", "cr:ListInstanceEndpoint"}, Resource: world.StringList{"*"}}}}})
	a.Roles = append(a.Roles,
		&world.Role{Name: rigRolePull, TrustPolicy: trust("system:serviceaccount:team-a:puller", "system:serviceaccount:team-a:cross"),
			Policies: []string{"AliyunCSManagedAcrRolePolicy", "AliyunSTSAssumeRoleAccess"}},
		&world.Role{Name: rigRoleNoPull, TrustPolicy: trust("system:serviceaccount:team-b:builder"), Policies: []string{"token-only"}})
	for _, r := range b.Roles {
		if r.Name == world.DemoPullRole {
			p := r.TrustPolicy.Statement[0].Principal
			p.RAM = append(p.RAM, "acs:ram::"+world.DemoAccountA+":role/"+rigRolePull)
		}
	}
}

// pod runs image as serviceAccount in namespace and returns the kubelet's pull verdict.
func (r *kubeletRig) pod(t *testing.T, namespace, name, serviceAccount, image string) kubeletenv.PullResult {
	t.Helper()
	p := r.kl.Pod(namespace, name, image)
	p.Spec.ServiceAccountName = serviceAccount
	if err := r.kube.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	res, err := kubeletenv.WaitForPullEvent(t.Context(), r.kube.Client, p)
	if err != nil {
		t.Fatalf("%v\nkubelet log tail:\n%s", err, tailOf(r.kl.Log(), 3000))
	}
	_ = r.kube.Client.Delete(context.WithoutCancel(t.Context()), p)
	return res
}

func (r *kubeletRig) serviceAccount(t *testing.T, namespace, name string, ann map[string]string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: ann}}
	if err := r.kube.Client.Create(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitLog waits until the kubelet log contains every part (the kubelet logs a plugin failure
// right before it pulls anonymously, so it is there by the time the Failed event is).
func (r *kubeletRig) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	poll.Until(t, "the kubelet logs the plugin's failure", func() error {
		log := r.kl.Log()
		for _, p := range parts {
			if !strings.Contains(log, p) {
				return fmt.Errorf("kubelet log lacks %q; its plugin failures:\n%s", p, pluginFailures(log))
			}
		}
		return nil
	})
}

// pluginFailures are the kubelet's log lines about failed plugin runs (the last 20).
func pluginFailures(log string) string {
	var out []string
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if strings.Contains(l, "Failed to provide credentials") {
			out = append(out, strings.Join(lines[i:min(i+4, len(lines))], "\n"))
		}
	}
	return strings.Join(out[max(0, len(out)-20):], "\n")
}

func TestKubeletCredentialProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver, containerd and a kubelet")
	}
	r := startKubeletRig(t)
	hzA, hzB := r.emu.Instance(t, world.DemoInstanceAHangzhou), r.emu.Instance(t, world.DemoInstanceBHangzhou)
	pullB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	for _, ns := range []string{"nosecrets", "team-a", "team-b"} {
		r.kube.CreateNamespace(t, ns)
	}
	r.serviceAccount(t, "team-a", "puller", map[string]string{credprovider.RoleNameAnnotation: rigRolePull})
	r.serviceAccount(t, "team-a", "cross", map[string]string{credprovider.RoleNameAnnotation: rigRolePull, credprovider.AssumeRoleAnnotation: pullB})
	r.serviceAccount(t, "team-b", "builder", map[string]string{credprovider.RoleNameAnnotation: rigRoleNoPull})

	t.Run("node identity: no imagePullSecrets, no Secret in the namespace", func(t *testing.T) {
		var secrets corev1.SecretList
		if err := r.kube.Client.List(t.Context(), &secrets); err != nil || len(secrets.Items) != 0 {
			t.Fatalf("the cluster holds %d Secrets (%v); want none", len(secrets.Items), err)
		}
		if res := r.pod(t, "nosecrets", "node", "default", hzA.Image); !res.Pulled {
			t.Fatalf("%s: %s", res.Reason, res.Message)
		}
		// the default ServiceAccount has no role annotation: the worker role served it (fallback on)
		if !strings.Contains(r.emu.Logs.String(), world.DemoWorkerRole) {
			t.Fatal("the emulator never served the worker role")
		}
	})
	t.Run("ServiceAccount team-a/puller pulls with its own role", func(t *testing.T) {
		if res := r.pod(t, "team-a", "puller", "puller", hzA.Image); !res.Pulled {
			t.Fatalf("%s: %s", res.Reason, res.Message)
		}
	})
	t.Run("ServiceAccount team-b/builder: same image, its role lacks cr:PullRepository", func(t *testing.T) {
		res := r.pod(t, "team-b", "builder", "builder", hzA.Image)
		if res.Pulled || !strings.Contains(res.Message, "401 Unauthorized") && !strings.Contains(res.Message, "authorization failed") {
			t.Fatalf("pulled=%v %s: %s; want an auth failure", res.Pulled, res.Reason, res.Message)
		}
		t.Logf("kubelet event: %s", res.Message)
	})
	t.Run("ServiceAccount team-a/cross: role chain into account B", func(t *testing.T) {
		if res := r.pod(t, "team-a", "cross", "cross", hzB.Image); !res.Pulled {
			t.Fatalf("%s: %s", res.Reason, res.Message)
		}
	})
	t.Run("the plugin got each ServiceAccount's token and annotations, not a node credential", func(t *testing.T) {
		seen := map[string]bool{}
		for _, c := range r.calls(t) {
			sub := jwtSubject(c.Request.ServiceAccountToken)
			seen[sub] = true
			want := map[string]string{"system:serviceaccount:team-a:puller": rigRolePull, "system:serviceaccount:team-a:cross": rigRolePull,
				"system:serviceaccount:team-b:builder": rigRoleNoPull}[sub]
			if want != "" && c.Request.ServiceAccountAnnotations[credprovider.RoleNameAnnotation] != want {
				t.Errorf("request for %s carried annotations %v", sub, c.Request.ServiceAccountAnnotations)
			}
			if want != "" && !strings.Contains(c.Stderr, "identitySource=serviceAccount") {
				t.Errorf("request for %s was not served with its ServiceAccount: %s", sub, c.Stderr)
			}
		}
		for _, sub := range []string{"system:serviceaccount:nosecrets:default", "system:serviceaccount:team-a:puller",
			"system:serviceaccount:team-a:cross", "system:serviceaccount:team-b:builder"} {
			if !seen[sub] {
				t.Errorf("no plugin request with a token for %s (saw %v)", sub, seen)
			}
			if sub != "system:serviceaccount:nosecrets:default" && !strings.Contains(r.emu.Logs.String(), "caller=oidc:"+sub) {
				t.Errorf("the emulator saw no AssumeRoleWithOIDC for %s", sub)
			}
		}
	})

	// Failures: the kubelet logs the plugin's exit status and stderr, pulls anonymously, and
	// the Event says the registry refused it.
	t.Run("token API failure: exit 5", func(t *testing.T) {
		r.emu.Fault("GetAuthorizationToken", 503)
		defer r.emu.ClearFaults()
		// the VPC domain is not in the kubelet's credential cache yet
		vpcImage := strings.Replace(hzA.Image, hzA.Domains[0], hzA.Domains[1], 1)
		res := r.pod(t, "nosecrets", "outage", "default", vpcImage)
		if res.Pulled || !strings.Contains(res.Message, "401 Unauthorized") && !strings.Contains(res.Message, "authorization failed") {
			t.Fatalf("pulled=%v %s: %s", res.Pulled, res.Reason, res.Message)
		}
		// (at -v 1 the plugin's debug lines come first in its stderr)
		r.waitLog(t, "for image "+strings.Split(vpcImage, ":v")[0]+": exit status 5: ",
			"acr-credential-provider: registry token for "+hzA.Domains[1]+" (instance cn-hangzhou/"+hzA.InstanceID+", node identity workerRole)",
			"GetAuthorizationToken failed (HTTP 503)")
	})
	t.Run("unknown host: exit 3", func(t *testing.T) {
		_, port, _ := strings.Cut(hzA.Domains[0], ":")
		res := r.pod(t, "nosecrets", "unknown", "default", "registry.example.invalid:"+port+"/apps/hello:v1")
		if res.Pulled {
			t.Fatal("pulled from an unknown host")
		}
		r.waitLog(t, "exit status 3: acr-credential-provider: registry registry.example.invalid:"+port+" is not an ACR domain")
	})
	t.Run("request in an unsupported API version: exit 2", func(t *testing.T) {
		var personal string
		for _, in := range r.emu.Info.Instances {
			if in.Edition == world.EditionPersonal {
				personal = in.Image
			}
		}
		res := r.pod(t, "nosecrets", "v1beta1", "default", personal)
		if res.Pulled || !strings.Contains(res.Message, "401 Unauthorized") && !strings.Contains(res.Message, "authorization failed") {
			t.Fatalf("pulled=%v %s: %s", res.Pulled, res.Reason, res.Message)
		}
		// a multi-line err (the plugin's stderr ends in a newline) is logged unquoted
		r.waitLog(t, `exit status 2: acr-credential-provider: apiVersion "credentialprovider.kubelet.k8s.io/v1beta1" is not supported`)
	})

	t.Run("no token or secret in the plugin's stderr or the kubelet log", func(t *testing.T) {
		var secrets []string
		for _, c := range r.calls(t) {
			if c.Request.ServiceAccountToken != "" {
				secrets = append(secrets, c.Request.ServiceAccountToken)
			}
			var resp struct {
				Auth map[string]struct{ Password string }
			}
			_ = json.Unmarshal([]byte(c.Response), &resp)
			for _, a := range resp.Auth {
				secrets = append(secrets, a.Password)
			}
		}
		for _, a := range r.emu.Info.Accounts {
			secrets = append(secrets, a.AccessKeySecret)
			for _, u := range a.Users {
				secrets = append(secrets, u.AccessKeySecret, u.Password)
			}
		}
		if len(secrets) < 8 {
			t.Fatalf("only %d secrets collected", len(secrets))
		}
		logs := map[string]string{"kubelet log": r.kl.Log()}
		for i, c := range r.calls(t) {
			logs[fmt.Sprintf("plugin stderr %d", i)] = c.Stderr
		}
		for where, text := range logs {
			for _, s := range secrets {
				if s != "" && strings.Contains(text, s) {
					t.Errorf("a secret (%d bytes) appears in the %s", len(s), where)
				}
			}
		}
	})
}
