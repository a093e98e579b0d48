package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/testutil/helmenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

const ns = "ferry-system"

// everything is charts/ferry/ci/everything-values.yaml (every optional part on).
func everything(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(helmenv.ChartDir(), "ci", "everything-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// find returns the rendered object of type T named name ("" = the only one).
func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	var zero T
	for _, o := range objs {
		if x, ok := o.(T); ok && (name == "" || o.GetName() == name) {
			return x
		}
	}
	t.Fatalf("no %T %q rendered", zero, name)
	return zero
}

func has[T client.Object](objs []client.Object) bool {
	for _, o := range objs {
		if _, ok := o.(T); ok {
			return true
		}
	}
	return false
}

func kinds(objs []client.Object) []string {
	var out []string
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u.GetKind())
			continue
		}
		out = append(out, fmt.Sprintf("%T", o))
	}
	return out
}

// TestLint is `helm lint --strict` with Helm 4 and Helm 3, on the defaults and with every option on.
func TestLint(t *testing.T) {
	for _, h := range helmenv.Both(t) {
		for _, f := range []string{"", filepath.Join(helmenv.ChartDir(), "ci", "everything-values.yaml")} {
			args := []string{"lint", "--strict", helmenv.ChartDir()}
			if f != "" {
				args = append(args, "-f", f)
			}
			out := h.MustRun(t, args...)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("%s %v:\n%s", h.Name(), args, out)
			}
		}
	}
}

// TestSchemaRejectsBadValues: each bad value fails rendering with Helm 4 and Helm 3, and the
// message names the field.
func TestSchemaRejectsBadValues(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		field  string
	}{
		{"zero replicas", map[string]any{"replicaCount": 0}, "replicaCount"},
		{"replicas as a string", map[string]any{"replicaCount": "two"}, "replicaCount"},
		{"a misspelt key", map[string]any{"replicas": 2}, "replicas"},
		{"digest is no digest", map[string]any{"image": map[string]any{"digest": "latest"}}, "/image/digest"},
		{"pull policy", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "/image/pullPolicy"},
		{"token mode", map[string]any{"cloud": map[string]any{"tokenMode": "root"}}, "/cloud/tokenMode"},
		{"port", map[string]any{"webhook": map[string]any{"port": 70000}}, "/webhook/port"},
		{"log format", map[string]any{"logging": map[string]any{"format": "xml"}}, "/logging/format"},
		{"threshold", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"expiringThreshold": "15 minutes"}}}, "/metrics/prometheusRule/expiringThreshold"},
		{"node-agent scope", map[string]any{"nodeAgent": map[string]any{"podScope": "everywhere"}}, "/nodeAgent/podScope"},
		{"image-syncer without its auth Secret", map[string]any{"imageSyncer": map[string]any{"enabled": true}}, "/imageSyncer/authSecret"},
		{"image-syncer auth key", map[string]any{"imageSyncer": map[string]any{"authSecret": map[string]any{"key": "auth"}}}, "/imageSyncer/authSecret/key"},
	}
	for _, h := range helmenv.Both(t) {
		for _, tt := range tests {
			t.Run(h.Name()+"/"+tt.name, func(t *testing.T) {
				out, err := h.Run(t, "template", "ferry", helmenv.ChartDir(), "-n", ns, "-f", helmenv.ValuesFile(t, tt.values))
				if err == nil {
					t.Fatalf("rendered with %v", tt.values)
				}
				if !strings.Contains(out, "schema") || !strings.Contains(out, tt.field) {
					t.Errorf("error does not name %s:\n%s", tt.field, out)
				}
			})
		}
	}
}

// TestDefaults: what a plain install renders.
func TestDefaults(t *testing.T) {
	objs := helmenv.Decode(t, helmenv.V4(t).Template(t, "ferry", ns, nil))
	d := find[*appsv1.Deployment](t, objs, "")
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/ferrypull/acr-credential-helper:0.1.0" {
		t.Errorf("image %s", c.Image)
	}
	spread := d.Spec.Template.Spec.TopologySpreadConstraints
	var keys []string
	for _, s := range spread {
		keys = append(keys, s.TopologyKey)
		if s.WhenUnsatisfiable != corev1.ScheduleAnyway || s.MaxSkew != 1 || !slices.Contains(s.MatchLabelKeys, "pod-template-hash") ||
			s.LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "ferry" {
			t.Errorf("spread %+v", s)
		}
	}
	if !slices.Equal(keys, []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"}) {
		t.Errorf("spread over %v", keys)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "")
	if pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "ferry" {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	for _, off := range []string{"NetworkPolicy", "CronJob", "DaemonSet", "ServiceMonitor", "PrometheusRule"} {
		for _, k := range kinds(objs) {
			if strings.Contains(k, off) {
				t.Errorf("default install renders a %s", k)
			}
		}
	}
	// One replica: no budget (it would block every drain).
	one := helmenv.Decode(t, helmenv.V4(t).Template(t, "ferry", ns, map[string]any{"replicaCount": 1}))
	if has[*policyv1.PodDisruptionBudget](one) {
		t.Error("a PodDisruptionBudget for a single replica")
	}
}

