package pod

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrypull/ferry/internal/annotations"
)

// FuzzHandle feeds arbitrary annotation values through the webhook: it must
// never panic, and an admitted Pod's patch must apply and keep user secrets.
func FuzzHandle(f *testing.F) {
	f.Add("cn-beijing:cri-aaa", "acs:ram::1:role/a", "harbor*.corp:5000,10.0.0.1", "x.corp/y")
	f.Add("cri-a,,cri-b", "", "[fd00::1]:5000", "[fd00::1]:5000/y")
	f.Fuzz(func(t *testing.T, ids, arns, registries, image string) {
		m := NewMutator(Options{Ensurer: &stubEnsurer{}, FailurePolicy: Ignore})
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{
			annotations.AcrInstanceIDs: ids, annotations.AcrUserARNs: arns, annotations.PlainHTTPRegistry: registries,
		}}, Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mine"}},
			Containers: []corev1.Container{{Name: "c", Image: image}}}}
		raw := podJSON(t, pod)
		resp := m.Handle(t.Context(), request(raw, admissionv1.Create))
		if !resp.Allowed {
			t.Fatalf("Ignore policy denied: %v", resp.Result)
		}
		got := apply(t, raw, resp)
		if len(got.Spec.ImagePullSecrets) == 0 || got.Spec.ImagePullSecrets[0].Name != "mine" {
			t.Fatalf("user secret lost: %v", got.Spec.ImagePullSecrets)
		}
		seen := map[string]bool{}
		for _, s := range got.Spec.ImagePullSecrets {
			if seen[s.Name] {
				t.Fatalf("duplicate secret %q", s.Name)
			}
			seen[s.Name] = true
		}
	})
}
