package pod

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/controller/schedulinggate"
	"github.com/ferrypull/ferry/internal/nodeagent/agent"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/tools"
	ferrywebhook "github.com/ferrypull/ferry/internal/webhook"
)

// namespace creates ns (if missing) and its default ServiceAccount, which the
// ServiceAccount admission plugin requires for every Pod.
func namespace(t testing.TB, c client.Client, ns string) {
	t.Helper()
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}},
	} {
		if err := c.Create(t.Context(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// secretMaker is a SecretEnsurer for tests that writes a real (placeholder)
// dockerconfigjson Secret per instance, standing in for the token machinery.
type secretMaker struct {
	c       client.Client
	unknown string        // instance id reported as unknown
	auth    func() string // .dockerconfigjson content; default a placeholder
	names   func(annotations.InstanceRef, annotations.RoleChain) string
}

func (s *secretMaker) EnsureInstanceSecret(ctx context.Context, ns string, i annotations.InstanceRef, c annotations.RoleChain) (string, error) {
	if i.InstanceID == s.unknown {
		return "", fmt.Errorf("%w: %s is not in acr-configuration", ErrUnknownInstance, i)
	}
	name := "acr-pull-" + i.InstanceID
	if s.names != nil {
		name = s.names(i, c)
	}
	data := `{"auths":{}}`
	if s.auth != nil {
		data = s.auth()
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(data)}}
	if err := s.c.Create(ctx, sec); err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	return name, nil
}

// Stack is the webhook (served to the apiserver), the gate controller and optionally node-agents.
type Stack struct {
	Env *kubeenv.Env
	URL string
}

// StartWebhook serves the Pod webhook for env with the given options and registers it.
func StartWebhook(t testing.TB, env *kubeenv.Env, opts Options) {
	t.Helper()
	policy := opts.FailurePolicy
	if policy == "" {
		policy = Ignore
	}
	startWebhookHandler(t, env, NewMutator(opts), policy)
}

func startWebhookHandler(t testing.TB, env *kubeenv.Env, h admission.Handler, policy FailurePolicy) {
	t.Helper()
	ctx := t.Context()
	c := env.Client
	namespace(t, c, "ferry-system")
	namespace(t, c, "default")
	certs := &ferrywebhook.CertProvider{Client: c, Namespace: "ferry-system", SecretName: "ferry-pod-webhook-cert",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if err := certs.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	port := tools.FreePort(t)
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}})
	srv.Register(Path, &admission.Webhook{Handler: h})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = srv.Start(sctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "https://127.0.0.1:" + strconv.Itoa(port) // MutatingWebhook adds Path
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "ferry-pod"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{MutatingWebhook(admissionregistrationv1.WebhookClientConfig{
			URL: &url, CABundle: certs.CABundle()}, policy, 10, "ferry-system")}}
	if err := c.Create(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	// Wait until the apiserver reaches the webhook: a probe Pod gets the label.
	n := 0
	poll.Until(t, "webhook reachable", func() error {
		n++
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "probe-" + strconv.Itoa(n),
			Annotations: map[string]string{annotations.PlainHTTPRegistry: "probe.invalid"}},
			Spec: corev1.PodSpec{NodeName: "nowhere", AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: "probe.invalid/x"}}}}
		if err := c.Create(ctx, p, client.DryRunAll); err != nil {
			return err
		}
		if p.Labels[annotations.RegistryConfigLabel] != "true" {
			return fmt.Errorf("not mutated yet")
		}
		return nil
	})
}

// StartGate runs the gate controller against env.
func StartGate(t testing.TB, env *kubeenv.Env) {
	t.Helper()
	skip := true // one gate controller per test, several tests per process
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: clientgoscheme.Scheme,
		Cache: cache.Options{ByObject: schedulinggate.CacheByObject()}, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&schedulinggate.GateReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("ferry-gate")}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	run(t, mgr)
}

