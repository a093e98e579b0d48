package serviceaccount

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferrypull/ferry/internal/pullsecret"
)

// BenchmarkWebhookLatency sends AdmissionReviews for new ServiceAccounts at 200 requests/s for
// 10 s over TLS (keep-alive, as the apiserver does) and reports the p50/p99 latency seen by the
// client. Target (DESIGN.md): p99 ≤ 5 ms at 200 requests/s.
//
//	go test -run '^$' -bench WebhookLatency -benchtime 1x ./internal/webhook/serviceaccount/
func BenchmarkWebhookLatency(b *testing.B) {
	store := &pullsecret.Store{}
	store.Set(settings(true, "Ignore", 10))
	srv := httptest.NewTLSServer(NewWebhook(store))
	defer srv.Close()
	c := srv.Client()

	body := func(i int) []byte {
		sa := fmt.Sprintf(`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa-%d","namespace":"app"},"imagePullSecrets":[{"name":"user"}]}`, i)
		review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: types.UID(fmt.Sprint(i)), Operation: admissionv1.Create, Namespace: "app",
				Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"},
				Object:   runtime.RawExtension{Raw: []byte(sa)}}}
		out, _ := json.Marshal(review)
		return out
	}
	const rate, dur = 200, 10 * time.Second
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			resp, err := c.Post(srv.URL+Path, "application/json", bytes.NewReader(body(i)))
			if err != nil {
				b.Error(err)
				return
			}
			var review admissionv1.AdmissionReview
			err = json.NewDecoder(resp.Body).Decode(&review)
			resp.Body.Close()
			d := time.Since(start)
			if err != nil || resp.StatusCode != http.StatusOK || review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
				b.Errorf("bad answer: %v %d %+v", err, resp.StatusCode, review.Response)
				return
			}
			mu.Lock()
			lats = append(lats, d)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lats)
	p := func(q float64) time.Duration { return lats[int(q*float64(len(lats)-1))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "ms-p99")
	b.Logf("%d requests at %d/s: p50 %s, p99 %s, max %s", len(lats), rate, p(0.5), p(0.99), lats[len(lats)-1])
}
