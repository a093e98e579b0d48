package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// apiCalls scrapes ferry_acr_api_calls_total{api,result="success"} from the helper's /metrics.
func apiCalls(b *testing.B, metricsURL, api string) float64 {
	resp, err := http.Get(metricsURL)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var n float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "ferry_acr_api_calls_total{") && strings.Contains(line, `api="`+api+`"`) && strings.Contains(line, `result="success"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
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

	// The helper runs as its own process (the real binary) so its peak RSS can be read alone.
	bin := filepath.Join(b.TempDir(), "acr-credential-helper")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ferrypull/ferry/cmd/acr-credential-helper").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", kube.KubeconfigPath, "--region", "cn-hangzhou", "--namespace", "kube-system",
		"--cloud-dial-address", info.OpenAPITLSEndpoint, "--sts-endpoint", info.OpenAPITLSEndpoint, "--ca-file", info.CAFile,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0", "--webhook-port", "0",
		"--kube-api-qps", "1000", "--kube-api-burst", "2000", "--workers", "16")
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	metricsURL := "http://" + metricsAddr + "/metrics"

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
	if err := tools.Poll(ctx, 5*time.Minute, 500*time.Millisecond, func(context.Context) (bool, error) {
		first = expiries()
		return len(first) >= 2*n, nil
	}); err != nil {
		b.Fatalf("only %d of %d Secrets after 5m: %v", len(first), 2*n, err)
	}
	converge := time.Since(start)
	b.StopTimer()
	calls0 := apiCalls(b, metricsURL, "GetAuthorizationToken")
	cycleStart := time.Now()
	renewed := 0
	if err := tools.Poll(ctx, 4*time.Minute, 500*time.Millisecond, func(context.Context) (bool, error) {
		renewed = 0
		for k, v := range expiries() {
			if v != first[k] {
				renewed++
			}
		}
		return renewed == len(first), nil
	}); err != nil {
		b.Fatalf("only %d of %d Secrets renewed: %v", renewed, len(first), err)
	}
	calls := apiCalls(b, metricsURL, "GetAuthorizationToken") - calls0
	rss := tools.PeakRSS(cmd.Process.Pid)
	b.ReportMetric(converge.Seconds(), "s-converge")
	b.ReportMetric(calls, "token-API-calls/cycle")
	b.ReportMetric(float64(rss)/(1<<20), "MB-helper-peak-RSS")
	b.Logf("helper process peak RSS: %d MB", rss>>20)
	b.Logf("%d namespaces × 2 instances: converged in %s; one renewal of every Secret took %s and %v GetAuthorizationToken calls (initial fill: %v)",
		n, converge, time.Since(cycleStart), calls, calls0)
}
