// Package podsecret mints and maintains the pull Secrets that Pod annotations ask for:
// k8s.aliyun.com/acr-instance-id(s), optionally with the role chain of
// k8s.aliyun.com/acr-service-arns and k8s.aliyun.com/acr-user-arns.
//
// [Ensurer] is the production pod.SecretEnsurer of acr-credential-helper. For each
// (namespace, instance, role chain) it writes one kubernetes.io/dockerconfigjson Secret named by
// [SecretName]: "acr-pull-<instanceId>-pod" for the cluster identity, "acr-pull-<instanceId>-<hash>"
// for a role chain. The names never collide with the Secrets of internal/controller/namespace
// ("acr-pull-<instanceId>"), and the Secrets carry pullsecret.LabelSource=pod-annotation but no
// ferry.dev/instance label, so the namespace controller neither overwrites nor garbage-collects
// them. Secrets are written through the core writer (pullsecret.Apply).
//
// Tokens come from a [Minter]; pullsecret.CloudTokens (the same token source as the namespace
// controller's) resolves the cluster identity with
// internal/cloudcred (as configured for the helper: the instance's acr-registry-info entry if
// it has one, else alibaba-addon-secret or the token mode), assumes the role chain on top of it
// (service ARNs first, then user ARNs) and mints with the internal/acr cache, which also
// discovers the registry domains with ListInstanceEndpoint.
//
// [Reconciler] keeps these Secrets fresh: it renews each at expiresAt − expiring-threshold,
// never blanks or deletes a Secret because a renewal failed, and deletes a Secret once no Pod
// in its namespace lists it in imagePullSecrets and the webhook has not used it for [GCGrace].
package podsecret
