// Package namespace keeps ACR pull Secrets fresh in watched namespaces and merges them into the
// selected ServiceAccounts, as configured by the kube-system/acr-configuration ConfigMap. It is
// written on the shared core internal/pullsecret (settings, token source, Secret writer, metrics).
//
// Two reconcilers share one pullsecret.Store:
//
//   - [ConfigReconciler] watches kube-system/acr-configuration, turns it into pullsecret.Settings
//     with a pullsecret.Loader and publishes it. An invalid ConfigMap yields a Warning Event on it
//     and a log line naming the field and value; the last good Settings keep running. A missing
//     ConfigMap leaves the controller idle.
//   - [NamespaceReconciler] is keyed by namespace name. It writes one kubernetes.io/dockerconfigjson
//     Secret per (namespace, instance), named by pullsecret.SecretName, reverts manual edits,
//     deletes the Secrets ferry manages but no longer wants, and merges the Secret names into the
//     imagePullSecrets of the selected ServiceAccounts, recording what it added in the
//     pullsecret.AnnotationPullSecrets annotation so it removes exactly that later. It requeues
//     each namespace at expiresAt − expiring-threshold (plus jitter). A failed token refresh never
//     deletes or blanks a Secret: the last good, unexpired token restores a deleted one.
//
// The metrics are the core's (internal/pullsecret's package doc lists them).
package namespace
