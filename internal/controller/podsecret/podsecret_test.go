package podsecret

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// fakeMinter is a stand-in for pullsecret.CloudTokens (which the acr-credential-helper end-to-end test
// runs against the acr-emulator): it controls token lifetimes and failures exactly, which
// the refresh and clean-up tests need. Each token's password is "pw-<n>".
type fakeMinter struct {
	mu    sync.Mutex
	clock *fakeclock.Clock
	calls int
	fail  error
	last  annotations.RoleChain
	inst  annotations.InstanceRef
}

func (m *fakeMinter) Mint(_ context.Context, inst annotations.InstanceRef, chain annotations.RoleChain, _ time.Duration) (pullsecret.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last, m.inst = chain, inst
	if m.fail != nil {
		return pullsecret.Token{}, m.fail
	}
	m.calls++
	return pullsecret.Token{Username: "cr_temp_user", Password: redact.Secret(fmt.Sprintf("pw-%d", m.calls)), ExpiresAt: m.clock.Now().Add(time.Hour),
		Domains: []string{inst.InstanceID + "-registry." + inst.RegionID + ".cr.aliyuncs.com"}}, nil
}

func password(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	cfg, err := dockercfg.Parse(s.Data[corev1.DockerConfigJsonKey])
	if err != nil {
		t.Fatal(err)
	}
	e, ok := cfg.Lookup(strings.Split(s.Annotations[pullsecret.AnnotationDomains], ",")[0])
	if !ok {
		t.Fatalf("no entry for %s", s.Annotations[pullsecret.AnnotationDomains])
	}
	return e.Password.Reveal()
}

func TestSecretName(t *testing.T) {
	svc := annotations.RoleChain{ServiceARNs: []string{"acs:ram::1:role/svc"}}
	usr := annotations.RoleChain{UserARNs: []string{"acs:ram::1:role/svc"}}
	tests := []struct {
		name  string
		got   string
		check func(string) bool
	}{
		{"no chain", SecretName("cri-ABC", annotations.RoleChain{}), func(s string) bool { return s == "acr-pull-cri-abc-pod" }},
		{"never the pullsecret name", SecretName("cri-abc", annotations.RoleChain{}), func(s string) bool {
			return s != pullsecret.SecretName(pullsecret.Instance{ID: "cri-abc", Region: "cn-hangzhou"})
		}},
		{"chain hash", SecretName("cri-abc", usr), func(s string) bool {
			return strings.HasPrefix(s, "acr-pull-cri-abc-") && len(s) == len("acr-pull-cri-abc-")+10
		}},
		{"service and user ARNs differ", SecretName("cri-abc", svc), func(s string) bool { return s != SecretName("cri-abc", usr) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.check(tt.got) {
				t.Fatalf("got %q", tt.got)
			}
		})
	}
}