// TestEverything renders every optional part with Helm 4 and Helm 3.
func TestEverything(t *testing.T) {
	for _, h := range helmenv.Both(t) {
		t.Run(h.Name(), func(t *testing.T) {
			objs := helmenv.Decode(t, h.Template(t, "ferry", ns, everything(t)))
			d := find[*appsv1.Deployment](t, objs, "ferry-acr-credential-helper")
			ps := d.Spec.Template.Spec
			if got := ps.Containers[0].Image; got != "ghcr.io/ferrypull/acr-credential-helper@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
				t.Errorf("helper image %s, want pinned by digest", got)
			}
			if ps.PriorityClassName != "system-cluster-critical" || !ps.HostNetwork || ps.DNSPolicy != corev1.DNSClusterFirstWithHostNet ||
				len(ps.ImagePullSecrets) != 1 {
				t.Errorf("pod spec: priority %q hostNetwork %v dns %s pull secrets %v", ps.PriorityClassName, ps.HostNetwork, ps.DNSPolicy, ps.ImagePullSecrets)
			}
			ds := find[*appsv1.DaemonSet](t, objs, "")
			if got := ds.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, "/node-agent@sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
				t.Errorf("node-agent image %s", got)
			}
			np := find[*networkingv1.NetworkPolicy](t, objs, "")
			if len(np.Spec.Ingress) != 2 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 9443 || len(np.Spec.Ingress[0].From) != 0 ||
				np.Spec.Ingress[1].Ports[0].Port.IntValue() != 8080 || len(np.Spec.Ingress[1].From) != 1 {
				t.Errorf("NetworkPolicy ingress %+v", np.Spec.Ingress)
			}
			checkCronJob(t, objs)
			// monitoring: asked for, but the cluster has no Prometheus Operator CRDs
			for _, k := range kinds(objs) {
				if k == "ServiceMonitor" || k == "PrometheusRule" {
					t.Errorf("%s rendered although the cluster does not serve it", k)
				}
			}
		})
	}
}

// checkCronJob: image-syncer runs from the ConfigMap's images file and the Secret's auth file,
// and the ConfigMap holds no credentials.
func checkCronJob(t *testing.T, objs []client.Object) {
	t.Helper()
	cj := find[*batchv1.CronJob](t, objs, "")
	if cj.Spec.Schedule != "*/15 * * * *" || *cj.Spec.TimeZone != "Asia/Shanghai" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob %+v", cj.Spec)
	}
	ps := cj.Spec.JobTemplate.Spec.Template.Spec
	c := ps.Containers[0]
	if !strings.HasSuffix(c.Image, "/image-syncer@sha256:2123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
		t.Errorf("image-syncer image %s", c.Image)
	}
	for _, want := range []string{"--auth=/etc/image-syncer/auth/auth.yaml", "--images=/etc/image-syncer/images/images.yaml", "--arch=amd64"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	var secretVol, cmVol string
	for _, v := range ps.Volumes {
		if v.Secret != nil {
			secretVol = v.Secret.SecretName
		}
		if v.ConfigMap != nil {
			cmVol = v.ConfigMap.Name
		}
	}
	if secretVol != "image-syncer-auth" {
		t.Errorf("auth comes from Secret %q, want image-syncer-auth", secretVol)
	}
	cm := find[*corev1.ConfigMap](t, objs, cmVol)
	if len(cm.Data) != 1 || !strings.Contains(cm.Data["images.yaml"], "registry.internal:5000/team/app: registry.cn-hangzhou.aliyuncs.com/team/app") {
		t.Errorf("ConfigMap %s data %v, want only images.yaml", cmVol, cm.Data)
	}
}

// TestMonitoring: ServiceMonitor and PrometheusRule exist only when the cluster serves them.
func TestMonitoring(t *testing.T) {
	apis := []string{"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"}
	for _, h := range helmenv.Both(t) {
		t.Run(h.Name(), func(t *testing.T) {
			objs := helmenv.Decode(t, h.Template(t, "ferry", ns, everything(t), apis...))
			var sm, pr *unstructured.Unstructured
			for _, o := range objs {
				if u, ok := o.(*unstructured.Unstructured); ok {
					switch u.GetKind() {
					case "ServiceMonitor":
						sm = u
					case "PrometheusRule":
						pr = u
					}
				}
			}
			if sm == nil || pr == nil {
				t.Fatalf("with the CRDs served: ServiceMonitor %v, PrometheusRule %v", sm != nil, pr != nil)
			}
			if sm.GetLabels()["release"] != "prometheus" {
				t.Errorf("ServiceMonitor labels %v", sm.GetLabels())
			}
			b, _ := yaml.Marshal(pr.Object)
			rules := string(b)
			for _, want := range []string{"FerryACRTokenRefreshFailing", "FerryPullSecretNearExpiry", "FerryWebhookErrors",
				"- time() < 5400", `job="ferry-acr-credential-helper"`, "{{ $labels.acr_instance }}"} {
				if !strings.Contains(rules, want) {
					t.Errorf("PrometheusRule lacks %q:\n%s", want, rules)
				}
			}
		})
	}
}

