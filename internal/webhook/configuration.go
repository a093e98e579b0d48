package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// AnnotationInjectCAFrom is cert-manager's CA injector annotation.
const AnnotationInjectCAFrom = "cert-manager.io/inject-ca-from"

// ConfigManager keeps the MutatingWebhookConfiguration in line with the acr-configuration
// webhook block and the CA bundle. It runs on every replica (the result is the same whoever
// writes it) and re-checks the certificate and the configuration every Resync.
type ConfigManager struct {
	// Client writes MutatingWebhookConfigurations (uncached reads are fine).
	Client client.Client
	Policy Settings
	// Switched is the webhook that follows acr-configuration's enable switch (the ServiceAccount
	// webhook), named SwitchedName; nil: none.
	Switched     EntryFunc
	SwitchedName string
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
	// NoCreate leaves creating (and deleting) the configuration to its owner — the Helm chart,
	// which renders it empty and deletes it on uninstall. Sync then only fills in an existing
	// configuration (keeping the owner's labels) and never re-creates a deleted one, so a helper
	// still running while its release is uninstalled cannot leave a webhook pointing at a deleted
	// Service. A missing configuration is waited for (looked for again every few seconds).
	NoCreate bool
	// Extra, if set, returns further webhooks served by the same server (the Pod webhook).
	// They are in the configuration whenever the helper runs, whatever acr-configuration's
	// enable says; they get its failure policy and timeout (Ignore and 10 s while no valid
	// acr-configuration exists). cc carries the CA bundle and the URL (without path) or the
	// Service (Path nil).
	Extra func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeoutSeconds int32) []admissionregistrationv1.MutatingWebhook
}

// Settings is the acr-configuration webhook block as the pull-secret Store serves it.
type Settings interface {
	// WebhookSettings returns the webhook-configuration in force; ok is false while idle.
	WebhookSettings() (enable bool, failurePolicy string, timeoutSeconds int32, ok bool)
	// Subscribe returns a channel that receives a value whenever the settings change.
	Subscribe() <-chan struct{}
}

// EntryFunc builds one webhook entry. cc carries the CA bundle and the URL (without path) or the
// Service (Path nil): add the webhook's path with [WithPath]. timeoutSeconds is within 1..30.
type EntryFunc func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeoutSeconds int32) admissionregistrationv1.MutatingWebhook

// WithPath returns cc with path appended to its URL or set on its Service.
func WithPath(cc admissionregistrationv1.WebhookClientConfig, path string) admissionregistrationv1.WebhookClientConfig {
	if cc.URL != nil {
		cc.URL = ptr.To(*cc.URL + path)
	} else if cc.Service != nil {
		svc := *cc.Service
		svc.Path = ptr.To(path)
		cc.Service = &svc
	}
	return cc
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
		var wait <-chan time.Time
		switch err := m.Sync(ctx); {
		case errors.Is(err, ErrConfigurationMissing):
			logger.Info("waiting for the MutatingWebhookConfiguration (created by its owner, e.g. the Helm chart; never by ferry with --webhook-configuration-create=false)")
			wait = time.After(min(missingRetry, resync))
		case err != nil:
			logger.Error(err, "sync webhook configuration; retrying")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-tick.C:
		case <-wait:
		}
	}
}

// ErrConfigurationMissing is returned by Sync with NoCreate when the configuration does not exist.
var ErrConfigurationMissing = errors.New("MutatingWebhookConfiguration does not exist")

// missingRetry is how often a missing configuration is looked for again (NoCreate).
const missingRetry = 5 * time.Second

// Sync renews the certificate if due and creates, updates or deletes the configuration (with
// NoCreate: updates only).
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
	if m.NoCreate {
		return m.update(ctx, mwc, ok, enable, failurePolicy, timeout)
	}
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
		m.mutate(mwc, ok, enable, failurePolicy, timeout)
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

// mutate sets the labels, annotations and webhooks of the configuration. ok is false while no
// valid acr-configuration exists (the switched webhook is then kept as it is).
func (m *ConfigManager) mutate(mwc *admissionregistrationv1.MutatingWebhookConfiguration, ok, enable bool, failurePolicy string, timeout int32) {
	var caBundle []byte
	if m.Certs != nil {
		caBundle = m.Certs.CABundle()
	} else if len(mwc.Webhooks) > 0 {
		caBundle = mwc.Webhooks[0].ClientConfig.CABundle // cert-manager's injector owns it
	}
	if !m.NoCreate { // an owner's object keeps the owner's labels (Helm's managed-by)
		if mwc.Labels == nil {
			mwc.Labels = map[string]string{}
		}
		mwc.Labels["app.kubernetes.io/managed-by"] = "ferry"
	}
	if m.CertManager != "" {
		if mwc.Annotations == nil {
			mwc.Annotations = map[string]string{}
		}
		mwc.Annotations[AnnotationInjectCAFrom] = m.CertManager
	}
	var keep []admissionregistrationv1.MutatingWebhook
	switch {
	case m.Switched == nil:
	case ok && enable:
		keep = append(keep, m.Switched(m.clientConfig(caBundle), failurePolicy, normalTimeout(timeout)))
	case !ok: // idle: the switched webhook stays as it is
		for _, w := range mwc.Webhooks {
			if w.Name == m.SwitchedName {
				keep = append(keep, w)
			}
		}
	}
	if m.Extra != nil {
		keep = append(keep, m.Extra(m.clientConfig(caBundle), failurePolicy, normalTimeout(timeout))...)
	}
	mwc.Webhooks = keep
}

// update fills in an existing configuration without ever creating one (NoCreate). With the
// switched webhook disabled and no Extra webhooks it empties the list instead of deleting the
// object, which belongs to its owner.
func (m *ConfigManager) update(ctx context.Context, mwc *admissionregistrationv1.MutatingWebhookConfiguration, ok, enable bool, failurePolicy string, timeout int32) error {
	if err := m.Client.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
		if apierrors.IsNotFound(err) {
			return ErrConfigurationMissing
		}
		return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", m.Name, err)
	}
	before := mwc.DeepCopy()
	m.mutate(mwc, ok, enable, failurePolicy, timeout)
	if equality.Semantic.DeepEqual(before, mwc) {
		return nil
	}
	// Update carries the resourceVersion just read: a configuration deleted meanwhile fails
	// with NotFound instead of coming back.
	if err := m.Client.Update(ctx, mwc); err != nil {
		if apierrors.IsNotFound(err) {
			return ErrConfigurationMissing
		}
		return fmt.Errorf("update MutatingWebhookConfiguration %s: %w", m.Name, err)
	}
	log.FromContext(ctx).Info("webhook configuration applied", "result", "updated", "failurePolicy", failurePolicy, "timeoutSeconds", timeout)
	return nil
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
