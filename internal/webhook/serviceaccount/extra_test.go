package serviceaccount

import (
	"testing"

	"github.com/ferrypull/ferry/internal/webhook"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// TestConfigManagerExtraWebhooks: Extra webhooks (the Pod webhook) are in the configuration
// whenever the helper runs — before any acr-configuration (Ignore, 10 s), next to the
// ServiceAccount entry with the ConfigMap's policy and timeout, and alone when the
// ConfigMap disables the ServiceAccount webhook. The idle state keeps an existing
// ServiceAccount entry.
func TestConfigManagerExtraWebhooks(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	store := &pullsecret.Store{}
	m := &webhook.ConfigManager{Client: c, Policy: store, Name: "ferry-extra", Namespace: "ferry-system", Switched: entry("ferry-system"), SwitchedName: WebhookName, URL: "https://127.0.0.1:1",
		Extra: func(cc admissionregistrationv1.WebhookClientConfig, fp string, timeout int32) []admissionregistrationv1.MutatingWebhook {
			w := m0(fp, timeout)
			w.ClientConfig = cc
			w.ClientConfig.URL = ptr.To(*cc.URL + "/pods")
			return []admissionregistrationv1.MutatingWebhook{w}
		}}
	type entry struct {
		name, policy string
		timeout      int32
	}
	check := func(t *testing.T, want ...entry) {
		t.Helper()
		if err := m.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := c.Get(ctx, types.NamespacedName{Name: "ferry-extra"}, mwc); err != nil {
			t.Fatal(err)
		}
		var got []entry
		for _, w := range mwc.Webhooks {
			got = append(got, entry{w.Name, string(*w.FailurePolicy), *w.TimeoutSeconds})
		}
		if len(got) != len(want) {
			t.Fatalf("webhooks %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("webhooks %+v, want %+v", got, want)
			}
		}
	}
	pods := func(p string, to int32) entry { return entry{"pods.example.dev", p, to} }
	t.Run("no acr-configuration: the extra entry alone, Ignore and 10 s", func(t *testing.T) {
		check(t, pods("Ignore", 10))
	})
	t.Run("enabled: both entries with the ConfigMap's policy and timeout", func(t *testing.T) {
		store.Set(settings(true, "Fail", 7))
		check(t, entry{WebhookName, "Fail", 7}, pods("Fail", 7))
	})
	t.Run("idle again: the ServiceAccount entry is kept as it is", func(t *testing.T) {
		store.Set(nil)
		check(t, entry{WebhookName, "Fail", 7}, pods("Ignore", 10))
	})
	t.Run("disabled: the ServiceAccount entry goes, the extra one stays", func(t *testing.T) {
		store.Set(settings(false, "Fail", 99))
		check(t, pods("Fail", 10))
	})
}

func m0(fp string, timeout int32) admissionregistrationv1.MutatingWebhook {
	p := admissionregistrationv1.FailurePolicyType(fp)
	return admissionregistrationv1.MutatingWebhook{
		Name: "pods.example.dev",
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
		}},
		FailurePolicy:           &p,
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1"},
	}
}
