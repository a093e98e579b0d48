package pullsecret

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzApplyToServiceAccount feeds arbitrary imagePullSecrets and ownership annotations (both
// user-controlled) to the merge and checks its promises.
func FuzzApplyToServiceAccount(f *testing.F) {
	f.Add("u1,a,u2", "a,b", "b,c")
	f.Add("", "", "a")
	f.Add("a,a,,b", ",,a", "")
	f.Add("x", "x,y,,z ,", "x")
	f.Fuzz(func(t *testing.T, current, annotation, desired string) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPullSecrets: annotation}}}
		for _, n := range strings.Split(current, ",") {
			sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: n})
		}
		var want []string
		for _, n := range strings.Split(desired, ",") {
			// Desired names are always SecretName outputs: valid DNS-1123 names.
			if len(validation.IsDNS1123Subdomain(n)) == 0 && !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
		owned := parseOwned(sa.Annotations)
		before := slices.Clone(sa.ImagePullSecrets)
		ApplyToServiceAccount(sa, want)

		names := make([]string, 0, len(sa.ImagePullSecrets))
		for _, r := range sa.ImagePullSecrets {
			names = append(names, r.Name)
		}
		for _, n := range want {
			if !slices.Contains(names, n) {
				t.Fatalf("desired %q missing from %v", n, names)
			}
		}
		// Entries ferry does not own keep their relative order.
		var keptBefore, keptAfter []string
		for _, r := range before {
			if !slices.Contains(owned, r.Name) {
				keptBefore = append(keptBefore, r.Name)
			}
		}
		for _, n := range names {
			if !slices.Contains(owned, n) && (!slices.Contains(want, n) || slices.ContainsFunc(before, func(r corev1.LocalObjectReference) bool { return r.Name == n })) {
				keptAfter = append(keptAfter, n)
			}
		}
		if !slices.Equal(keptBefore, keptAfter) {
			t.Fatalf("user entries changed: before %v after %v", keptBefore, keptAfter)
		}
		for _, n := range parseOwned(sa.Annotations) {
			if !slices.Contains(want, n) {
				t.Fatalf("owns %q which is not desired", n)
			}
		}
		if changed, _, _ := ApplyToServiceAccount(sa, want); changed {
			t.Fatal("second application changed the ServiceAccount")
		}
	})
}