// TestPodSecurity creates the chart's Pods (server-side dry run) in namespaces enforcing the Pod
// Security Standards of a real apiserver: the helper and image-syncer pass "restricted"; the
// node-agent needs "privileged" (hostPath, root) and is refused below it.
func TestPodSecurity(t *testing.T) {
	kube := kubeenv.Start(t)
	objs := helmenv.Decode(t, helmenv.V4(t).Template(t, "ferry", ns, everything(t)))
	pods := map[string]corev1.PodSpec{
		"acr-credential-helper": find[*appsv1.Deployment](t, objs, "ferry-acr-credential-helper").Spec.Template.Spec,
		"image-syncer":          find[*batchv1.CronJob](t, objs, "").Spec.JobTemplate.Spec.Template.Spec,
		"node-agent":            find[*appsv1.DaemonSet](t, objs, "").Spec.Template.Spec,
	}
	// hostNetwork is an opt-in for clusters that need it; restricted (and baseline) forbid it.
	h := pods["acr-credential-helper"]
	h.HostNetwork, h.DNSPolicy = false, ""
	pods["acr-credential-helper"] = h
	tests := []struct {
		pod, level string
		ok         bool
	}{
		{"acr-credential-helper", "restricted", true},
		{"image-syncer", "restricted", true},
		{"node-agent", "restricted", false},
		{"node-agent", "baseline", false},
		{"node-agent", "privileged", true},
	}
	for _, tt := range tests {
		t.Run(tt.pod+"/"+tt.level, func(t *testing.T) {
			name := "pss-" + tt.level
			nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod-security.kubernetes.io/enforce": tt.level}}}
			if err := kube.Client.Create(t.Context(), nsObj); err != nil && !strings.Contains(err.Error(), "already exists") {
				t.Fatal(err)
			}
			spec := pods[tt.pod]
			for _, sa := range []string{spec.ServiceAccountName, "default"} {
				if sa != "" {
					_ = kube.Client.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: sa}})
				}
			}
			spec.PriorityClassName = "" // admission would look the class up
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: tt.pod}, Spec: spec}
			err := kube.Client.Create(t.Context(), pod, client.DryRunAll)
			switch {
			case tt.ok && err != nil:
				t.Errorf("refused under %s: %v", tt.level, err)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), "violates PodSecurity")):
				t.Errorf("admitted under %s (err %v)", tt.level, err)
			}
		})
	}
}

// TestInstallEverything installs every optional part with Helm 4 and Helm 3 into a real
// apiserver (which validates every object), upgrades and uninstalls it.
func TestInstallEverything(t *testing.T) {
	kube := kubeenv.Start(t)
	for _, h := range helmenv.Both(t) {
		t.Run(h.Name(), func(t *testing.T) {
			release := "all" + fmt.Sprint(h.Major)
			kc := []string{"--kubeconfig", kube.KubeconfigPath, "-n", release}
			v := everything(t)
			v["acrConfiguration"] = map[string]any{"create": h.Major == 4} // one kube-system/acr-configuration
			values := helmenv.ValuesFile(t, v)
			h.MustRun(t, append([]string{"install", release, helmenv.ChartDir(), "--create-namespace", "-f", values}, kc...)...)
			var cj batchv1.CronJob
			if err := kube.Client.Get(t.Context(), client.ObjectKey{Namespace: release, Name: release + "-image-syncer"}, &cj); err != nil {
				t.Errorf("CronJob not installed: %v", err)
			}
			h.MustRun(t, append([]string{"upgrade", release, helmenv.ChartDir(), "-f", values, "--set", "imageSyncer.suspend=true"}, kc...)...)
			if err := kube.Client.Get(t.Context(), client.ObjectKey{Namespace: release, Name: release + "-image-syncer"}, &cj); err != nil || !*cj.Spec.Suspend {
				t.Errorf("upgrade did not suspend the CronJob (%v)", err)
			}
			// a bad value fails the install itself, naming the field
			out, err := h.Run(t, append([]string{"install", release + "-bad", helmenv.ChartDir(), "--set", "replicaCount=0"}, kc...)...)
			if err == nil || !strings.Contains(out, "replicaCount") {
				t.Errorf("helm install with replicaCount=0: %v\n%s", err, out)
			}
			h.MustRun(t, append([]string{"uninstall", release}, kc...)...)
		})
	}
}
