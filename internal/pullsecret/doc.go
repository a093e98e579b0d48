// Package pullsecret is the core every pull-Secret path is written on: the namespace controller
// (internal/controller/namespace), the Pod-annotation path (internal/webhook/pod and
// internal/controller/podsecret) and the features built later on the same token path.
//
//   - [Settings] and [Store]: acr-configuration as the controllers and webhooks see it
//     ([NewLoader] parses the real ConfigMap with internal/acrconfig), and [ApplyToServiceAccount],
//     the imagePullSecrets merge shared by the reconciler and the ServiceAccount webhook.
//   - [Token]: one registry credential type; its password stays a redact.Secret until [Render]
//     writes the .dockerconfigjson.
//   - [CloudTokens]: the token source (identity → token through internal/cloudcred and the
//     internal/acr single-flight cache; the add-on Secret read at most once per TTL with its last
//     good value kept; errors classified, [ErrUnknownInstance] for an unknown instance).
//   - [Apply] and [Delete]: the one Secret writer (labels, annotations, payload, compare, update,
//     replace an immutable Secret), with the label and annotation constants of both paths.
//
// Metrics, registered on controller-runtime's metrics.Registry:
//
//	ferry_acr_token_expiry_timestamp_seconds{instance}      gauge: expiry of the token in use (namespace Secrets)
//	ferry_acr_token_refresh_total{instance,result}           counter: new tokens (success) and failed token calls (failure), both paths
//	ferry_acr_token_request_duration_seconds{instance}       histogram: latency of TokenSource calls
//	ferry_pullsecret_managed_secrets                         gauge: namespace Secrets ferry currently manages
//	ferry_pullsecret_secret_writes_total{source,op}          counter: source namespace|pod-annotation; op create, update, revert, replace, delete
//	ferry_pullsecret_serviceaccounts_patched_total{op}       counter: add, remove
//	ferry_acr_config_reload_total{result}                    counter: valid, invalid, missing
//	ferry_acr_config_valid                                   gauge: 1 when the ConfigMap in the cluster is valid
//
// Deprecated aliases, kept for one release: ferry_podsecret_secret_writes_total{op} (now
// ferry_pullsecret_secret_writes_total{source="pod-annotation"}) and ferry_podsecret_refresh_total{result}
// (now ferry_acr_token_refresh_total). The internal/acr cache adds its own per-identity
// ferry_acr_cached_token_expiry_timestamp_seconds and API call metrics.
package pullsecret
