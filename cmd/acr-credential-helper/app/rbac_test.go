package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// renderChart renders one template of charts/ferry with values (a stand-in for `helm template`,
// which the test rig does not have), implementing the few template functions the chart uses.
func renderChart(t *testing.T, file, releaseNS string, values map[string]any) string {
	t.Helper()
	root := tools.ModuleRoot()
	var tpl *template.Template
	funcs := template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := tpl.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"trunc":      func(n int, s string) string { return s[:min(n, len(s))] },
		"trimSuffix": func(suf, s string) string { return strings.TrimSuffix(s, suf) },
		"quote":      func(v any) string { return strconv.Quote(fmt.Sprint(v)) },
		"default": func(def, v any) any {
			if v == nil || v == "" {
				return def
			}
			return v
		},
		"toYaml": func(v any) (string, error) {
			b, err := yaml.Marshal(v)
			return strings.TrimSuffix(string(b), "\n"), err
		},
	}
	tpl = template.New("chart").Funcs(funcs)
	for _, f := range []string{"_helpers.tpl", file} {
		b, err := os.ReadFile(filepath.Join(root, "charts/ferry/templates", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tpl.New(f).Parse(string(b)); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
	}
	data := map[string]any{
		"Release": map[string]any{"Name": "ferry", "Namespace": releaseNS},
		"Chart":   map[string]any{"Name": "ferry", "Version": "0.1.0", "AppVersion": "0.1.0"},
		"Values":  values,
	}
	var out bytes.Buffer
	if err := tpl.ExecuteTemplate(&out, file, data); err != nil {
		t.Fatalf("render %s: %v", file, err)
	}
	return out.String()
}

// chartValues reads charts/ferry/values.yaml.
func chartValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tools.ModuleRoot(), "charts/ferry/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	return v
}

// renderChartRBAC renders charts/ferry/templates/rbac.yaml into objects.
func renderChartRBAC(t *testing.T, releaseNS string) []client.Object {
	t.Helper()
	out := renderChart(t, "rbac.yaml", releaseNS, chartValues(t))
	var objs []client.Object
	for _, doc := range strings.Split(out, "\n---") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || meta.Kind == "" {
			continue
		}
		var o client.Object
		switch meta.Kind {
		case "ClusterRole":
			o = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			o = &rbacv1.ClusterRoleBinding{}
		case "Role":
			o = &rbacv1.Role{}
		case "RoleBinding":
			o = &rbacv1.RoleBinding{}
		default:
			t.Fatalf("unexpected kind %s in rbac.yaml", meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), o); err != nil {
			t.Fatalf("decode %s: %v\n%s", meta.Kind, err, doc)
		}
		objs = append(objs, o)
	}
	return objs
}

// TestChartDeploymentArgs renders the Deployment with the default values and with every option
// switched on, and runs the binary's command-line parsing and validation on its arguments.
func TestChartDeploymentArgs(t *testing.T) {
	tests := []struct {
		name string
		set  func(v map[string]any)
		want []string
	}{
		{name: "defaults", set: func(map[string]any) {}, want: []string{"--leader-elect=true", "--webhook-port=9443"}},
		{name: "everything on", set: func(v map[string]any) {
			v["rrsa"].(map[string]any)["enabled"] = true
			v["webhook"].(map[string]any)["certManager"].(map[string]any)["enabled"] = true
			c := v["cloud"].(map[string]any)
			c["crEndpoint"], c["stsEndpoint"], c["metadataEndpoint"], c["caConfigMap"], c["vpc"] = "https://cr.example:443", "sts.example:443", "http://169.254.0.1", "cloud-ca", true
		}, want: []string{"--cert-manager=ferry-system/ferry-acr-credential-helper-webhook", "--rrsa-token-file=/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token", "--vpc=true"}},
		{name: "webhook off", set: func(v map[string]any) { v["webhook"].(map[string]any)["enabled"] = false }, want: []string{"--webhook-port=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := chartValues(t)
			tt.set(values)
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict([]byte(renderChart(t, "deployment.yaml", "ferry-system", values)), &d); err != nil {
				t.Fatalf("rendered Deployment: %v", err)
			}
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
			}
			args := d.Spec.Template.Spec.Containers[0].Args
			for _, w := range tt.want {
				if !slices.Contains(args, w) {
					t.Errorf("args %v lack %s", args, w)
				}
			}
			var got *Options
			cmd := NewCommand(func(_ context.Context, o *Options, _ operator.Streams) error { got = o; return nil }, operator.Streams{Out: io.Discard, Err: io.Discard}, args)
			if err := cmd.ExecuteContext(t.Context()); err != nil {
				t.Fatalf("the binary rejects the chart's arguments %v: %v", args, err)
			}
			if got.Namespace == "" || got.Region != "cn-hangzhou" {
				t.Errorf("options %+v", got)
			}
		})
	}
}

