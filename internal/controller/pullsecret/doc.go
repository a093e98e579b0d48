// Package pullsecret keeps ACR pull Secrets fresh in watched namespaces and merges them into
// the selected ServiceAccounts, as configured by the kube-system/acr-configuration ConfigMap.
//
// Two reconcilers share one [Store]:
//
//   - [ConfigReconciler] watches kube-system/acr-configuration, turns it into [Settings] with a
//     [Loader] and publishes it. An invalid ConfigMap yields a Warning Event on it and a log line
//     naming the field and value; the last good Settings keep running. A missing ConfigMap leaves
//     the controller idle.
//   - [NamespaceReconciler] is keyed by namespace name. It writes one kubernetes.io/dockerconfigjson
//     Secret per (namespace, instance), named by [SecretName], reverts manual edits, deletes the
//     Secrets ferry manages but no longer wants, and merges the Secret names into the
//     imagePullSecrets of the selected ServiceAccounts, recording what it added in the
//     [AnnotationPullSecrets] annotation so it removes exactly that later. It requeues each
//     namespace at expiresAt − expiring-threshold (plus jitter). A failed token refresh never
//     deletes or blanks a Secret.
//
// Tokens come from a [TokenSource] (internal/acr in the binary): one cached token per
// (identity, instance) is shared by every namespace.
//
// Metrics, registered on controller-runtime's metrics.Registry:
//
//	ferry_acr_token_expiry_timestamp_seconds{instance}      gauge: expiry of the token in use
//	ferry_acr_token_refresh_total{instance,result}           counter: new tokens (success) and failed token calls (failure)
//	ferry_acr_token_request_duration_seconds{instance}       histogram: latency of TokenSource calls
//	ferry_pullsecret_managed_secrets                         gauge: Secrets ferry currently manages
//	ferry_pullsecret_secret_writes_total{op}                 counter: create, update (incl. reverted edits), delete
//	ferry_pullsecret_serviceaccounts_patched_total{op}       counter: add, remove
//	ferry_acr_config_reload_total{result}                    counter: valid, invalid, missing
//	ferry_acr_config_valid                                   gauge: 1 when the ConfigMap in the cluster is valid
package pullsecret
