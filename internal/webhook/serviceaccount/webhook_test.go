package serviceaccount

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/webhook"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

func settings(enable bool, failurePolicy string, timeout int32) *pullsecret.Settings {
	return &pullsecret.Settings{
		ServiceAccounts:   pullsecret.NameSet{All: true},
		Namespaces:        pullsecret.NameSet{Names: []string{"app", "ferry-system"}},
		ExpiringThreshold: 15 * time.Minute,
		Instances:         []pullsecret.Instance{{ID: "cri-aaa", Region: "cn-hangzhou"}, {Region: "cn-beijing"}},
		Webhook:           pullsecret.WebhookSettings{Enable: enable, FailurePolicy: failurePolicy, TimeoutSeconds: timeout},
	}
}

func TestWebhookAgainstAPIServer(t *testing.T) {
	env := kubeenv.Start(t) // runs the ServiceAccount admission plugin, which copies SA pull secrets into Pods
	ctx := t.Context()
	c := env.Client
	for _, ns := range []string{"app", "ferry-system", "elsewhere"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}

	store := &pullsecret.Store{}
	store.Set(settings(true, "Fail", 7))
	certs := &webhook.CertProvider{Client: c, Namespace: "ferry-system", SecretName: "ferry-webhook-cert",
		DNSNames: webhook.ServiceDNSNames("ferry-webhook", "ferry-system"), IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if err := certs.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	port := tools.FreePort(t)
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}})
	srv.Register(Path, NewWebhook(store))
	go func() { _ = srv.Start(ctx) }()
	mgr := &webhook.ConfigManager{Client: c, Policy: store, Name: "ferry-serviceaccount", Namespace: "ferry-system", Switched: entry("ferry-system"), SwitchedName: WebhookName,
		URL: "https://127.0.0.1:" + strconv.Itoa(port), Certs: certs}
	go func() { _ = mgr.Start(ctx) }()

	mwcKey := types.NamespacedName{Name: "ferry-serviceaccount"}
	t.Run("configuration follows acr-configuration", func(t *testing.T) {
		poll.Until(t, "MutatingWebhookConfiguration", func() error {
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := c.Get(ctx, mwcKey, mwc); err != nil {
				return err
			}
			w := mwc.Webhooks[0]
			if *w.FailurePolicy != admissionregistrationv1.Fail || *w.TimeoutSeconds != 7 {
				t.Fatalf("failurePolicy %s timeout %d", *w.FailurePolicy, *w.TimeoutSeconds)
			}
			if sel := w.NamespaceSelector.MatchExpressions; len(sel) != 1 || sel[0].Values[0] != "ferry-system" || sel[0].Operator != metav1.LabelSelectorOpNotIn {
				t.Fatalf("namespaceSelector %+v", sel)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(w.ClientConfig.CABundle) {
				t.Fatal("caBundle holds no certificate")
			}
			if _, err := certs.Leaf().Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Fatalf("serving certificate does not chain to the caBundle: %v", err)
			}
			return nil
		})
	})

	t.Run("new ServiceAccount gets the Secrets at creation, and a Pod right after it", func(t *testing.T) {
		want := []string{"acr-pull-cri-aaa", "acr-pull-personal-cn-beijing"}
		// The webhook may take a moment to be reachable; creations before that are retried
		// under a fresh name (failurePolicy Fail rejects them).
		var sa *corev1.ServiceAccount
		n := 0
		poll.Until(t, "SA creation through the webhook", func() error {
			n++
			sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "helm-sa-" + strconv.Itoa(n)},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "users-own"}}}
			return c.Create(ctx, sa)
		})
		got := []string{}
		for _, r := range sa.ImagePullSecrets {
			got = append(got, r.Name)
		}
		if !slices.Equal(got, append([]string{"users-own"}, want...)) {
			t.Fatalf("created SA imagePullSecrets = %v", got)
		}
		if sa.Annotations[pullsecret.AnnotationPullSecrets] != "acr-pull-cri-aaa,acr-pull-personal-cn-beijing" {
			t.Fatalf("ownership annotation %q", sa.Annotations[pullsecret.AnnotationPullSecrets])
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "right-after"},
			Spec: corev1.PodSpec{ServiceAccountName: sa.Name, AutomountServiceAccountToken: new(bool),
				Containers: []corev1.Container{{Name: "c", Image: "example.com/x:1"}}}}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		var podSecrets []string
		for _, r := range pod.Spec.ImagePullSecrets {
			podSecrets = append(podSecrets, r.Name)
		}
		if !slices.Contains(podSecrets, "acr-pull-cri-aaa") {
			t.Fatalf("Pod created right after its SA has imagePullSecrets %v: the race is open", podSecrets)
		}
	})

	t.Run("webhook's own namespace and unwatched namespaces are left alone", func(t *testing.T) {
		for _, ns := range []string{"ferry-system", "elsewhere"} {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}}
			if err := c.Create(ctx, sa); err != nil {
				t.Fatal(err)
			}
			if len(sa.ImagePullSecrets) != 0 {
				t.Errorf("%s: SA mutated: %v", ns, sa.ImagePullSecrets)
			}
		}
	})

	t.Run("disabling deletes the configuration", func(t *testing.T) {
		store.Set(settings(false, "Ignore", 10))
		poll.Until(t, "configuration deleted", func() error {
			err := c.Get(ctx, mwcKey, &admissionregistrationv1.MutatingWebhookConfiguration{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
	})
}

func TestCertProviderRenewal(t *testing.T) {
	env := kubeenv.Start(t)
	ctx := t.Context()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ferry-system"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	newProvider := func(dns ...string) *webhook.CertProvider {
		return &webhook.CertProvider{Client: env.Client, Namespace: "ferry-system", SecretName: "cert", DNSNames: dns,
			Validity: 90 * 24 * time.Hour, CAValidity: 900 * 24 * time.Hour, Now: clock}
	}
	a := newProvider("svc.ferry-system.svc")
	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := a.Leaf()
	firstCA := string(a.CABundle())

	tests := []struct {
		name    string
		advance time.Duration
		dns     []string
		newLeaf bool
		newCA   bool
	}{
		{name: "second replica loads the same certificate", newLeaf: false},
		{name: "half-way through the leaf's life: kept", advance: 45 * 24 * time.Hour},
		{name: "last third of the leaf's life: renewed, same CA", advance: 16 * 24 * time.Hour, newLeaf: true},
		{name: "new service name: reissued", dns: []string{"svc.ferry-system.svc", "other.ferry-system.svc"}, newLeaf: true},
		{name: "CA in its last third: new CA, bundle keeps the old", advance: 600 * 24 * time.Hour, newLeaf: true, newCA: true},
	}
	prev := first
	prevCA := firstCA
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			dns := tt.dns
			if dns == nil {
				dns = []string{"svc.ferry-system.svc"}
			}
			b := newProvider(dns...)
			if err := b.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			leaf := b.Leaf()
			if renewed := !leaf.Equal(prev); renewed != tt.newLeaf {
				t.Errorf("leaf renewed = %v, want %v", renewed, tt.newLeaf)
			}
			bundle := string(b.CABundle())
			if changed := bundle != prevCA; changed != tt.newCA {
				t.Errorf("CA changed = %v, want %v", changed, tt.newCA)
			}
			if tt.newCA {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(b.CABundle())
				for _, l := range []*x509.Certificate{prev, leaf} {
					if _, err := l.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: l.NotBefore.Add(time.Hour)}); err != nil {
						t.Errorf("bundle does not verify old and new leaf: %v", err)
					}
				}
			}
			prev, prevCA = leaf, bundle
		})
	}
}

// entry binds the ServiceAccount webhook's entry to its namespace, as acr-credential-helper does.
func entry(ns string) webhook.EntryFunc {
	return func(cc admissionregistrationv1.WebhookClientConfig, fp string, timeout int32) admissionregistrationv1.MutatingWebhook {
		return MutatingWebhook(cc, fp, timeout, ns)
	}
}
