package serviceaccount

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ferrypull/ferry/internal/webhook"
)

// WebhookName is the name of the ServiceAccount webhook inside the configuration.
const WebhookName = "serviceaccounts.ferry.dev"

// MutatingWebhook is the ServiceAccount webhook's entry (a webhook.EntryFunc once excludeNamespace,
// the webhook's own namespace, is bound): CREATE of ServiceAccounts, outside excludeNamespace.
func MutatingWebhook(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeoutSeconds int32, excludeNamespace string) admissionregistrationv1.MutatingWebhook {
	fp := admissionregistrationv1.Ignore
	if failurePolicy == string(admissionregistrationv1.Fail) {
		fp = admissionregistrationv1.Fail
	}
	return admissionregistrationv1.MutatingWebhook{
		Name:         WebhookName,
		ClientConfig: webhook.WithPath(cc, Path),
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"serviceaccounts"},
				Scope: ptr.To(admissionregistrationv1.NamespacedScope),
			},
		}},
		FailurePolicy:           &fp,
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To(timeoutSeconds),
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{excludeNamespace},
		}}},
	}
}
