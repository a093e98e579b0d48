package pullsecret

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The pull-Secret metrics of every path (namespace Secrets and Pod-annotation Secrets), registered on
// controller-runtime's metrics.Registry. The package doc lists them.
var (
	TokenExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_acr_token_expiry_timestamp_seconds",
		Help: "Unix time at which the registry token in use for an instance expires.",
	}, []string{"instance"})
	TokenRefresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_acr_token_refresh_total",
		Help: "Registry tokens obtained (result=success, counted once per new token) and failed token calls (result=failure).",
	}, []string{"instance", "result"})
	TokenLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_acr_token_request_duration_seconds",
		Help:    "Latency of token requests to the token source (cache hits are fast; misses call the ACR/STS APIs).",
		Buckets: []float64{.0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"instance"})
	ManagedSecrets = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_pullsecret_managed_secrets",
		Help: "Number of namespace pull Secrets ferry currently manages.",
	})
	secretWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_pullsecret_secret_writes_total",
		Help: "Writes of managed pull Secrets by source (namespace, pod-annotation) and operation (create, update, revert, replace, delete).",
	}, []string{"source", "op"})
	ServiceAccountsPatched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_pullsecret_serviceaccounts_patched_total",
		Help: "ServiceAccount updates by ferry (op=add: pull secrets merged in, op=remove: ferry's entries removed).",
	}, []string{"op"})
	ConfigReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_acr_config_reload_total",
		Help: "acr-configuration loads by result (valid, invalid, missing).",
	}, []string{"result"})
	ConfigValid = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_acr_config_valid",
		Help: "1 when the acr-configuration ConfigMap in the cluster is valid, 0 when it is invalid or missing.",
	})

	// Deprecated aliases, kept for one release (removed in the next): the Pod-annotation path's
	// own names before both paths shared the metrics above.
	deprecatedPodSecretWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_podsecret_secret_writes_total",
		Help: "Deprecated: use ferry_pullsecret_secret_writes_total{source=\"pod-annotation\"}.",
	}, []string{"op"})
	deprecatedPodSecretRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_podsecret_refresh_total",
		Help: "Deprecated: use ferry_acr_token_refresh_total.",
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(TokenExpiry, TokenRefresh, TokenLatency, ManagedSecrets, secretWrites,
		ServiceAccountsPatched, ConfigReloads, ConfigValid, deprecatedPodSecretWrites, deprecatedPodSecretRefreshes)
}

// countWrite counts one Secret write.
func countWrite(source string, op Op) {
	secretWrites.WithLabelValues(source, string(op)).Inc()
	if source == SourcePodAnnotation {
		deprecatedPodSecretWrites.WithLabelValues(string(op)).Inc()
	}
}

// CountRenewal counts a Pod-annotation Secret renewal (result success or failure) for instance key.
func CountRenewal(key, result string) {
	TokenRefresh.WithLabelValues(key, result).Inc()
	deprecatedPodSecretRefreshes.WithLabelValues(result).Inc()
}

// SecretWriteCounter returns the write counter of (source, op), for benchmarks and tests.
func SecretWriteCounter(source string, op Op) prometheus.Counter {
	return secretWrites.WithLabelValues(source, string(op))
}
