package namespace

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

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

	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/poll"
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
	cache  map[string]pullsecret.Token
	issued []string
}

func newTestTokens(life time.Duration) *testTokens {
	return &testTokens{life: life, calls: map[string]int{}, cache: map[string]pullsecret.Token{}}
}

func (s *testTokens) Token(_ context.Context, inst pullsecret.Instance, minValidity time.Duration) (pullsecret.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return pullsecret.Token{}, s.fail
	}
	key := inst.Key()
	if t, ok := s.cache[key]; ok && time.Until(t.ExpiresAt) > minValidity {
		return t, nil
	}
	s.n++
	s.calls[key]++
	t := pullsecret.Token{Username: "cr_temp_user", Password: redact.Secret(fmt.Sprintf("tok-%d-%s", s.n, key)), ExpiresAt: time.Now().Add(s.life).Truncate(time.Second),
		Domains: []string{key + "-registry." + inst.Region + ".cr.aliyuncs.com", key + "-registry-vpc." + inst.Region + ".cr.aliyuncs.com"}}
	s.cache[key] = t
	s.issued = append(s.issued, t.Password.Reveal())
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
func testLoader(cm *corev1.ConfigMap) (*pullsecret.Settings, []pullsecret.Warning, error) {
	d := cm.Data
	s := &pullsecret.Settings{
		ServiceAccounts: pullsecret.ParseNameSet(orDefault(d["service-account"], "default"), "*"),
		Namespaces:      pullsecret.ParseNameSet(orDefault(d["watch-namespace"], "default"), "all"),
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
		s.Instances = append(s.Instances, pullsecret.Instance{ID: id, Region: region})
	}
	s.Webhook = pullsecret.WebhookSettings{Enable: d["webhook"] == "true", FailurePolicy: "Ignore", TimeoutSeconds: 10}
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
	cache  client.Reader // the manager's cache, what the reconcilers read
	tokens *testTokens
	store  *pullsecret.Store
	logs   *logbuf.Buffer
}

// startHarness starts a real apiserver and the two reconcilers in a manager, with logs captured.
func startHarness(t *testing.T, tokens *testTokens) *harness {
	return startHarnessWith(t, tokens, testLoader)
}

// startHarnessWith is startHarness with a chosen Loader.
func startHarnessWith(t *testing.T, tokens *testTokens, load pullsecret.Loader) *harness {
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
	store := &pullsecret.Store{}
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
	return &harness{env: env, c: env.Client, cache: mgr.GetCache(), tokens: tokens, store: store, logs: logs}
}

func (h *harness) applyConfig(t *testing.T, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pullsecret.ConfigMapNamespace, Name: pullsecret.ConfigMapName}}
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
	if err := h.c.List(t.Context(), &list, client.InNamespace(pullsecret.ConfigMapNamespace)); err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Name == pullsecret.ConfigMapName {
			out = append(out, e.Note)
		}
	}
	return out
}

// reconciles counts the namespace controller's ("pullsecret") reconciles so far.
func reconciles(t *testing.T) float64 {
	return metricSum(t, "controller_runtime_reconcile_total", "controller", "pullsecret")
}

// settled is the barrier before an absence check about namespace ns, created after reconciles
// returned before: it waits until the reconcilers' cache shows ns, the namespace controller has
// reconciled since, and its work queue is empty with no work in flight — so "nothing was
// written" is a fact, not a race.
func (h *harness) settled(t *testing.T, ns string, before float64) {
	t.Helper()
	poll.Within(t, 20*time.Second, "namespace controller settled after "+ns, func() error {
		if err := h.cache.Get(t.Context(), types.NamespacedName{Name: ns}, &corev1.Namespace{}); err != nil {
			return err
		}
		if n := reconciles(t); n <= before {
			return fmt.Errorf("no reconcile since (%v)", n)
		}
		if d := metricSum(t, "workqueue_depth", "name", "pullsecret"); d != 0 {
			return fmt.Errorf("queue depth %v", d)
		}
		if u := metricSum(t, "workqueue_unfinished_work_seconds", "name", "pullsecret"); u != 0 {
			return fmt.Errorf("work in flight (%vs)", u)
		}
		return nil
	})
}

// metricSum adds the values of a metric family on controller-runtime's registry whose label key
// has value val.
func metricSum(t *testing.T, family, key, val string) float64 {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == key && l.GetValue() == val }) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
