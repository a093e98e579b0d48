package serviceaccount

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/ferrypull/ferry/internal/webhook"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the webhook is served.
const Path = "/mutate-v1-serviceaccount"

// Policy decides what a new ServiceAccount gets. The pull-secret controller's Store implements it.
type Policy interface {
	// ApplyTo merges the pull Secrets selected for sa into it and reports whether it changed.
	ApplyTo(sa *corev1.ServiceAccount) bool
	webhook.Settings
}

// Mutator is the admission handler.
type Mutator struct {
	Policy Policy
}

var _ admission.Handler = (*Mutator)(nil)

// Handle adds the pull Secrets to a ServiceAccount being created. Anything else, and every
// ServiceAccount while the webhook is disabled, is allowed unchanged.
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "ServiceAccount" {
		return admission.Allowed("not a ServiceAccount creation")
	}
	if enable, _, _, ok := m.Policy.WebhookSettings(); !ok || !enable {
		return admission.Allowed("webhook disabled in acr-configuration")
	}
	sa := &corev1.ServiceAccount{}
	if err := json.Unmarshal(req.Object.Raw, sa); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if sa.Namespace == "" {
		sa.Namespace = req.Namespace
	}
	if !m.Policy.ApplyTo(sa) {
		return admission.Allowed("no pull Secrets for this ServiceAccount")
	}
	patched, err := json.Marshal(sa)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	log.FromContext(ctx).V(1).Info("added pull Secrets to new ServiceAccount", "namespace", sa.Namespace, "serviceAccount", sa.Name)
	return admission.PatchResponseFromRaw(req.Object.Raw, patched)
}

// NewWebhook returns the handler wrapped for registration on a webhook server:
//
//	mgr.GetWebhookServer().Register(serviceaccount.Path, serviceaccount.NewWebhook(store))
func NewWebhook(p Policy) *admission.Webhook {
	return &admission.Webhook{Handler: &Mutator{Policy: p}}
}