// TestEnsureRefreshAndCollect drives Ensurer and Reconciler against a real apiserver: one
// Secret per (instance, chain) with the pod-annotation label, reused while fresh, renewed
// at expiresAt − threshold, never blanked by a failed renewal, deleted once no Pod uses it
// after GCGrace, and a same-named Secret ferry does not own is left alone.
func TestEnsureRefreshAndCollect(t *testing.T) {
	kube := kubeenv.Start(t)
	ctx, c := t.Context(), kube.Client
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	clock := fakeclock.New(time.Now())
	m := &fakeMinter{clock: clock}
	threshold := func() time.Duration { return 15 * time.Minute }
	e := &Ensurer{Client: c, APIReader: c, Minter: m, Region: "cn-hangzhou", Threshold: threshold, Now: clock.Now}
	r := &Reconciler{Client: c, APIReader: c, Minter: m, Threshold: threshold, Now: clock.Now}
	chain := annotations.RoleChain{ServiceARNs: []string{"acs:ram::1:role/svc"}, UserARNs: []string{"acs:ram::2:role/acr-pull"}}
	inst := annotations.InstanceRef{InstanceID: "cri-abc"}

	name, err := e.EnsureInstanceSecret(ctx, "app", inst, chain)
	if err != nil {
		t.Fatal(err)
	}
	get := func() *corev1.Secret {
		t.Helper()
		s := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "app", Name: name}, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := get()
	t.Run("created with labels, annotations and the region default", func(t *testing.T) {
		if name != SecretName("cri-abc", chain) || s.Type != corev1.SecretTypeDockerConfigJson ||
			s.Labels[pullsecret.LabelSource] != pullsecret.SourcePodAnnotation || s.Labels[pullsecret.LabelInstance] != "" ||
			s.Annotations[pullsecret.AnnotationInstance] != "cn-hangzhou:cri-abc" || s.Annotations[pullsecret.AnnotationUserARNs] != chain.UserARNs[0] ||
			m.inst.RegionID != "cn-hangzhou" || m.last.String() != chain.String() || password(t, s) != "pw-1" {
			t.Fatalf("name %s type %s labels %v annotations %v minted for %v %v", name, s.Type, s.Labels, s.Annotations, m.inst, m.last)
		}
	})
	t.Run("reused while fresh", func(t *testing.T) {
		clock.Advance(30 * time.Minute)
		if _, err := e.EnsureInstanceSecret(ctx, "app", inst, chain); err != nil {
			t.Fatal(err)
		}
		if m.calls != 1 {
			t.Fatalf("%d mints, want 1", m.calls)
		}
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}})
		// next visit: the GC check GCGrace after the webhook's use just now, before the renewal at expiresAt − threshold (15 m)
		if err != nil || res.RequeueAfter <= GCGrace-time.Second || res.RequeueAfter > GCGrace || m.calls != 1 {
			t.Fatalf("reconcile: %+v %v, %d mints; want a requeue within GCGrace", res, err, m.calls)
		}
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "user"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "x/y:1"}}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: name}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Run("renewal failure keeps the Secret", func(t *testing.T) {
		clock.Advance(16 * time.Minute) // 14 minutes left < threshold
		m.fail = errors.New("sts AssumeRole failed (HTTP 403): NoPermission")
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}}); err == nil {
			t.Fatal("no error for a failed renewal")
		}
		if got := get(); password(t, got) != "pw-1" || got.Annotations[pullsecret.AnnotationExpiresAt] != s.Annotations[pullsecret.AnnotationExpiresAt] {
			t.Fatal("a failed renewal changed the Secret")
		}
	})
	t.Run("renewed before expiry", func(t *testing.T) {
		m.fail = nil
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}}); err != nil {
			t.Fatal(err)
		}
		got := get()
		if password(t, got) != "pw-2" || got.Annotations[pullsecret.AnnotationExpiresAt] == s.Annotations[pullsecret.AnnotationExpiresAt] {
			t.Fatalf("not renewed: %v", got.Annotations)
		}
	})
	t.Run("kept while a Pod uses it, deleted after the grace once none does", func(t *testing.T) {
		clock.Advance(GCGrace)
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}}); err != nil {
			t.Fatal(err)
		}
		get()
		if err := c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: name}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "app", Name: name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Fatalf("unused Secret still there: %v", err)
		}
	})
	t.Run("a fresh unused Secret survives (the Pod is created after admission)", func(t *testing.T) {
		n, err := e.EnsureInstanceSecret(ctx, "app", inst, annotations.RoleChain{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: n}})
		if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > GCGrace {
			t.Fatalf("%+v %v", res, err)
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "app", Name: n}, &corev1.Secret{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an edited instance annotation is a terminal error; the Secret stays", func(t *testing.T) {
		n, err := e.EnsureInstanceSecret(ctx, "app", inst, annotations.RoleChain{})
		if err != nil {
			t.Fatal(err)
		}
		cur := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "app", Name: n}, cur); err != nil {
			t.Fatal(err)
		}
		cur.Annotations[pullsecret.AnnotationInstance] = "cn-beijing:cri-elsewhere"              // names another Secret
		cur.Annotations[pullsecret.AnnotationExpiresAt] = clock.Now().UTC().Format(time.RFC3339) // due for renewal
		if err := c.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "app", Name: n}})
		if !errors.Is(err, reconcile.TerminalError(nil)) || !strings.Contains(err.Error(), "cannot be renewed") {
			t.Fatalf("err = %v, want a terminal error", err)
		}
		after := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: "app", Name: n}, after); err != nil || password(t, after) != password(t, cur) {
			t.Fatalf("Secret changed or gone: %v", err)
		}
	})
	t.Run("a same-named Secret ferry does not own is left alone", func(t *testing.T) {
		other := annotations.InstanceRef{RegionID: "cn-beijing", InstanceID: "cri-theirs"}
		mine := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: SecretName(other.InstanceID, annotations.RoleChain{})},
			StringData: map[string]string{"k": "v"}}
		if err := c.Create(ctx, mine); err != nil {
			t.Fatal(err)
		}
		_, err := e.EnsureInstanceSecret(ctx, "app", other, annotations.RoleChain{})
		if err == nil || !strings.Contains(err.Error(), "not managed by ferry") {
			t.Fatalf("err %v", err)
		}
		got := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(mine), got); err != nil || string(got.Data["k"]) != "v" {
			t.Fatalf("user Secret changed: %v", err)
		}
	})
}
