package pullsecret

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	tokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_acr_token_expiry_timestamp_seconds",
		Help: "Unix time at which the registry token in use for an instance expires.",
	}, []string{"instance"})
	tokenRefresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_acr_token_refresh_total",
		Help: "Registry tokens obtained (result=success, counted once per new token) and failed token calls (result=failure).",
	}, []string{"instance", "result"})
	tokenLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_acr_token_request_duration_seconds",
		Help:    "Latency of token requests to the token source (cache hits are fast; misses call the ACR/STS APIs).",
		Buckets: []float64{.0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"instance"})
	managedSecrets = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_pullsecret_managed_secrets",
		Help: "Number of pull Secrets ferry currently manages.",
	})
	secretWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_pullsecret_secret_writes_total",
		Help: "Writes of managed pull Secrets by operation (create, update, revert, delete).",
	}, []string{"op"})
	saPatched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_pullsecret_serviceaccounts_patched_total",
		Help: "ServiceAccount updates by ferry (op=add: pull secrets merged in, op=remove: ferry's entries removed).",
	}, []string{"op"})
	configReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_acr_config_reload_total",
		Help: "acr-configuration loads by result (valid, invalid, missing).",
	}, []string{"result"})
	configValid = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_acr_config_valid",
		Help: "1 when the acr-configuration ConfigMap in the cluster is valid, 0 when it is invalid or missing.",
	})
)

func init() {
	metrics.Registry.MustRegister(tokenExpiry, tokenRefresh, tokenLatency, managedSecrets, secretWrites, saPatched, configReloads, configValid)
}
