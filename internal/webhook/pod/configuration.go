package pod

import (
	"github.com/ferrypull/ferry/internal/webhook"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookName is the name of the webhook entry.
const WebhookName = "pods.ferry.dev"

// MutatingWebhook returns the MutatingWebhookConfiguration entry for this
// webhook: Pods, CREATE only, reinvoked if other webhooks change the Pod,
// side effects (Secret creation) skipped on dry run, and namespaces in
// excludeNamespaces (ferry's own, so the helper can always start) never sent.
// cc is as for a webhook.EntryFunc (no path yet). policy is also the apiserver's failurePolicy when the webhook is unreachable.
func MutatingWebhook(cc admissionregistrationv1.WebhookClientConfig, policy FailurePolicy, timeoutSeconds int32, excludeNamespaces ...string) admissionregistrationv1.MutatingWebhook {
	fp := admissionregistrationv1.Ignore
	if policy == Fail {
		fp = admissionregistrationv1.Fail
	}
	se := admissionregistrationv1.SideEffectClassNoneOnDryRun
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	match := admissionregistrationv1.Equivalent
	w := admissionregistrationv1.MutatingWebhook{
		Name:         WebhookName,
		ClientConfig: webhook.WithPath(cc, Path),
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				Scope: ptr(admissionregistrationv1.NamespacedScope),
			},
		}},
		FailurePolicy:           &fp,
		MatchPolicy:             &match,
		SideEffects:             &se,
		TimeoutSeconds:          &timeoutSeconds,
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      &reinvoke,
	}
	if len(excludeNamespaces) > 0 {
		w.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excludeNamespaces,
		}}}
	}
	return w
}

func ptr[T any](v T) *T { return &v }
