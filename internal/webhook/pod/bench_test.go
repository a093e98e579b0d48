package pod

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// cachedEnsurer answers from memory after the first call per (namespace,
// instance), as an ensurer backed by an informer cache does.
type cachedEnsurer struct {
	mu   sync.Mutex
	seen map[string]bool
	next SecretEnsurer
}

func (e *cachedEnsurer) EnsureInstanceSecret(ctx context.Context, ns string, i annotations.InstanceRef, c annotations.RoleChain) (string, error) {
	key := ns + "/" + i.String() + "/" + c.String()
	e.mu.Lock()
	hit := e.seen[key]
	e.mu.Unlock()
	if hit {
		return "acr-pull-" + i.InstanceID, nil
	}
	name, err := e.next.EnsureInstanceSecret(ctx, ns, i, c)
	if err == nil {
		e.mu.Lock()
		e.seen[key] = true
		e.mu.Unlock()
	}
	return name, err
}

// timedHandler records the handler's own latency.
type timedHandler struct {
	next admission.Handler
	mu   sync.Mutex
	d    []time.Duration
}

func (h *timedHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp := h.next.Handle(ctx, req)
	el := time.Since(start)
	h.mu.Lock()
	h.d = append(h.d, el)
	h.mu.Unlock()
	return resp
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkWebhookLatency200rps creates Pods through a real kube-apiserver at
// 200 requests/s (open loop) for 10 s; every Pod carries acr-instance-id and
// plain-http-registry, so the webhook patches imagePullSecrets, a label and a
// scheduling gate. It reports the webhook handler's p50/p99 and the
// client-observed Pod CREATE p50/p99 (apiserver + etcd + webhook round trip).
//
//	go test ./internal/webhook/pod -run '^$' -bench WebhookLatency -benchtime 1x
func BenchmarkWebhookLatency200rps(b *testing.B) {
	env := kubeenv.Start(b)
	ctx, c := b.Context(), env.Client
	namespace(b, c, "bench")
	th := &timedHandler{next: NewMutator(Options{Ensurer: &cachedEnsurer{seen: map[string]bool{}, next: &secretMaker{c: c}}, FailurePolicy: Fail})}
	startWebhookHandler(b, env, th, Fail)
	th.mu.Lock()
	th.d = nil // drop the probe requests
	th.mu.Unlock()

	const rate, seconds = 200, 10
	for b.Loop() {
		var (
			mu   sync.Mutex
			e2e  []time.Duration
			wg   sync.WaitGroup
			errs int
		)
		tick := time.NewTicker(time.Second / rate)
		for i := 0; i < rate*seconds; i++ {
			<-tick.C
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", GenerateName: "w-",
					Annotations: map[string]string{annotations.AcrInstanceID: "cn-beijing:cri-bench", annotations.PlainHTTPRegistry: "harbor.corp:5000"}},
					Spec: corev1.PodSpec{AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: "harbor.corp:5000/x:1"}}}}
				start := time.Now()
				err := c.Create(ctx, pod)
				el := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || len(pod.Spec.ImagePullSecrets) != 1 || !annotations.Gated(pod) {
					errs++
					return
				}
				e2e = append(e2e, el)
			}(i)
		}
		tick.Stop()
		wg.Wait()
		if errs > 0 {
			b.Fatalf("%d of %d creates failed or were not mutated", errs, rate*seconds)
		}
		th.mu.Lock()
		hd := slices.Clone(th.d)
		th.mu.Unlock()
		b.ReportMetric(float64(pct(hd, 0.50).Microseconds())/1000, "handler-p50-ms")
		b.ReportMetric(float64(pct(hd, 0.99).Microseconds())/1000, "handler-p99-ms")
		b.ReportMetric(float64(pct(e2e, 0.50).Microseconds())/1000, "create-p50-ms")
		b.ReportMetric(float64(pct(e2e, 0.99).Microseconds())/1000, "create-p99-ms")
		b.ReportMetric(float64(len(e2e)), "pods")
		under5, total := apiserverWebhookShare(b, env, "0.005")
		b.ReportMetric(100*under5/max(total, 1), "apiserver-calls-le-5ms-%")
		fmt.Printf("webhook handler p50 %v p99 %v; pod CREATE p50 %v p99 %v (n=%d at %d/s); apiserver-timed webhook calls <= 5ms: %.0f of %.0f\n",
			pct(hd, 0.5), pct(hd, 0.99), pct(e2e, 0.5), pct(e2e, 0.99), len(e2e), rate, under5, total)
	}
}

// apiserverWebhookShare reads the apiserver's own timing of this webhook
// (apiserver_admission_webhook_admission_duration_seconds, TLS and network
// included) and returns the number of calls within bucket le and the total.
func apiserverWebhookShare(b *testing.B, env *kubeenv.Env, le string) (within, total float64) {
	b.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	const metric = "apiserver_admission_webhook_admission_duration_seconds"
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, `name="`+WebhookName+`"`) {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, metric+"_bucket{") && strings.Contains(line, `le="`+le+`"`):
			within += v
		case strings.HasPrefix(line, metric+"_count{"):
			total += v
		}
	}
	return within, total
}
