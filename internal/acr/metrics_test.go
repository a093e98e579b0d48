package acr

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
)

func TestPrometheusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Unix(1_800_000_000, 0))
	fake := &scriptedMinter{clock: clk, life: time.Hour}
	c := NewCache(fake, CacheOptions{Metrics: m, Now: clk.Now})
	id := testIdentity(t, "LTAIm")
	if _, err := c.Token(t.Context(), id, ee, time.Minute); err != nil {
		t.Fatal(err)
	}
	fake.fail.Store(true)
	c.Forget(id, ee)
	if _, err := c.Token(t.Context(), id, ee, time.Minute); err == nil {
		t.Fatal("want an error")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mm := range f.GetMetric() {
			var labels []string
			for _, l := range mm.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			k := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case mm.Counter != nil:
				got[k] = mm.Counter.GetValue()
			case mm.Gauge != nil:
				got[k] = mm.Gauge.GetValue()
			case mm.Histogram != nil:
				got[k] = float64(mm.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"ferry_acr_api_calls_total{api=GetAuthorizationToken,result=failure}":         1,
		"ferry_acr_api_calls_total{api=GetAuthorizationToken,result=success}":         1,
		"ferry_acr_api_calls_total{api=ListInstanceEndpoint,result=success}":          1,
		"ferry_acr_api_call_duration_seconds{api=GetAuthorizationToken}":              2,
		"ferry_acr_api_call_duration_seconds{api=ListInstanceEndpoint}":               1,
		"ferry_acr_cached_token_expiry_timestamp_seconds{instance=cn-hangzhou/cri-a}": 1_800_003_600,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, err := NewPrometheusMetrics(reg); err == nil || !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("double registration: %v", err)
	}
}

func TestInstanceFor(t *testing.T) {
	in := InstanceFor(acrconfig.Instance{InstanceID: "cri-x", RegionID: "cn-beijing", Domains: []string{"a"}})
	if in.ID != "cri-x" || in.Region != "cn-beijing" || in.Domains[0] != "a" || in.Key() != "cn-beijing/cri-x" || in.Personal() {
		t.Fatalf("%+v", in)
	}
	if p := InstanceFor(acrconfig.Instance{RegionID: "cn-beijing"}); !p.Personal() || p.Key() != "cn-beijing/personal" {
		t.Fatalf("%+v", p)
	}
}
