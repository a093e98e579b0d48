package serviceaccount

import (
	"context"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// WebhookName is the name of the single webhook inside the configuration.
const WebhookName = "serviceaccounts.ferry.dev"

// AnnotationInjectCAFrom is cert-manager's CA injector annotation.
const AnnotationInjectCAFrom = "cert-manager.io/inject-ca-from"

// ConfigManager keeps the MutatingWebhookConfiguration in line with the acr-configuration
// webhook block and the CA bundle. It runs on every replica (the result is the same whoever
// writes it) and re-checks the certificate and the configuration every Resync.
type ConfigManager struct {
	// Client writes MutatingWebhookConfigurations (uncached reads are fine).
	Client client.Client
	Policy Policy
	// Name of the MutatingWebhookConfiguration.
	Name string
	// Namespace the webhook runs in; excluded by the namespaceSelector so the webhook can never
	// block its own recovery.
	Namespace string
	// Service is how the apiserver reaches the webhook in a cluster; URL (https://host:port)
	// replaces it when the webhook runs outside (tests, development).
	Service *admissionregistrationv1.ServiceReference
	URL     string
	// Certs provides the CA bundle; nil when CertManager is set.
	Certs *CertProvider
	// CertManager, "<namespace>/<certificate>", hands the CA bundle to cert-manager's injector.
	CertManager string
	// Resync defaults to one minute.
	Resync time.Duration
	// Extra, if set, returns further webhooks served by the same server (the Pod webhook).
	// They are in the configuration whenever the helper runs, whatever acr-configuration's
	// enable says; they get its failure policy and timeout (Ignore and 10 s while no valid
	// acr-configuration exists). cc carries the CA bundle and the URL (without path) or the
	// Service (Path nil).
	Extra func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeoutSeconds int32) []admissionregistrationv1.MutatingWebhook
}

var _ manager.LeaderElectionRunnable = (*ConfigManager)(nil)

// NeedLeaderElection is false: every replica serves the webhook and needs its certificate.
func (m *ConfigManager) NeedLeaderElection() bool { return false }

// Start runs until ctx ends.
func (m *ConfigManager) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("mutatingwebhookconfiguration", m.Name)
	ctx = log.IntoContext(ctx, logger)
	changes := m.Policy.Subscribe()
	resync := m.Resync
	if resync <= 0 {
		resync = time.Minute
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		if err := m.Sync(ctx); err != nil {
			logger.Error(err, "sync webhook configuration; retrying")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-tick.C:
		}
	}
}

// Sync renews the certificate if due and creates, updates or deletes the configuration.
func (m *ConfigManager) Sync(ctx context.Context) error {
	if m.Certs != nil {
		if err := m.Certs.Ensure(ctx); err != nil {
			return err
		}
	}
	enable, failurePolicy, timeout, ok := m.Policy.WebhookSettings()
	if !ok && m.Extra == nil {
		return nil // idle: no valid configuration yet; leave things as they are
	}
	if !ok {
		failurePolicy, timeout = string(admissionregistrationv1.Ignore), 10
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: m.Name}}
	if ok && !enable && m.Extra == nil {
		err := m.Client.Delete(ctx, mwc)
		if err == nil {
			log.FromContext(ctx).Info("webhook disabled in acr-configuration; deleted its configuration")
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete MutatingWebhookConfiguration %s: %w", m.Name, err)
		}
		return nil
	}
	res, err := controllerutil.CreateOrUpdate(ctx, m.Client, mwc, func() error {
		var caBundle []byte
		if m.Certs != nil {
			caBundle = m.Certs.CABundle()
		} else if len(mwc.Webhooks) > 0 {
			caBundle = mwc.Webhooks[0].ClientConfig.CABundle // cert-manager's injector owns it
		}
		if mwc.Labels == nil {
			mwc.Labels = map[string]string{}
		}
		mwc.Labels["app.kubernetes.io/managed-by"] = "ferry"
		if m.CertManager != "" {
			if mwc.Annotations == nil {
				mwc.Annotations = map[string]string{}
			}
			mwc.Annotations[AnnotationInjectCAFrom] = m.CertManager
		}
		var keep []admissionregistrationv1.MutatingWebhook
		switch {
		case ok && enable:
			keep = append(keep, m.webhook(caBundle, failurePolicy, timeout))
		case !ok: // idle: the ServiceAccount webhook stays as it is
			for _, w := range mwc.Webhooks {
				if w.Name == WebhookName {
					keep = append(keep, w)
				}
			}
		}
		if m.Extra != nil {
			keep = append(keep, m.Extra(m.clientConfig(caBundle), failurePolicy, normalTimeout(timeout))...)
		}
		mwc.Webhooks = keep
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply MutatingWebhookConfiguration %s: %w", m.Name, err)
	}
	if res != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("webhook configuration applied", "result", string(res), "failurePolicy", failurePolicy, "timeoutSeconds", timeout)
	}
	return nil
}

func (m *ConfigManager) webhook(caBundle []byte, failurePolicy string, timeout int32) admissionregistrationv1.MutatingWebhook {
	fp := admissionregistrationv1.Ignore
	if failurePolicy == string(admissionregistrationv1.Fail) {
		fp = admissionregistrationv1.Fail
	}
	timeout = normalTimeout(timeout)
	cc := m.clientConfig(caBundle)
	if cc.URL != nil {
		cc.URL = ptr.To(*cc.URL + Path)
	} else if cc.Service != nil {
		cc.Service.Path = ptr.To(Path)
	}
	return admissionregistrationv1.MutatingWebhook{
		Name:         WebhookName,
		ClientConfig: cc,
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
		TimeoutSeconds:          ptr.To(timeout),
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{m.Namespace},
		}}},
	}
}

// normalTimeout keeps timeoutSeconds in the 1..30 the apiserver accepts (default 10).
func normalTimeout(timeout int32) int32 {
	if timeout < 1 || timeout > 30 {
		return 10
	}
	return timeout
}

// clientConfig is how the apiserver reaches the server: the URL without a path, or a copy of
// the Service reference with Path nil.
func (m *ConfigManager) clientConfig(caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}
	if m.URL != "" {
		cc.URL = ptr.To(m.URL)
	} else if m.Service != nil {
		svc := *m.Service
		svc.Path = nil
		cc.Service = &svc
	}
	return cc
}
