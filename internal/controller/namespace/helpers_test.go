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

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// Instances of acr-emulator's demo world the tests configure (account A, which owns the cluster).
var (
	instHZ = world.DemoInstanceAHangzhou // cn-hangzhou
	instBJ = world.DemoInstanceABeijing  // cn-beijing
	nameHZ = "acr-pull-" + instHZ
	nameBJ = "acr-pull-" + instBJ
)

// acrConfig is an acr-configuration ConfigMap in the real format (internal/acrconfig): watched
// namespaces, ServiceAccounts, the threshold and acr-registry-info entries for the instances.
func acrConfig(namespaces, serviceAccounts, threshold string, instances ...string) map[string]string {
	var info strings.Builder
	for _, id := range instances {
		region := "cn-hangzhou"
		if id == instBJ {
			region = "cn-beijing"
		}
		fmt.Fprintf(&info, "- instanceId: %q\n  regionId: %q\n", id, region)
	}
	return map[string]string{
		"watch-namespace": namespaces, "service-account": serviceAccounts, "expiring-threshold": threshold,
		"acr-registry-info": info.String(),
	}
}

// recordingTokens passes token calls to the production token source and remembers every
// password it handed out, for the no-secret-in-logs checks.
type recordingTokens struct {
	inner  pullsecret.TokenSource
	mu     sync.Mutex
	issued []string
}

func (r *recordingTokens) Token(ctx context.Context, inst pullsecret.Instance, minValidity time.Duration) (pullsecret.Token, error) {
	tok, err := r.inner.Token(ctx, inst, minValidity)
	if err == nil {
		r.mu.Lock()
		if !slices.Contains(r.issued, tok.Password.Reveal()) {
			r.issued = append(r.issued, tok.Password.Reveal())
		}
		r.mu.Unlock()
	}
	return tok, err
}

func (r *recordingTokens) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.issued)
}

// harnessOptions tune the emulator and the token cache.
type harnessOptions struct {
	// TokenTTL is the emulator's registry token lifetime (default 1 h).
	TokenTTL time.Duration
}

type harness struct {
	env    *kubeenv.Env
	c      client.Client
	cache  client.Reader // the manager's cache, what the reconcilers read
	emu    *emulatorenv.Env
	acr    *acr.Cache // the real token cache behind the token source
	tokens *recordingTokens
	store  *pullsecret.Store
	logs   *logbuf.Buffer
}

// startHarness starts a real apiserver, acr-emulator and the two reconcilers in a manager, with
// the production loader (the real acr-configuration format) and the production token source
// (pullsecret.CloudTokens: the identity from kube-system/alibaba-addon-secret, account A's
// AccessKey; tokens from the internal/acr cache through the official SDK). Logs are captured and
// checked for every issued token when the test ends.
func startHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	env := kubeenv.Start(t)
	emu := emulatorenv.Start(t, emulatorenv.Options{TokenTTL: o.TokenTTL})
	acct := emu.Account(t, world.DemoAccountA)
	if err := env.Client.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
		StringData: map[string]string{"access-key-id": acct.AccessKeyID, "access-key-secret": acct.AccessKeySecret}}); err != nil {
		t.Fatal(err)
	}
	hc, err := cloudcred.NewHTTPClient(emu.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	client, err := acr.NewClient(acr.ClientOptions{DialAddr: emu.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := cloudcred.NewResolver(cloudcred.Options{Region: "cn-hangzhou", STSEndpoint: emu.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	// a refresh floor of 1 s instead of 10 s, so that rotation with short tokens is quick
	cache := acr.NewCache(client, acr.CacheOptions{MinRefreshInterval: time.Second})
	store := &pullsecret.Store{}
	tokens := &recordingTokens{inner: &pullsecret.CloudTokens{Resolver: resolver, Cache: cache, Reader: env.Client,
		AddonSecret: &types.NamespacedName{Namespace: "kube-system", Name: "alibaba-addon-secret"}, AddonTTL: time.Minute, Store: store}}

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
	rec := mgr.GetEventRecorder("acr-credential-helper")
	load := pullsecret.NewLoader(acrconfig.Options{ClusterRegion: "cn-hangzhou"})
	if err := (&ConfigReconciler{Client: mgr.GetClient(), Store: store, Load: load, Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&NamespaceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: store, Tokens: tokens, Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(t.Context(), logger))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h := &harness{env: env, c: env.Client, cache: mgr.GetCache(), emu: emu, acr: cache, tokens: tokens, store: store, logs: logs}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		out := logs.String()
		for _, secret := range append(tokens.all(), acct.AccessKeySecret) {
			if strings.Contains(out, secret) {
				t.Errorf("the controller's log contains a token or secret")
			}
		}
	})
	return h
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
