package podsecret

import (
	"testing"

	"github.com/ferrypull/ferry/internal/pullsecret"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzParseSecret: the refresher reads the instance and chain back from Secret annotations,
// which anyone with Secret write access may edit; bad values are errors, never panics, and a
// parsed instance always has a region.
func FuzzParseSecret(f *testing.F) {
	f.Add("cn-hangzhou:cri-abc", "acs:ram::1:role/a", "")
	f.Add("cn-hangzhou:cri-abc", "", "")
	f.Add("cri-abc", "", "acs:ram::2:role/b,acs:ram::2:role/c")
	f.Add("cn-hangzhou:cri-a,cn-beijing:cri-b", ",", "")
	f.Fuzz(func(t *testing.T, inst, svc, usr string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acr-pull-cri-abc-pod", Annotations: map[string]string{
			pullsecret.AnnotationInstance: inst, pullsecret.AnnotationServiceARNs: svc, pullsecret.AnnotationUserARNs: usr}}}
		ref, _, err := parseSecret(s)
		if err == nil && (ref.RegionID == "" || ref.InstanceID == "") {
			t.Fatalf("parsed %q into %+v", inst, ref)
		}
	})
}
