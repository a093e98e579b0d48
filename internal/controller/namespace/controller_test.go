package namespace

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// dockerAuths decodes a managed Secret's payload: host → password.
func dockerAuths(s *corev1.Secret) (map[string]string, error) {
	var cfg struct {
		Auths map[string]struct {
			Username, Password, Auth string
		} `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for h, a := range cfg.Auths {
		out[h] = a.Password
	}
	return out, nil
}

func (h *harness) password(ns, name string) (string, error) {
	s, err := h.secret(ns, name)
	if err != nil {
		return "", err
	}
	auths, err := dockerAuths(s)
	if err != nil {
		return "", err
	}
	for _, p := range auths {
		return p, nil
	}
	return "", errors.New("no auths")
}

func wantSAEntries(h *harness, t *testing.T, ns, sa string, want []string) func() error {
	return func() error {
		got := pullSecretNames(h.sa(t, ns, sa))
		if !slices.Equal(got, want) {
			return fmt.Errorf("ServiceAccount %s/%s imagePullSecrets = %v, want %v", ns, sa, got, want)
		}
		return nil
	}
}

func absent(h *harness, ns, name string) func() error {
	return func() error {
		_, err := h.secret(ns, name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("Secret %s/%s still there (err=%v)", ns, name, err)
	}
}

// served is a harness with namespaces app-a, app-b and other, a user's builder ServiceAccount in
// app-a with two pull secrets of its own, and acr-configuration watching app-a and app-b for the
// default and builder ServiceAccounts with both instances; it returns once all four Secrets exist.
func served(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := startHarness(t, o)
	for _, ns := range []string{"app-a", "app-b", "other"} {
		h.namespace(t, ns)
	}
	if err := h.c.Create(t.Context(), &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: "app-a", Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "user-first"}, {Name: "user-second"}},
	}); err != nil {
		t.Fatal(err)
	}
	h.applyConfig(t, acrConfig("app-a,app-b", "default,builder", "15m", instHZ, instBJ))
	for _, ns := range []string{"app-a", "app-b"} {
		for _, name := range []string{nameHZ, nameBJ} {
			poll.Within(t, wait, "Secret "+ns+"/"+name, func() error { _, err := h.secret(ns, name); return err })
		}
	}
	return h
}

const wait = 30 * time.Second

// TestController: each subtest starts its own apiserver, acr-emulator and controller (no subtest
// depends on another's state), configured with the real acr-configuration format and served by
// the production token source.
func TestController(t *testing.T) {
	t.Run("missing ConfigMap leaves ferry idle", func(t *testing.T) {
		h := startHarness(t, harnessOptions{})
		poll.Within(t, wait, "ConfigMissing event", func() error {
			if len(h.events(t, ReasonConfigMissing)) == 0 {
				return errors.New("no ConfigMissing event")
			}
			return nil
		})
		if h.store.Current() != nil {
			t.Fatal("settings loaded without a ConfigMap")
		}
	})

	t.Run("Secrets per watched namespace and instance, with all domains, one token per instance", func(t *testing.T) {
		h := startHarness(t, harnessOptions{})
		for _, ns := range []string{"app-a", "app-b", "other"} {
			h.namespace(t, ns)
		}
		// A ServiceAccount in the unwatched namespace with an entry ferry once added: its removal
		// shows that the controller has reconciled "other" (the barrier of the absence check).
		if err := h.c.Create(t.Context(), &corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Namespace: "other", Name: "stale", Annotations: map[string]string{pullsecret.AnnotationPullSecrets: "acr-pull-gone"}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "acr-pull-gone"}},
		}); err != nil {
			t.Fatal(err)
		}
		h.applyConfig(t, acrConfig("app-a,app-b", "default", "15m", instHZ, instBJ))
		for _, ns := range []string{"app-a", "app-b"} {
			for _, name := range []string{nameHZ, nameBJ} {
				poll.Within(t, wait, "Secret "+ns+"/"+name, func() error { _, err := h.secret(ns, name); return err })
				s, _ := h.secret(ns, name)
				if s.Type != corev1.SecretTypeDockerConfigJson || s.Labels[pullsecret.LabelManagedBy] != pullsecret.ManagedByValue || s.Annotations[pullsecret.AnnotationExpiresAt] == "" {
					t.Errorf("%s/%s: type %s labels %v annotations %v", ns, name, s.Type, s.Labels, s.Annotations)
				}
				auths, err := dockerAuths(s)
				if err != nil || len(auths) != 2 {
					t.Errorf("%s/%s: auths %v err %v, want 2 domains (internet and VPC)", ns, name, auths, err)
				}
			}
		}
		poll.Within(t, wait, "unwatched namespace reconciled", wantSAEntries(h, t, "other", "stale", nil))
		if _, err := h.secret("other", nameHZ); !apierrors.IsNotFound(err) {
			t.Errorf("unwatched namespace got a Secret (err=%v)", err)
		}
		if got := h.acr.Stats().TokenCalls; got != 2 {
			t.Errorf("%d GetAuthorizationToken calls, want 2: one per instance, shared by all namespaces", got)
		}
	})

	t.Run("ServiceAccounts merged, user entries kept in order", func(t *testing.T) {
		h := served(t, harnessOptions{})
		poll.Within(t, wait, "default SA", wantSAEntries(h, t, "app-a", "default", []string{nameHZ, nameBJ}))
		poll.Within(t, wait, "builder SA", wantSAEntries(h, t, "app-a", "builder", []string{"user-first", "user-second", nameHZ, nameBJ}))
		if got := h.sa(t, "app-a", "builder").Annotations[pullsecret.AnnotationPullSecrets]; got != nameHZ+","+nameBJ {
			t.Errorf("ownership annotation = %q", got)
		}
		if got := pullSecretNames(h.sa(t, "other", "default")); len(got) != 0 {
			t.Errorf("unwatched namespace SA patched: %v", got)
		}
	})

	t.Run("manual edits are reverted, an immutable Secret replaced, a deleted one recreated", func(t *testing.T) {
		h := served(t, harnessOptions{})
		want, err := h.password("app-a", nameHZ)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := h.secret("app-a", nameHZ)
		s.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"evil.example.com":{"auth":"eDp5"}}}`)
		if err := h.c.Update(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "revert", func() error {
			got, err := h.password("app-a", nameHZ)
			if err != nil || got != want {
				return fmt.Errorf("password changed or missing (err %v)", err)
			}
			return nil
		})
		s, _ = h.secret("app-a", nameHZ)
		s.Immutable = ptr.To(true)
		if err := h.c.Update(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "immutable Secret replaced", func() error {
			got, err := h.secret("app-a", nameHZ)
			if err != nil {
				return err
			}
			if got.Immutable != nil {
				return errors.New("still immutable")
			}
			return nil
		})
		s, _ = h.secret("app-a", nameHZ)
		if err := h.c.Delete(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "recreate", func() error { _, err := h.secret("app-a", nameHZ); return err })
	})

	t.Run("user edits of the SA list are respected", func(t *testing.T) {
		h := served(t, harnessOptions{})
		poll.Within(t, wait, "builder SA", wantSAEntries(h, t, "app-a", "builder", []string{"user-first", "user-second", nameHZ, nameBJ}))
		sa := h.sa(t, "app-a", "builder")
		sa.ImagePullSecrets = append([]corev1.LocalObjectReference{{Name: "user-zero"}}, sa.ImagePullSecrets...)
		if err := h.c.Update(t.Context(), sa); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "builder SA", wantSAEntries(h, t, "app-a", "builder", []string{"user-zero", "user-first", "user-second", nameHZ, nameBJ}))
	})

	t.Run("new namespace and new ServiceAccount are served", func(t *testing.T) {
		h := served(t, harnessOptions{})
		h.applyConfig(t, acrConfig("app-a,app-b,late", "default,builder", "15m", instHZ, instBJ))
		start := time.Now()
		h.namespace(t, "late")
		poll.Within(t, wait, "Secret in new namespace", func() error { _, err := h.secret("late", nameBJ); return err })
		t.Logf("new namespace served after %s", time.Since(start))
		if err := h.c.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "late", Name: "builder"}}); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "new builder SA", wantSAEntries(h, t, "late", "builder", []string{nameHZ, nameBJ}))
	})

	t.Run("bad ConfigMap: Event naming the field, last good config keeps running", func(t *testing.T) {
		h := served(t, harnessOptions{})
		h.applyConfig(t, acrConfig("app-a,app-b,later", "default,builder", "soon", instHZ))
		poll.Within(t, wait, "ConfigInvalid event", func() error {
			for _, n := range h.events(t, ReasonConfigInvalid) {
				if strings.Contains(n, "expiring-threshold") && strings.Contains(n, `"soon"`) {
					return nil
				}
			}
			return errors.New("no ConfigInvalid event naming expiring-threshold")
		})
		if !strings.Contains(h.logs.String(), "expiring-threshold") {
			t.Error("no log line names the invalid field")
		}
		// The last good config still serves the namespaces it watched, with both instances.
		if err := h.c.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app-b", Name: "builder"}}); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "SA under last good config", wantSAEntries(h, t, "app-b", "builder", []string{nameHZ, nameBJ}))
		before := reconciles(t)
		h.namespace(t, "later") // only in the rejected config: it must not be served
		h.settled(t, "later", before)
		if _, err := h.secret("later", nameHZ); !apierrors.IsNotFound(err) {
			t.Errorf("namespace of the rejected config got a Secret (err=%v)", err)
		}
		if st := h.store.Current(); st.Namespaces.Has("later") || len(st.Instances) != 2 {
			t.Errorf("store holds the rejected config: %+v", st)
		}
	})

	t.Run("GC on config change removes exactly what ferry added", func(t *testing.T) {
		h := served(t, harnessOptions{})
		if err := h.c.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app-b", Name: "builder"}}); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "builder SA in app-b", wantSAEntries(h, t, "app-b", "builder", []string{nameHZ, nameBJ}))
		h.applyConfig(t, acrConfig("app-a", "builder", "15m", instHZ))
		poll.Within(t, wait, "dropped instance Secret gone", absent(h, "app-a", nameBJ))
		poll.Within(t, wait, "dropped namespace Secret gone", absent(h, "app-b", nameHZ))
		poll.Within(t, wait, "builder keeps user entries", wantSAEntries(h, t, "app-a", "builder", []string{"user-first", "user-second", nameHZ}))
		poll.Within(t, wait, "default SA no longer selected", wantSAEntries(h, t, "app-a", "default", nil))
		poll.Within(t, wait, "unwatched namespace cleaned", wantSAEntries(h, t, "app-b", "builder", nil))
		if _, ok := h.sa(t, "app-a", "default").Annotations[pullsecret.AnnotationPullSecrets]; ok {
			t.Error("ownership annotation left on an SA ferry no longer patches")
		}
	})

	t.Run("token API down: Secret untouched, Event, recovery", func(t *testing.T) {
		h := served(t, harnessOptions{})
		before, err := h.secret("app-a", nameHZ)
		if err != nil {
			t.Fatal(err)
		}
		h.emu.Fault("GetAuthorizationToken", http.StatusServiceUnavailable)
		// Force a renewal attempt: a threshold longer than the token's life.
		h.applyConfig(t, acrConfig("app-a", "builder", "2h", instHZ))
		poll.Within(t, wait, "TokenRefreshFailed event", func() error {
			if len(h.events(t, ReasonTokenFailed)) == 0 {
				return errors.New("no event")
			}
			return nil
		})
		after, err := h.secret("app-a", nameHZ)
		if err != nil {
			t.Fatalf("Secret gone during the outage: %v", err)
		}
		if string(after.Data[corev1.DockerConfigJsonKey]) != string(before.Data[corev1.DockerConfigJsonKey]) {
			t.Error("Secret changed during the outage")
		}
		h.emu.ClearFaults()
		poll.Within(t, wait, "new token after recovery", func() error {
			s, err := h.secret("app-a", nameHZ)
			if err != nil {
				return err
			}
			if s.Annotations[pullsecret.AnnotationExpiresAt] == before.Annotations[pullsecret.AnnotationExpiresAt] {
				return errors.New("token not renewed yet")
			}
			return nil
		})
	})

	t.Run("rotation: short tokens renewed before they expire", func(t *testing.T) {
		h := startHarness(t, harnessOptions{TokenTTL: 10 * time.Second})
		h.namespace(t, "app-a")
		h.applyConfig(t, acrConfig("app-a", "default", "5s", instHZ))
		seen := map[string]bool{}
		poll.Within(t, 60*time.Second, "three rotations", func() error {
			s, err := h.secret("app-a", nameHZ)
			if err != nil {
				return err
			}
			exp, _ := time.Parse(time.RFC3339, s.Annotations[pullsecret.AnnotationExpiresAt])
			if time.Now().After(exp) {
				t.Fatalf("Secret holds an expired token (expired %s)", exp)
			}
			auths, _ := dockerAuths(s)
			for _, p := range auths {
				seen[p] = true
			}
			if len(seen) < 4 {
				return fmt.Errorf("%d distinct tokens so far", len(seen))
			}
			return nil
		})
	})

	t.Run("deleted ConfigMap: idle, nothing removed", func(t *testing.T) {
		h := served(t, harnessOptions{})
		poll.Within(t, wait, "builder SA", wantSAEntries(h, t, "app-a", "builder", []string{"user-first", "user-second", nameHZ, nameBJ}))
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pullsecret.ConfigMapNamespace, Name: pullsecret.ConfigMapName}}
		if err := h.c.Delete(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
		poll.Within(t, wait, "idle", func() error {
			if h.store.Current() != nil {
				return errors.New("settings still in force")
			}
			return nil
		})
		// A namespace created while idle gets nothing; what ferry wrote before stays.
		before := reconciles(t)
		h.namespace(t, "while-idle")
		h.settled(t, "while-idle", before)
		if _, err := h.secret("app-a", nameHZ); err != nil {
			t.Errorf("Secret removed when the ConfigMap was deleted: %v", err)
		}
		if got := pullSecretNames(h.sa(t, "app-a", "builder")); !slices.Contains(got, nameHZ) {
			t.Errorf("ServiceAccount entries removed when the ConfigMap was deleted: %v", got)
		}
		if _, err := h.secret("while-idle", nameHZ); !apierrors.IsNotFound(err) {
			t.Errorf("idle controller wrote a Secret (err=%v)", err)
		}
	})
}
