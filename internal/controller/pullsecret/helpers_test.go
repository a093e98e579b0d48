package pullsecret

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// testTokens is a test double for the TokenSource interface (the internal/acr cache), not for the
// token API: it mints "tok-<n>" passwords with a fixed lifetime, caches one token per instance
// and renews it when less than minValidity remains, and can be switched to fail.
type testTokens struct {
	mu     sync.Mutex
	life   time.Duration
	fail   error
	n      int
	calls  map[string]int // token mints per instance key
	cache  map[string]Token
	issued []string
}

func newTestTokens(life time.Duration) *testTokens {
	return &testTokens{life: life, calls: map[string]int{}, cache: map[string]Token{}}
}

func (s *testTokens) Token(_ context.Context, inst Instance, minValidity time.Duration) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return Token{}, s.fail
	}
	key := inst.Key()
	if t, ok := s.cache[key]; ok && time.Until(t.ExpiresAt) > minValidity {
		return t, nil
	}
	s.n++
	s.calls[key]++
	t := Token{Username: "cr_temp_user", Password: fmt.Sprintf("tok-%d-%s", s.n, key), ExpiresAt: time.Now().Add(s.life).Truncate(time.Second),
		Domains: []string{key + "-registry." + inst.Region + ".cr.aliyuncs.com", key + "-registry-vpc." + inst.Region + ".cr.aliyuncs.com"}}
	s.cache[key] = t
	s.issued = append(s.issued, t.Password)
	return t, nil
}

func (s *testTokens) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *testTokens) mints(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func (s *testTokens) allIssued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// testLoader reads a small test-only ConfigMap dialect (the real acr-configuration parser lives in
// internal/acrconfig): service-account, watch-namespace, expiring-threshold as documented, and
// "instances": comma list of "<instanceId>@<region>" ("@<region>" = Personal Edition), and
// "webhook": "true" to enable the webhook.
func testLoader(cm *corev1.ConfigMap) (*Settings, []Warning, error) {
	d := cm.Data
	s := &Settings{
		ServiceAccounts: ParseNameSet(orDefault(d["service-account"], "default"), "*"),
		Namespaces:      ParseNameSet(orDefault(d["watch-namespace"], "default"), "all"),
	}
	th, err := time.ParseDuration(orDefault(d["expiring-threshold"], "15m"))
	if err != nil {
		return nil, nil, fmt.Errorf("data[expiring-threshold]: invalid duration %q", d["expiring-threshold"])
	}
	s.ExpiringThreshold = th
	for i, item := range strings.Split(d["instances"], ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		id, region, ok := strings.Cut(item, "@")
		if !ok || region == "" {
			return nil, nil, fmt.Errorf("data[instances][%d]: want <id>@<region>, got %q", i, item)
		}
		s.Instances = append(s.Instances, Instance{ID: id, Region: region})
	}
	s.Webhook = WebhookSettings{Enable: d["webhook"] == "true", FailurePolicy: "Ignore", TimeoutSeconds: 10}
	return s, nil, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

type harness struct {
	env    *kubeenv.Env
	c      client.Client
	tokens *testTokens
	store  *Store
	logs   *logbuf.Buffer
}

// startHarness starts a real apiserver and the two reconcilers in a manager, with logs captured.
func startHarness(t *testing.T, tokens *testTokens) *harness {
	return startHarnessWith(t, tokens, testLoader)
}

// startHarnessWith is startHarness with a chosen Loader.
func startHarnessWith(t *testing.T, tokens *testTokens, load Loader) *harness {
	t.Helper()
	env := kubeenv.Start(t)
	logs := &logbuf.Buffer{}
	logger := funcr.New(func(prefix, args string) { fmt.Fprintln(logs, prefix, args) }, funcr.Options{Verbosity: 1})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	store := &Store{}
	rec := mgr.GetEventRecorder("acr-credential-helper")
	if err := (&ConfigReconciler{Client: mgr.GetClient(), Store: store, Load: load, Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&NamespaceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: store, Tokens: tokens, Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(t.Context(), logger))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return &harness{env: env, c: env.Client, tokens: tokens, store: store, logs: logs}
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	last := context.DeadlineExceeded
	if err := tools.Poll(t.Context(), timeout, 20*time.Millisecond, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	}); err != nil {
		t.Fatalf("%s: not reached within %s: %v", what, timeout, last)
	}
}

func (h *harness) applyConfig(t *testing.T, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ConfigMapNamespace, Name: ConfigMapName}}
	_, err := ctrl.CreateOrUpdate(t.Context(), h.c, cm, func() error { cm.Data = data; return nil })
	if err != nil {
		t.Fatalf("apply ConfigMap: %v", err)
	}
}

func (h *harness) namespace(t *testing.T, name string) {
	t.Helper()
	if err := h.c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	// No controller-manager may run: create the default ServiceAccount unless one already did.
	if err := h.c.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default ServiceAccount in %s: %v", name, err)
	}
}

func (h *harness) secret(ns, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := h.c.Get(context.TODO(), types.NamespacedName{Namespace: ns, Name: name}, s)
	return s, err
}

func (h *harness) sa(t *testing.T, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	sa := &corev1.ServiceAccount{}
	if err := h.c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, sa); err != nil {
		t.Fatalf("get ServiceAccount %s/%s: %v", ns, name, err)
	}
	return sa
}

func pullSecretNames(sa *corev1.ServiceAccount) []string {
	var out []string
	for _, r := range sa.ImagePullSecrets {
		out = append(out, r.Name)
	}
	return out
}

// events returns the notes of Events with the given reason about the ConfigMap.
func (h *harness) events(t *testing.T, reason string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := h.c.List(t.Context(), &list, client.InNamespace(ConfigMapNamespace)); err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Name == ConfigMapName {
			out = append(out, e.Note)
		}
	}
	return out
}
