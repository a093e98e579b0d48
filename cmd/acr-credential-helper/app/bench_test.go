package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// apiCalls reads ferry_acr_api_calls_total{api,result="success"} from the metrics registry.
func apiCalls(b *testing.B, api string) float64 {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "ferry_acr_api_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var apiOK, success bool
			for _, l := range m.GetLabel() {
				apiOK = apiOK || l.GetName() == "api" && l.GetValue() == api
				success = success || l.GetName() == "result" && l.GetValue() == "success"
			}
			if apiOK && success {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// BenchmarkRefreshCycleEmulator measures the real token path (cloudcred identity, internal/acr
// cache, the official SDK against the acr-emulator) at scale: FERRY_BENCH_NAMESPACES (default
// 1000) namespaces × 2 instances, 180 s tokens, 120 s threshold (so the first renewal comes after
// the initial fill). It reports the convergence time and the GetAuthorizationToken calls made
// while every Secret is renewed once.
//
//	go test -run '^$' -bench RefreshCycleEmulator -benchtime 1x ./cmd/acr-credential-helper/app/
func BenchmarkRefreshCycleEmulator(b *testing.B) {
	n := 1000
	if v := os.Getenv("FERRY_BENCH_NAMESPACES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	kube := kubeenv.Start(b)
	emu := emulatorenv.Start(b, emulatorenv.Options{TokenTTL: 180 * time.Second})
	ctx := b.Context()
	info := emu.Info

	var puller emulator.InfoUser
	for _, u := range emu.Account(b, world.DemoAccountA).Users {
		if u.Name == "acr-puller" {
			puller = u
		}
	}
	if err := kube.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
		StringData: map[string]string{"access-key-id": puller.AccessKeyID, "access-key-secret": puller.AccessKeySecret},
	}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer func() { <-sem; wg.Done() }()
			_ = kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
			_ = kube.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}})
		}(fmt.Sprintf("b-%05d", i))
	}
	wg.Wait()

	o := DefaultOptions()
	o.Kubeconfig, o.Region, o.Namespace = kube.KubeconfigPath, "cn-hangzhou", "kube-system"
	o.CloudDialAddr, o.STSEndpoint, o.CAFile = info.OpenAPITLSEndpoint, info.OpenAPITLSEndpoint, info.CAFile
	o.MetricsAddr, o.HealthAddr, o.WebhookPort = "0", "0", 0
	o.QPS, o.Burst, o.Workers = 1000, 2000, 16
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- RunWithLogs(hctx, o, io.Discard, nil) }()
	defer func() { cancel(); <-done }()

	hz := emu.Instance(b, world.DemoInstanceAHangzhou)
	var personal emulator.InfoInstance
	for _, in := range info.Instances {
		if in.Edition == world.EditionPersonal && in.RegionID == "cn-hangzhou" {
			personal = in
		}
	}
	b.ResetTimer()
	start := time.Now()
	if err := kube.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"},
		Data: map[string]string{"service-account": "default", "watch-namespace": "all", "expiring-threshold": "120s",
			"acr-registry-info": fmt.Sprintf("- instanceId: %q\n- instanceId: \"\"\n  domains: %q\n", hz.InstanceID, strings.Join(personal.Domains, ","))},
	}); err != nil {
		b.Fatal(err)
	}
	expiries := func() map[string]string {
		var list corev1.SecretList
		if err := kube.Client.List(ctx, &list, client.MatchingLabels{"app.kubernetes.io/managed-by": "ferry"}); err != nil {
			b.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range list.Items {
			if strings.HasPrefix(s.Namespace, "b-") {
				out[s.Namespace+"/"+s.Name] = s.Annotations["ferry.dev/expires-at"]
			}
		}
		return out
	}
	var first map[string]string
	for first = expiries(); len(first) < 2*n; first = expiries() {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("only %d of %d Secrets after 5m", len(first), 2*n)
		}
		time.Sleep(500 * time.Millisecond) // polling a benchmark's progress, not synchronising a test
	}
	converge := time.Since(start)
	b.StopTimer()
	calls0 := apiCalls(b, "GetAuthorizationToken")
	cycleStart := time.Now()
	for {
		cur := expiries()
		renewed := 0
		for k, v := range cur {
			if v != first[k] {
				renewed++
			}
		}
		if renewed == len(first) {
			break
		}
		if time.Since(cycleStart) > 4*time.Minute {
			b.Fatalf("only %d of %d Secrets renewed", renewed, len(first))
		}
		time.Sleep(500 * time.Millisecond)
	}
	calls := apiCalls(b, "GetAuthorizationToken") - calls0
	b.ReportMetric(converge.Seconds(), "s-converge")
	b.ReportMetric(calls, "token-API-calls/cycle")
	b.Logf("%d namespaces × 2 instances: converged in %s; one renewal of every Secret took %s and %v GetAuthorizationToken calls (initial fill: %v)",
		n, converge, time.Since(cycleStart), calls, calls0)
}
