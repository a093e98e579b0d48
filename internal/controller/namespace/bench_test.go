package namespace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// BenchmarkConverge measures, on a real apiserver, how long the controller takes to write the
// Secrets of FERRY_BENCH_NAMESPACES (default 5000) namespaces × 2 instances and patch their
// default ServiceAccounts, how many tokens it asks for per refresh cycle, and the peak RSS of
// the process (controller plus the benchmark's own client). Run with
//
//	go test -run '^$' -bench Converge -benchtime 1x ./internal/controller/namespace/
func BenchmarkConverge(b *testing.B) {
	n := 5000
	if v := os.Getenv("FERRY_BENCH_NAMESPACES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	qps := float32(1000)
	cycleTimeout := 10 * time.Minute
	if v := os.Getenv("FERRY_BENCH_CYCLE_TIMEOUT"); v != "" {
		cycleTimeout, _ = time.ParseDuration(v)
	}
	workers := 16
	env := kubeenv.Start(b)
	ctx := b.Context()

	// Setup: n namespaces, each with its default ServiceAccount, created fast and in parallel.
	setupCfg := *env.Config
	setupCfg.QPS, setupCfg.Burst = 2000, 4000
	setup, err := client.New(&setupCfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	parallel(n, 32, func(i int) error {
		name := fmt.Sprintf("bench-%05d", i)
		if err := setup.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			return err
		}
		return setup.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}})
	}, b)
	b.Logf("setup: %d namespaces + ServiceAccounts in %s", n, time.Since(start))

	tokens := newBenchTokens(time.Hour)
	cfg := *env.Config
	cfg.QPS, cfg.Burst = qps, int(2*qps)
	mgr, err := ctrl.NewManager(&cfg, ctrl.Options{
		Scheme: clientgoscheme.Scheme, Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Cache: CacheOptions(),
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	store := &pullsecret.Store{}
	rec := mgr.GetEventRecorder("bench")
	if err := (&ConfigReconciler{Client: mgr.GetClient(), Store: store, Load: pullsecret.NewLoader(acrconfig.Options{ClusterRegion: "cn-hangzhou"}), Recorder: rec}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	if err := (&NamespaceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: store, Tokens: tokens,
		Recorder: rec, MaxConcurrentReconciles: workers}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := mgr.Start(mctx); err != nil {
			b.Errorf("manager: %v", err)
			cancel()
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		b.Fatal("cache sync")
	}

	b.ResetTimer()
	startSA := metricValue(pullsecret.ServiceAccountsPatched.WithLabelValues("add"))
	start = time.Now()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pullsecret.ConfigMapNamespace, Name: pullsecret.ConfigMapName}, Data: map[string]string{
		"service-account": "default", "watch-namespace": "all", "expiring-threshold": "15m",
		"acr-registry-info": "- instanceId: \"cri-bench\"\n  regionId: \"cn-hangzhou\"\n- instanceId: \"\"\n  regionId: \"cn-hangzhou\"\n",
	}}
	if err := env.Client.Create(ctx, cm); err != nil {
		b.Fatal(err)
	}
	want := float64(2 * n)
	waitFor(b, 10*time.Minute, func() bool {
		return metricValue(pullsecret.ManagedSecrets) >= want && metricValue(pullsecret.ServiceAccountsPatched.WithLabelValues("add"))-startSA >= float64(n)
	})
	converge := time.Since(start)
	b.StopTimer()
	b.ReportMetric(converge.Seconds(), "s-converge")
	b.Logf("converged: %d Secrets and %d ServiceAccounts in %s (client QPS %.0f, %d workers)", 2*n, n, converge, qps, workers)
	b.Logf("token mints for the initial fill: cri-bench=%d personal=%d", tokens.mints("cri-bench"), tokens.mints("personal-cn-hangzhou"))

	// One refresh cycle: make the cached tokens due and revisit every namespace.
	tokens.mu.Lock()
	for k, t := range tokens.cache {
		t.ExpiresAt = time.Now().Add(10 * time.Minute) // inside the 15 m threshold
		tokens.cache[k] = t
	}
	tokens.mu.Unlock()
	before := tokens.mints("cri-bench") + tokens.mints("personal-cn-hangzhou")
	startW := metricValue(pullsecret.SecretWriteCounter(pullsecret.SourceNamespace, "update"))
	start = time.Now()
	store.Set(store.Current()) // revisit all namespaces, as the requeue at expiry − threshold does
	waitFor(b, cycleTimeout, func() bool {
		return metricValue(pullsecret.SecretWriteCounter(pullsecret.SourceNamespace, "update"))-startW >= want
	})
	after := tokens.mints("cri-bench") + tokens.mints("personal-cn-hangzhou")
	b.ReportMetric(float64(after-before), "token-calls/cycle")
	b.Logf("refresh cycle: %d Secrets rewritten in %s with %d token mints for 2 instances", 2*n, time.Since(start), after-before)

	// New namespaces in the loaded cluster: time from creation to both Secrets present.
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("late-%02d", i)
		t0 := time.Now()
		if err := setup.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, time.Minute, func() bool {
			var list corev1.SecretList
			_ = setup.List(ctx, &list, client.InNamespace(name))
			return len(list.Items) == 2
		})
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-new-namespace-p50")
	b.Logf("new namespace → its 2 Secrets, with %d namespaces loaded: p50 %s, max %s (20 namespaces, polled every 50 ms)", n, lat[len(lat)/2], lat[len(lat)-1])

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	hwm := tools.PeakRSS(0)
	b.ReportMetric(float64(hwm)/(1<<20), "MB-peak-RSS")
	b.Logf("peak RSS %d MB (controller + benchmark client in one process), Go heap in use %d MB", hwm>>20, ms.HeapInuse>>20)
}

