// Package pod is ferry's Pod admission webhook for the ECI image annotations. The
// scheduling gate it sets is released by internal/controller/schedulinggate.
//
// On Pod CREATE (ECI reads these annotations only at creation):
//
//   - k8s.aliyun.com/acr-instance-id(s): for each [regionId:]cri-… instance the
//     webhook asks a SecretEnsurer for a managed pull Secret in the Pod's
//     namespace (minted with the cluster identity, or with the role chain from
//     k8s.aliyun.com/acr-service-arns / acr-user-arns) and appends it to
//     spec.imagePullSecrets, keeping the user's entries and never duplicating.
//   - k8s.aliyun.com/plain-http-registry / insecure-registry: the webhook
//     validates the lists, labels the Pod ferry.dev/registry-config=true (so
//     node-agents watch it) and, when the Pod is not bound yet, adds the
//     scheduling gate ferry.dev/registry-config.
//
// A malformed value, an unknown instance or a refused token either rejects the
// Pod (FailurePolicy Fail) or admits it without that Secret (Ignore), always
// with a message naming the annotation and the value, an admission warning and
// a Kubernetes Event (on the Pod's controller, e.g. its ReplicaSet, when it has
// one, since a rejected Pod never exists).
//
// Wiring (acr-credential-helper):
//
//	h := pod.NewWebhook(pod.Options{Ensurer: e, FailurePolicy: pod.Ignore, Recorder: rec})
//	mgr.GetWebhookServer().Register(pod.Path, h) // or a PolicyHandler following acr-configuration
//	// and pod.MutatingWebhook(...) in the MutatingWebhookConfiguration (webhook.ConfigManager.Extra)
//
// Metrics (controller-runtime registry):
//
//	ferry_pod_webhook_admissions_total{result}   mutated, unchanged, denied, warned
//	ferry_pod_webhook_secret_errors_total        EnsureInstanceSecret failures
package pod