// StartAgent runs a node-agent for node with hosts dir and allow-list.
func StartAgent(t testing.TB, env *kubeenv.Env, node, dir string, allowed ...string) {
	t.Helper()
	allow, err := hostsconfig.ParseAllowlist(allowed)
	if err != nil {
		t.Fatal(err)
	}
	skip := true // several agents in one test process
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: clientgoscheme.Scheme, Cache: agent.CacheOptions(node, agent.ScopeCluster),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := agent.New(mgr.GetClient(), agent.Options{NodeName: node, Hosts: hostsconfig.New(dir), Allowlist: allow, Recorder: mgr.GetEventRecorder("ferry-node-agent")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	run(t, mgr)
}

func run(t testing.TB, mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func readyNode(t testing.TB, c client.Client, name string, ann map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	if err := c.Create(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	if err := c.Status().Update(t.Context(), n); err != nil {
		t.Fatal(err)
	}
}

// waitUngated polls pod, refreshing it in place, until its scheduling gate
// is gone.
func waitUngated(ctx context.Context, t *testing.T, c client.Client, pod *corev1.Pod, what string) {
	t.Helper()
	poll.Until(t, what, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		if annotations.Gated(pod) {
			return fmt.Errorf("still gated")
		}
		return nil
	})
}

func findEvent(ctx context.Context, c client.Client, ns, name, reason string) (*corev1.Event, error) {
	var evs corev1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	for i, e := range evs.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			return &evs.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no %s event for %s/%s among %d", reason, ns, name, len(evs.Items))
}

func TestInstanceAnnotationsThroughAPIServer(t *testing.T) {
	log.SetLogger(testr.New(t))
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	namespace(t, c, "app")
	rec := newAPIRecorder(t, env)
	StartWebhook(t, env, Options{Ensurer: &secretMaker{c: c, unknown: "cri-gone"}, FailurePolicy: Fail, Recorder: rec})

	t.Run("instance Secret created and appended after the user's", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "ok",
			Annotations: map[string]string{annotations.AcrInstanceID: "cn-beijing:cri-aaa"}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: new(bool), ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mine"}},
				Containers: []corev1.Container{{Name: "c", Image: "x-registry.cn-beijing.cr.aliyuncs.com/a/b:1"}}}}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if got := secretNames(pod); strings.Join(got, ",") != "mine,acr-pull-cri-aaa" {
			t.Fatalf("imagePullSecrets %v", got)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "app", Name: "acr-pull-cri-aaa"}, &corev1.Secret{}); err != nil {
			t.Fatalf("managed Secret: %v", err)
		}
	})

	t.Run("unknown instance rejected with a message naming annotation and value, plus an Event", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "gone",
			Annotations: map[string]string{annotations.AcrInstanceIDs: "cri-aaa, cn-hangzhou:cri-gone"}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: "x/y"}}}}
		err := c.Create(ctx, pod)
		if err == nil || !strings.Contains(err.Error(), `annotation k8s.aliyun.com/acr-instance-ids: value "cn-hangzhou:cri-gone"`) ||
			!strings.Contains(err.Error(), "unknown ACR instance") {
			t.Fatalf("err = %v", err)
		}
		poll.Until(t, "event", func() error {
			e, err := findEvent(ctx, c, "app", "gone", ReasonPullSecretFailed)
			if err != nil {
				return err
			}
			if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, "cri-gone") {
				t.Fatalf("event %s %q", e.Type, e.Message)
			}
			return nil
		})
	})
}

func TestRegistryGateOrdering(t *testing.T) {
	log.SetLogger(testr.New(t))
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	namespace(t, c, "app")
	// node-b runs a node-agent that has published a status but is slow: it starts only later.
	readyNode(t, c, "node-a", nil)
	readyNode(t, c, "node-b", map[string]string{annotations.NodeRegistryStatusAnnotation: "{}"})
	StartWebhook(t, env, Options{Recorder: newAPIRecorder(t, env)})
	StartGate(t, env)
	dirA, dirB := t.TempDir(), t.TempDir()
	StartAgent(t, env, "node-a", dirA, "*.ferry.test")

	const host = "harbor-http.ferry.test:5000"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web",
		Annotations: map[string]string{annotations.PlainHTTPRegistry: host}},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: host + "/app:1"}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if !annotations.Gated(pod) || pod.Labels[annotations.RegistryConfigLabel] != "true" {
		t.Fatalf("webhook did not gate/label: gates %v labels %v", pod.Spec.SchedulingGates, pod.Labels)
	}
	// The scheduler cannot bind a gated Pod.
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-a"}}
	if err := c.SubResource("binding").Create(ctx, pod, bind); err == nil {
		t.Fatal("binding a gated pod succeeded")
	}

	// node-a configures the host; the gate must stay while node-b has not.
	poll.Until(t, "node-a ready", func() error {
		var n corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: "node-a"}, &n); err != nil {
			return err
		}
		if !strings.Contains(n.Annotations[annotations.NodeRegistryStatusAnnotation], host) {
			return fmt.Errorf("status %q", n.Annotations[annotations.NodeRegistryStatusAnnotation])
		}
		return nil
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	if !annotations.Gated(pod) {
		t.Fatal("gate released before node-b's agent configured the host")
	}

	StartAgent(t, env, "node-b", dirB, "*.ferry.test")
	waitUngated(ctx, t, c, pod, "gate released")
	// Ordering: once the gate is gone, hosts.toml exists on every agent node.
	for _, d := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(d, host, hostsconfig.FileName)); err != nil {
			t.Fatalf("gate released but %v", err)
		}
	}
	if err := c.SubResource("binding").Create(ctx, pod, bind); err != nil {
		t.Fatalf("bind after release: %v", err)
	}
	poll.Until(t, "release event", func() error { _, err := findEvent(ctx, c, "app", "web", schedulinggate.ReasonGateReleased); return err })

	t.Run("refused host: gate released with a Warning", func(t *testing.T) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "evil",
			Annotations: map[string]string{annotations.InsecureRegistry: "registry.evil.com"}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: "registry.evil.com/x"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitUngated(ctx, t, c, p, "released")
		poll.Until(t, "warning", func() error {
			e, err := findEvent(ctx, c, "app", "evil", schedulinggate.ReasonGateWarning)
			if err != nil {
				return err
			}
			if !strings.Contains(e.Message, annotations.InsecureRegistry) || !strings.Contains(e.Message, "registry.evil.com") || !strings.Contains(e.Message, "node-a") {
				t.Fatalf("message %q", e.Message)
			}
			return nil
		})
		for _, d := range []string{dirA, dirB} {
			if _, err := os.Stat(filepath.Join(d, "registry.evil.com")); !os.IsNotExist(err) {
				t.Fatalf("refused host configured: %v", err)
			}
		}
	})
}