// benchTokens is the benchmark's token source: this benchmark measures the controller's
// throughput over thousands of namespaces, not the token path (the tests use the production
// source against acr-emulator), so tokens come at no cost: one per instance, renewed when less
// than minValidity remains, with the mint count per instance key.
type benchTokens struct {
	mu    sync.Mutex
	life  time.Duration
	n     int
	calls map[string]int
	cache map[string]pullsecret.Token
}

func newBenchTokens(life time.Duration) *benchTokens {
	return &benchTokens{life: life, calls: map[string]int{}, cache: map[string]pullsecret.Token{}}
}

func (s *benchTokens) Token(_ context.Context, inst pullsecret.Instance, minValidity time.Duration) (pullsecret.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := inst.Key()
	if t, ok := s.cache[key]; ok && time.Until(t.ExpiresAt) > minValidity {
		return t, nil
	}
	s.n++
	s.calls[key]++
	t := pullsecret.Token{Username: "cr_temp_user", Password: redact.Secret(fmt.Sprintf("tok-%d-%s", s.n, key)), ExpiresAt: time.Now().Add(s.life).Truncate(time.Second),
		Domains: []string{key + "-registry." + inst.Region + ".cr.aliyuncs.com", key + "-registry-vpc." + inst.Region + ".cr.aliyuncs.com"}}
	s.cache[key] = t
	return t, nil
}

func (s *benchTokens) mints(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func parallel(n, workers int, f func(i int) error, b *testing.B) {
	var wg sync.WaitGroup
	idx := make(chan int)
	var once sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := f(i); err != nil {
					once.Do(func() { b.Errorf("setup %d: %v", i, err) })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

func waitFor(b *testing.B, timeout time.Duration, cond func() bool) {
	err := tools.Poll(b.Context(), timeout, 50*time.Millisecond, func(context.Context) (bool, error) {
		if b.Failed() {
			return false, errors.New("benchmark failed")
		}
		return cond(), nil
	})
	if err != nil {
		b.Fatalf("not converged within %s: %v (managed Secrets %.0f, writes: create %.0f update %.0f revert %.0f)", timeout, err, metricValue(pullsecret.ManagedSecrets),
			metricValue(pullsecret.SecretWriteCounter(pullsecret.SourceNamespace, "create")), metricValue(pullsecret.SecretWriteCounter(pullsecret.SourceNamespace, "update")), metricValue(pullsecret.SecretWriteCounter(pullsecret.SourceNamespace, "revert")))
	}
}

// metricValue reads a gauge or counter.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