// TestChartRBACSuffices runs the helper as the chart's ServiceAccount with only the chart's RBAC:
// it must load the configuration, write Secrets, patch ServiceAccounts, emit Events, hold the
// leader Lease, manage its webhook certificate and configuration — and must not be able to do
// what it does not need.
func TestChartRBACSuffices(t *testing.T) {
	kube := kubeenv.Start(t)
	ctx := t.Context()
	const releaseNS = "ferry-system"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "ferry-acr-credential-helper"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}},
	} {
		if err := kube.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, o := range renderChartRBAC(t, releaseNS) {
		if err := kube.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	// A kubeconfig carrying the ServiceAccount's token: the helper gets nothing but the chart's RBAC.
	tr, err := kube.Clientset.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, "ferry-acr-credential-helper",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: sa, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: sa}}]
current-context: c
`, kube.Config.Host, encodeB64(kube.Config.CAData), tr.Status.Token)), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := kube.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"},
		Data: map[string]string{"watch-namespace": "app", "service-account": "*", "acr-registry-info": "- instanceId: cri-rbac\n  regionId: cn-hangzhou\n",
			"webhook-configuration": "enable: true\n"}}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o := DefaultOptions()
	o.Kubeconfig, o.Namespace, o.Region, o.LeaderElect = kc, releaseNS, "cn-hangzhou", true
	o.MetricsAddr, o.HealthAddr = "0", "0"
	o.WebhookPort, o.WebhookHost, o.WebhookURL = port, "127.0.0.1", "https://127.0.0.1:"+strconv.Itoa(port)
	o.skipNameValidation = true
	logs := &logbuf.Buffer{}
	tokens := pullsecret.TokenSourceFunc(func(context.Context, pullsecret.Instance, time.Duration) (pullsecret.Token, error) {
		return pullsecret.Token{Username: "u", Password: "static-test-password", ExpiresAt: time.Now().Add(time.Hour), Domains: []string{"r.example.com"}}, nil
	})
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(hctx, o, operator.Streams{Out: io.Discard, Err: logs}, tokens) }()
	defer func() { cancel(); <-done }()

	poll(t, 60*time.Second, "Secret written with chart RBAC", func() error {
		return kube.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "acr-pull-cri-rbac"}, &corev1.Secret{})
	})
	poll(t, 30*time.Second, "ServiceAccount patched", func() error {
		sa := &corev1.ServiceAccount{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "default"}, sa); err != nil {
			return err
		}
		if len(sa.ImagePullSecrets) != 1 {
			return fmt.Errorf("default imagePullSecrets %v", sa.ImagePullSecrets)
		}
		return nil
	})
	poll(t, 30*time.Second, "webhook configuration and certificate", func() error {
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: "ferry-acr-credential-helper"}, &admissionregistrationv1.MutatingWebhookConfiguration{}); err != nil {
			return err
		}
		return kube.Client.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: o.WebhookCertSecret}, &corev1.Secret{})
	})
	poll(t, 30*time.Second, "new ServiceAccount mutated through the webhook", func() error {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", GenerateName: "helm-"}}
		if err := kube.Client.Create(ctx, sa); err != nil {
			return err
		}
		if len(sa.ImagePullSecrets) != 1 {
			return fmt.Errorf("not mutated yet; helper log tail:\n%s", tail(logs.String(), 2500))
		}
		return nil
	})
	for _, bad := range []string{"forbidden", "Forbidden"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("the helper hit an RBAC denial:\n%s", tail(logs.String(), 3000))
			break
		}
	}

	// And what the chart does not grant stays denied.
	sa, err := client.New(mustRESTConfig(t, kc), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for what, op := range map[string]func() error{
		"create Pods": func() error {
			return sa.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "x"}})
		},
		"write ConfigMaps": func() error {
			return sa.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "x"}})
		},
		"delete Namespaces": func() error {
			return sa.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})
		},
		"touch other webhook configurations": func() error {
			return sa.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}})
		},
		"bind roles": func() error {
			return sa.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "escalate"},
				RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"}})
		},
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("chart RBAC allows the helper to %s (err=%v)", what, err)
		}
	}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func mustRESTConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
