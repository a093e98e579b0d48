package pullsecret

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// mergePullSecrets merges the desired Secret names into a ServiceAccount's imagePullSecrets.
//
// owned lists the names ferry added earlier (from AnnotationPullSecrets). The result keeps every
// entry ferry does not own, in its order; drops owned entries that are no longer desired; and
// appends desired names that are missing, in desired order. newOwned is what ferry owns
// afterwards: desired names it owned before or added now — never a name the user put there.
func mergePullSecrets(current []corev1.LocalObjectReference, owned, desired []string) (result []corev1.LocalObjectReference, newOwned []string) {
	result = make([]corev1.LocalObjectReference, 0, len(current)+len(desired))
	present := map[string]bool{}
	for _, ref := range current {
		if slices.Contains(owned, ref.Name) && !slices.Contains(desired, ref.Name) {
			continue // ferry added it and no longer wants it
		}
		result = append(result, ref)
		present[ref.Name] = true
	}
	for _, name := range desired {
		switch {
		case !present[name]:
			result = append(result, corev1.LocalObjectReference{Name: name})
			present[name] = true
			newOwned = append(newOwned, name)
		case slices.Contains(owned, name):
			newOwned = append(newOwned, name)
		}
	}
	return result, newOwned
}

// parseOwned reads AnnotationPullSecrets.
func parseOwned(annotations map[string]string) []string {
	v := annotations[AnnotationPullSecrets]
	if v == "" {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ApplyToServiceAccount merges desired into sa in place and reports whether anything changed.
func ApplyToServiceAccount(sa *corev1.ServiceAccount, desired []string) (changed bool, added, removed int) {
	owned := parseOwned(sa.Annotations)
	merged, newOwned := mergePullSecrets(sa.ImagePullSecrets, owned, desired)
	annotation := strings.Join(newOwned, ",")
	if slices.Equal(merged, sa.ImagePullSecrets) && annotation == sa.Annotations[AnnotationPullSecrets] {
		return false, 0, 0
	}
	for _, n := range newOwned {
		if !slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == n }) {
			added++
		}
	}
	removed = len(sa.ImagePullSecrets) + added - len(merged)
	sa.ImagePullSecrets = merged
	if len(sa.ImagePullSecrets) == 0 {
		sa.ImagePullSecrets = nil
	}
	if annotation == "" {
		delete(sa.Annotations, AnnotationPullSecrets)
	} else {
		if sa.Annotations == nil {
			sa.Annotations = map[string]string{}
		}
		sa.Annotations[AnnotationPullSecrets] = annotation
	}
	return true, added, removed
}
