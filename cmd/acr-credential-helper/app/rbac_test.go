package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/helmenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// TestChartDeploymentArgs renders the Deployment with Helm 4 and Helm 3, with the default values
// and with every option switched on, and runs the binary's command-line parsing and validation
// on its arguments.
func TestChartDeploymentArgs(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{name: "defaults", want: []string{"--leader-elect=true", "--webhook-port=9443"}},
		{name: "everything on", values: map[string]any{
			"rrsa":    map[string]any{"enabled": true},
			"webhook": map[string]any{"certManager": map[string]any{"enabled": true}},
			"cloud": map[string]any{"crEndpoint": "https://cr.example:443", "stsEndpoint": "sts.example:443",
				"metadataEndpoint": "http://169.254.0.1", "caConfigMap": "cloud-ca", "vpc": true},
		}, want: []string{"--cert-manager=ferry-system/ferry-acr-credential-helper-webhook", "--rrsa-token-file=/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token", "--vpc=true"}},
		{name: "webhook off", values: map[string]any{"webhook": map[string]any{"enabled": false}}, want: []string{"--webhook-port=0"}},
	}
	for _, helm := range helmenv.Both(t) {
		for _, tt := range tests {
			t.Run(helm.Name()+"/"+tt.name, func(t *testing.T) {
				var d *appsv1.Deployment
				for _, o := range helmenv.Decode(t, helm.Template(t, "ferry", "ferry-system", tt.values, "--show-only", "templates/deployment.yaml")) {
					if dd, ok := o.(*appsv1.Deployment); ok {
						d = dd
					}
				}
				if d == nil {
					t.Fatal("no Deployment rendered")
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
}

// TestChartInstall installs charts/ferry with Helm 4 and with Helm 3 into a real apiserver and
// runs the helper in process as the chart's ServiceAccount, with the chart's arguments and only
// the chart's RBAC: it must load the configuration, write Secrets, patch ServiceAccounts, emit
// Events, hold the leader Lease, manage its webhook certificate and fill in the chart's
// MutatingWebhookConfiguration — and must not be able to do what it does not need. `helm upgrade`
// keeps the webhooks the helper wrote; `helm uninstall` removes the configuration, the helper
// (still running, as a terminating replica would) does not bring it back, and with the webhook's
// failurePolicy Fail, ServiceAccounts and Pods can still be created once the helper is gone.
func TestChartInstall(t *testing.T) {
	kube := kubeenv.Start(t)
	for _, helm := range helmenv.Both(t) {
		t.Run(helm.Name(), func(t *testing.T) { testChartInstall(t, kube, helm) })
	}
}

func testChartInstall(t *testing.T, kube *kubeenv.Env, helm *helmenv.Helm) {
	ctx := t.Context()
	release := "ferry"
	if helm.Major == 3 {
		release = "ferry3"
	}
	releaseNS, appNS := release+"-system", release+"-app"
	fullname := "ferry-acr-credential-helper"
	if release != "ferry" {
		fullname = release + "-acr-credential-helper"
	}
	kube.CreateNamespace(t, appNS)
	values := helmenv.ValuesFile(t, map[string]any{"logging": map[string]any{"level": 1}})
	kc := []string{"--kubeconfig", kube.KubeconfigPath, "--namespace", releaseNS}
	helm.MustRun(t, append([]string{"install", release, helmenv.ChartDir(), "--create-namespace", "-f", values}, kc...)...)
	installed := true
	t.Cleanup(func() {
		if installed {
			_, _ = helm.Run(t, append([]string{"uninstall", release}, kc...)...)
		}
	})

	// The configuration as Helm created it: empty, waiting for the helper.
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Name: fullname}, mwc); err != nil {
		t.Fatalf("the chart created no MutatingWebhookConfiguration: %v", err)
	}
	if len(mwc.Webhooks) != 0 {
		t.Fatalf("chart's configuration has webhooks before the helper runs: %v", mwc.Webhooks)
	}

	// A kubeconfig carrying the ServiceAccount's token: the helper gets nothing but the chart's RBAC.
	tr, err := kube.Clientset.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, fullname,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saKubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(saKubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: sa, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: sa}}]
current-context: c
`, kube.Config.Host, encodeB64(kube.Config.CAData), tr.Status.Token)), 0o600); err != nil {
		t.Fatal(err)
	}

	// failurePolicy Fail: a configuration left behind after uninstall would block every
	// ServiceAccount creation once the helper is gone.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"}}
	if _, err := controllerutil.CreateOrUpdate(ctx, kube.Client, cm, func() error {
		cm.Data = map[string]string{"watch-namespace": appNS, "service-account": "*", "acr-registry-info": "- instanceId: cri-rbac\n  regionId: cn-hangzhou\n",
			"webhook-configuration": "enable: true\nfailure-policy: Fail\n"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The helper with the Deployment's arguments, as the chart runs it; only what a process
	// outside the cluster needs differs (kubeconfig, where the webhook listens, no metrics).
	d := &appsv1.Deployment{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: fullname}, d); err != nil {
		t.Fatal(err)
	}
	var o *Options
	cmd := NewCommand(func(_ context.Context, got *Options, _ operator.Streams) error { o = got; return nil },
		operator.Streams{Out: io.Discard, Err: io.Discard}, d.Spec.Template.Spec.Containers[0].Args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("the binary rejects the installed Deployment's arguments: %v", err)
	}
	if o.WebhookConfigCreate || o.WebhookConfigName != fullname {
		t.Fatalf("chart runs the helper with --webhook-configuration-create=%v, name %s", o.WebhookConfigCreate, o.WebhookConfigName)
	}
	port := tools.FreePort(t)
	o.Kubeconfig, o.Namespace = saKubeconfig, releaseNS
	o.MetricsAddr, o.HealthAddr = "0", "0"
	o.WebhookPort, o.WebhookHost, o.WebhookURL = port, "127.0.0.1", "https://127.0.0.1:"+strconv.Itoa(port)
	o.WebhookResync = 200 * time.Millisecond // frequent syncs: a re-created configuration would show at once
	o.skipNameValidation = true
	logs := &logbuf.Buffer{}
	tokens := pullsecret.TokenSourceFunc(func(context.Context, pullsecret.Instance, time.Duration) (pullsecret.Token, error) {
		return pullsecret.Token{Username: "u", Password: "static-test-password", ExpiresAt: time.Now().Add(time.Hour), Domains: []string{"r.example.com"}}, nil
	})
	hctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() { _ = run(hctx, o, operator.Streams{Out: io.Discard, Err: logs}, tokens); close(exited) }()
	stop := func() { cancel(); <-exited }
	defer stop()

	poll(t, 60*time.Second, "Secret written with chart RBAC", func() error {
		return kube.Client.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "acr-pull-cri-rbac"}, &corev1.Secret{})
	})
	poll(t, 30*time.Second, "ServiceAccount patched", func() error {
		sa := &corev1.ServiceAccount{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "default"}, sa); err != nil {
			return err
		}
		if len(sa.ImagePullSecrets) != 1 {
			return fmt.Errorf("default imagePullSecrets %v", sa.ImagePullSecrets)
		}
		return nil
	})
	poll(t, 30*time.Second, "the chart's webhook configuration filled in, certificate written", func() error {
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: fullname}, mwc); err != nil {
			return err
		}
		if len(mwc.Webhooks) == 0 || len(mwc.Webhooks[0].ClientConfig.CABundle) == 0 {
			return fmt.Errorf("webhooks %d", len(mwc.Webhooks))
		}
		return kube.Client.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: o.WebhookCertSecret}, &corev1.Secret{})
	})
	poll(t, 30*time.Second, "new ServiceAccount mutated through the webhook", func() error {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, GenerateName: "helm-"}}
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

	// What the chart does not grant stays denied.
	sa, err := client.New(mustRESTConfig(t, saKubeconfig), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for what, op := range map[string]func() error{
		"create Pods": func() error {
			return sa.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "x"}})
		},
		"write ConfigMaps": func() error {
			return sa.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "x"}})
		},
		"delete Namespaces": func() error {
			return sa.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}})
		},
		"touch other webhook configurations": func() error {
			return sa.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}})
		},
		"create a webhook configuration": func() error {
			return sa.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname + "-x"}})
		},
		"delete its own webhook configuration": func() error {
			return sa.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: fullname}})
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

	// helm upgrade with a changed value: the Deployment changes, the webhooks the helper wrote stay.
	gen := d.Generation
	helm.MustRun(t, append([]string{"upgrade", release, helmenv.ChartDir(), "-f", values, "--set", "logging.level=0"}, kc...)...)
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: fullname}, d); err != nil {
		t.Fatal(err)
	}
	if d.Generation == gen || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--v=0") {
		t.Errorf("helm upgrade did not change the Deployment (generation %d → %d, args %v)", gen, d.Generation, d.Spec.Template.Spec.Containers[0].Args)
	}
	if err := kube.Client.Get(ctx, client.ObjectKey{Name: fullname}, mwc); err != nil || len(mwc.Webhooks) == 0 {
		t.Errorf("after helm upgrade the webhook configuration has %d webhooks (err %v); Helm must not clear what the helper wrote", len(mwc.Webhooks), err)
	}

	// helm uninstall while the helper still runs.
	helm.MustRun(t, append([]string{"uninstall", release}, kc...)...)
	installed = false
	err = kube.Client.Get(ctx, client.ObjectKey{Name: fullname}, &admissionregistrationv1.MutatingWebhookConfiguration{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("after helm uninstall the MutatingWebhookConfiguration is still there (err %v)", err)
	}
	// The helper, still running as a terminating replica would, looks for the configuration every
	// 200 ms and never re-creates it — until it stops by itself: uninstall deleted its
	// ServiceAccount, so its token is refused and it loses the leader Lease.
	const waiting = "waiting for the MutatingWebhookConfiguration"
	before := strings.Count(logs.String(), waiting)
	poll(t, 60*time.Second, "the helper looked again or stopped", func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		if n := strings.Count(logs.String(), waiting); n < before+3 {
			return fmt.Errorf("%d more looks; helper log tail:\n%s", n-before, tail(logs.String(), 1500))
		}
		return nil
	})
	err = kube.Client.Get(ctx, client.ObjectKey{Name: fullname}, &admissionregistrationv1.MutatingWebhookConfiguration{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("the helper re-created the MutatingWebhookConfiguration after helm uninstall (err %v)", err)
	}
	stop()

	// With the helper gone, nothing intercepts ServiceAccount or Pod creation.
	if err := kube.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "after-uninstall"}}); err != nil {
		t.Errorf("ServiceAccount creation after helm uninstall: %v", err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "after-uninstall"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "r.example.com/app:1"}}}}
	if err := kube.Client.Create(ctx, pod); err != nil {
		t.Errorf("Pod creation after helm uninstall: %v", err)
	}
	// What stays: the pull Secrets ferry wrote (workloads keep pulling; README "Uninstall").
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: appNS, Name: "acr-pull-cri-rbac"}, &corev1.Secret{}); err != nil {
		t.Errorf("pull Secret gone after uninstall: %v", err)
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
