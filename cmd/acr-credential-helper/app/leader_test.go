package app

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// TestTwoReplicasFailOver runs two helpers with --leader-elect against one apiserver: one holds
// the Lease and serves namespaces; when it stops, the other takes the Lease over and serves a
// namespace created afterwards. The token source is a static stand-in: this test is about
// leader election, not tokens.
func TestTwoReplicasFailOver(t *testing.T) {
	kube := kubeenv.Start(t)
	ctx := t.Context()
	tokens := pullsecret.TokenSourceFunc(func(context.Context, pullsecret.Instance, time.Duration) (pullsecret.Token, error) {
		return pullsecret.Token{Username: "u", Password: "static-test-password", ExpiresAt: time.Now().Add(time.Hour), Domains: []string{"r.example.com"}}, nil
	})
	ns := func(name string) {
		for _, o := range []client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}},
		} {
			if err := kube.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	ns("first")
	if err := kube.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"},
		Data: map[string]string{"watch-namespace": "all", "acr-registry-info": "- instanceId: cri-le\n  regionId: cn-hangzhou\n"}}); err != nil {
		t.Fatal(err)
	}
	start := func() (context.CancelFunc, chan error) {
		o := DefaultOptions()
		o.Kubeconfig, o.Namespace, o.Region = kube.KubeconfigPath, "kube-system", "cn-hangzhou"
		o.MetricsAddr, o.HealthAddr, o.WebhookPort = "0", "0", 0
		o.LeaderElect, o.skipNameValidation = true, true
		c, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- run(c, o, operator.Streams{Out: io.Discard, Err: &logbuf.Buffer{}}, tokens) }()
		return cancel, done
	}
	holder := func() string {
		l := &coordinationv1.Lease{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "ferry-acr-credential-helper"}, l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	secretIn := func(n string) func() error {
		return func() error {
			return kube.Client.Get(ctx, client.ObjectKey{Namespace: n, Name: "acr-pull-cri-le"}, &corev1.Secret{})
		}
	}

	cancelA, doneA := start()
	poll(t, 60*time.Second, "first replica leads and serves", secretIn("first"))
	leaderA := holder()
	cancelB, doneB := start()
	defer func() { cancelB(); <-doneB }()

	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("replica A: %v", err)
	}
	poll(t, 60*time.Second, "second replica takes the Lease", func() error {
		if h := holder(); h == "" || h == leaderA {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	ns("second")
	poll(t, 60*time.Second, "new leader serves a new namespace", secretIn("second"))
}
