package serviceaccount

import (
	"errors"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/webhook"
)

// TestConfigManagerNoCreate: with NoCreate (the Helm chart's --webhook-configuration-create=false)
// the manager fills in a configuration its owner created, never creates one, and never deletes
// one (disabling empties the list) — so once the owner deletes it, it stays deleted.
func TestConfigManagerNoCreate(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	store := &pullsecret.Store{}
	store.Set(settings(true, "Fail", 5))
	m := &webhook.ConfigManager{Client: c, Policy: store, Name: "ferry-owned", Namespace: "ferry-system", URL: "https://127.0.0.1:1",
		Switched: entry("ferry-system"), SwitchedName: WebhookName, NoCreate: true}
	key := types.NamespacedName{Name: "ferry-owned"}
	get := func() (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		return mwc, c.Get(ctx, key, mwc)
	}

	if err := m.Sync(ctx); !errors.Is(err, webhook.ErrConfigurationMissing) {
		t.Fatalf("Sync without the configuration: %v, want ErrConfigurationMissing", err)
	}
	if _, err := get(); !apierrors.IsNotFound(err) {
		t.Fatalf("NoCreate created the configuration (err %v)", err)
	}

	// The owner creates it empty, as the chart does; Sync fills it in and keeps the owner's labels.
	owned := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "ferry-owned",
		Labels: map[string]string{"helm.sh/chart": "ferry-0.1.0"}}}
	if err := c.Create(ctx, owned); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mwc, err := get()
	if err != nil || len(mwc.Webhooks) != 1 || *mwc.Webhooks[0].FailurePolicy != admissionregistrationv1.Fail || mwc.Labels["helm.sh/chart"] != "ferry-0.1.0" {
		t.Fatalf("filled-in configuration %+v (err %v)", mwc, err)
	}

	// Disabled: the list is emptied, the object (the owner's) stays.
	store.Set(settings(false, "Fail", 5))
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if mwc, err = get(); err != nil || len(mwc.Webhooks) != 0 {
		t.Fatalf("disabled: %d webhooks (err %v), want the object kept and empty", len(mwc.Webhooks), err)
	}

	// The owner deletes it: it is not brought back.
	store.Set(settings(true, "Fail", 5))
	if err := c.Delete(ctx, owned); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := m.Sync(ctx); !errors.Is(err, webhook.ErrConfigurationMissing) {
			t.Fatalf("Sync after the owner deleted it: %v", err)
		}
	}
	if _, err := get(); !apierrors.IsNotFound(err) {
		t.Fatalf("the deleted configuration came back (err %v)", err)
	}
}
