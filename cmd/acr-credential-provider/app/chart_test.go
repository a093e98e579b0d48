package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/helmenv"
)

func chartValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(helmenv.ChartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestChart renders the chart with the real Helm 4 and Helm 3 (values.schema.json applies),
// credentialProvider on with every option, and checks what the kubelet and the binary will read: the CredentialProviderConfig decodes strictly into the kubelet's own type,
// its args are accepted by this command, the --config file parses, and the DaemonSet's install
// arguments copy each file where the args expect it.
func TestChart(t *testing.T) {
	for _, h := range helmenv.Both(t) {
		t.Run(h.Name(), func(t *testing.T) { testChart(t, h) })
	}
}

func testChart(t *testing.T, h *helmenv.Helm) {
	values := chartValues(t)
	if out := h.Template(t, "ferry", "kube-system", values); strings.Contains(out, "acr-credential-provider") {
		t.Fatalf("disabled by default, rendered:\n%s", out)
	}
	cp := values["credentialProvider"].(map[string]any)
	cp["enabled"] = true
	cp["managedRoleARN"] = "acs:ram::1:role/AliyunCSManagedAcrRole"
	cp["accessKeySecret"] = "node-access-key"
	cp["cacheDir"] = "/var/lib/ferry/acr-credential-provider"
	cp["instances"] = []any{map[string]any{"instanceId": "cri-abc123", "region": "cn-hangzhou", "name": "prod", "domains": []any{"registry.example.com"}}}
	cp["acrConfiguration"] = map[string]any{"enabled": true, "name": "acr-configuration"}
	cp["serviceAccountTokens"] = map[string]any{"enabled": true, "oidcProviderARN": "acs:ram::1000000000000001:oidc-provider/ack-rrsa-c1", "fallbackToNode": true}
	objs := helmenv.Decode(t, h.Template(t, "ferry", "kube-system", values, "--show-only", "templates/credential-provider-daemonset.yaml"))
	var cm *corev1.ConfigMap
	var ds *appsv1.DaemonSet
	for _, o := range objs {
		switch x := o.(type) {
		case *corev1.ConfigMap:
			cm = x
		case *appsv1.DaemonSet:
			ds = x
		default:
			t.Fatalf("unexpected %T", o)
		}
	}
	if cm == nil || ds == nil {
		t.Fatalf("rendered %d objects, want a ConfigMap and a DaemonSet", len(objs))
	}
	var kc kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict([]byte(cm.Data["credential-provider-config.yaml"]), &kc); err != nil {
		t.Fatalf("kubelet CredentialProviderConfig: %v\n%s", err, cm.Data["credential-provider-config.yaml"])
	}
	if kc.Kind != "CredentialProviderConfig" || len(kc.Providers) != 1 {
		t.Fatalf("%+v", kc)
	}
	p := kc.Providers[0]
	ta := p.TokenAttributes
	if p.Name != "acr-credential-provider" || p.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || len(p.MatchImages) != 3 ||
		ta == nil || ta.ServiceAccountTokenAudience != credprovider.DefaultAudience || ta.CacheType != kubeletconfigv1.ServiceAccountServiceAccountTokenCacheType ||
		ta.RequireServiceAccount == nil || *ta.RequireServiceAccount || len(ta.OptionalServiceAccountAnnotationKeys) != 2 ||
		ta.OptionalServiceAccountAnnotationKeys[0] != credprovider.RoleNameAnnotation || ta.OptionalServiceAccountAnnotationKeys[1] != credprovider.AssumeRoleAnnotation {
		t.Fatalf("provider %+v tokenAttributes %+v", p, ta)
	}
	var got *Options
	cmd := NewCommand(func(_ context.Context, o *Options, _ operator.Streams) error { got = o; return nil }, operator.Streams{}, p.Args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("provider args %v: %v", p.Args, err)
	}
	dir := cp["hostConfigDir"].(string)
	if got.Region != "cn-hangzhou" {
		t.Fatalf("--region from cloud.region: %q", got.Region)
	}
	if got.Region != "cn-hangzhou" || got.ManagedRoleARN != "acs:ram::1:role/AliyunCSManagedAcrRole" || got.ConfigFile != dir+"/acr-credential-provider.yaml" ||
		got.ACRConfiguration != dir+"/acr-configuration" || got.AccessKeyFile != dir+"/access-key" || !got.FallbackToNode ||
		got.OIDCProviderARN == "" || got.CacheDir == "" {
		t.Fatalf("options from the chart's args: %+v", got)
	}
	if _, err := credprovider.ParseConfig(strings.NewReader(cm.Data["acr-credential-provider.yaml"])); err != nil {
		t.Fatalf("--config file: %v\n%s", err, cm.Data["acr-credential-provider.yaml"])
	}
	// install's copies land where the args point (host paths = /host/config on the container side)
	c := ds.Spec.Template.Spec.Containers[0]
	hostOf := map[string]string{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			hostOf[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	var dsts []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--copy="); ok {
			cpy, err := credprovider.ParseCopy(v)
			if err != nil {
				t.Fatal(err)
			}
			rest, ok := strings.CutPrefix(cpy.Dst, "/host/config/")
			if !ok || mounts["/host/config"] != "config" {
				t.Fatalf("copy to %s is not in the host config volume", cpy.Dst)
			}
			dsts = append(dsts, hostOf["config"]+"/"+rest)
		}
	}
	for _, want := range []string{dir + "/credential-provider-config.yaml", got.ConfigFile, got.ACRConfiguration, got.AccessKeyFile} {
		if !contains(dsts, want) {
			t.Errorf("nothing copies %s (copies: %v)", want, dsts)
		}
	}
	if hostOf["bin"] != cp["hostBinDir"] || c.Args[0] != "install" || !contains(c.Args, "--bin-dir=/host/bin") {
		t.Fatalf("install args %v, volumes %v", c.Args, hostOf)
	}
	if ds.Spec.Template.Spec.AutomountServiceAccountToken == nil || *ds.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Error("the DaemonSet mounts a ServiceAccount token it does not need")
	}
	// the install subcommand accepts the DaemonSet's arguments
	inst, _, err := NewCommand(Run, operator.Streams{}, nil).Find([]string{"install"})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.ParseFlags(c.Args[1:]); err != nil {
		t.Fatalf("install flags %v: %v", c.Args[1:], err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestChartSchema: values.schema.json refuses credentialProvider mistakes before anything renders.
func TestChartSchema(t *testing.T) {
	h := helmenv.V4(t)
	for name, mutate := range map[string]func(cp map[string]any){
		"unknown key":             func(cp map[string]any) { cp["matchImage"] = []any{"x"} },
		"bad tokenMode":           func(cp map[string]any) { cp["tokenMode"] = "node" },
		"bad managedRoleARN":      func(cp map[string]any) { cp["managedRoleARN"] = "role/x" },
		"instance without region": func(cp map[string]any) { cp["instances"] = []any{map[string]any{"instanceId": "cri-a"}} },
		"SA mode without provider": func(cp map[string]any) {
			cp["serviceAccountTokens"] = map[string]any{"enabled": true}
		},
		"relative hostBinDir": func(cp map[string]any) { cp["hostBinDir"] = "bin" },
	} {
		t.Run(name, func(t *testing.T) {
			values := chartValues(t)
			cp := values["credentialProvider"].(map[string]any)
			cp["enabled"] = true
			mutate(cp)
			out, err := h.Run(t, "template", "ferry", helmenv.ChartDir(), "-f", helmenv.ValuesFile(t, values))
			if err == nil || !strings.Contains(out, "credentialProvider") {
				t.Fatalf("accepted (err %v):\n%s", err, out)
			}
		})
	}
}
