package acr

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics implements [Metrics] with these collectors:
//
//	ferry_acr_api_calls_total{api,result}          API calls by result (success, failure)
//	ferry_acr_api_call_duration_seconds{api}       API call latency
//	ferry_acr_cached_token_expiry_timestamp_seconds{instance}  expiry of the newest token
type PrometheusMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	expiry   *prometheus.GaugeVec
}

// NewPrometheusMetrics creates the collectors and registers them with reg (if not nil).
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_acr_api_calls_total",
			Help: "Container Registry API calls by api and result (success, failure)."}, []string{"api", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_acr_api_call_duration_seconds",
			Help: "Latency of Container Registry API calls.", Buckets: prometheus.DefBuckets}, []string{"api"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ferry_acr_cached_token_expiry_timestamp_seconds",
			Help: "Unix time at which the newest cached registry token of an instance expires."}, []string{"instance"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.duration, m.expiry} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// ObserveCall implements Metrics.
func (m *PrometheusMetrics) ObserveCall(api, _ string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.calls.WithLabelValues(api, result).Inc()
	m.duration.WithLabelValues(api).Observe(d.Seconds())
}

// SetExpiry implements Metrics.
func (m *PrometheusMetrics) SetExpiry(instance string, expiry time.Time) {
	m.expiry.WithLabelValues(instance).Set(float64(expiry.Unix()))
}
