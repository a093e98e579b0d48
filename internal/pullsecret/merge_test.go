package pullsecret

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func refs(names ...string) []corev1.LocalObjectReference {
	var out []corev1.LocalObjectReference
	for _, n := range names {
		out = append(out, corev1.LocalObjectReference{Name: n})
	}
	return out
}

func TestMergePullSecrets(t *testing.T) {
	tests := []struct {
		name            string
		current         []string
		owned, desired  []string
		want, wantOwned []string
	}{
		{name: "empty SA", desired: []string{"a", "b"}, want: []string{"a", "b"}, wantOwned: []string{"a", "b"}},
		{name: "user entries kept first", current: []string{"u1", "u2"}, desired: []string{"a"}, want: []string{"u1", "u2", "a"}, wantOwned: []string{"a"}},
		{name: "already merged is stable", current: []string{"u1", "a", "u2"}, owned: []string{"a"}, desired: []string{"a"}, want: []string{"u1", "a", "u2"}, wantOwned: []string{"a"}},
		{name: "drop only ferry's entry", current: []string{"u1", "a", "b", "u2"}, owned: []string{"a", "b"}, desired: []string{"b"}, want: []string{"u1", "b", "u2"}, wantOwned: []string{"b"}},
		{name: "user's own entry with ferry's name is not claimed", current: []string{"a"}, desired: []string{"a"}, want: []string{"a"}, wantOwned: nil},
		{name: "user's entry survives removal", current: []string{"a"}, desired: nil, want: []string{"a"}, wantOwned: nil},
		{name: "remove all ferry entries", current: []string{"a", "u", "b"}, owned: []string{"a", "b"}, want: []string{"u"}, wantOwned: nil},
		{name: "owned but deleted by the user is re-added", current: []string{"u"}, owned: []string{"a"}, desired: []string{"a"}, want: []string{"u", "a"}, wantOwned: []string{"a"}},
		{name: "duplicates left alone", current: []string{"u", "u"}, desired: []string{"a"}, want: []string{"u", "u", "a"}, wantOwned: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, owned := mergePullSecrets(refs(tt.current...), tt.owned, tt.desired)
			var names []string
			for _, r := range got {
				names = append(names, r.Name)
			}
			if !slices.Equal(names, tt.want) || !slices.Equal(owned, tt.wantOwned) {
				t.Errorf("got %v owned %v, want %v owned %v", names, owned, tt.want, tt.wantOwned)
			}
		})
	}
}

func TestApplyToServiceAccount(t *testing.T) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"keep": "me"}}, ImagePullSecrets: refs("u")}
	if changed, added, removed := ApplyToServiceAccount(sa, []string{"a", "b"}); !changed || added != 2 || removed != 0 {
		t.Fatalf("first apply: changed=%v added=%d removed=%d", changed, added, removed)
	}
	if sa.Annotations[AnnotationPullSecrets] != "a,b" || sa.Annotations["keep"] != "me" {
		t.Fatalf("annotations %v", sa.Annotations)
	}
	if changed, _, _ := ApplyToServiceAccount(sa, []string{"a", "b"}); changed {
		t.Fatal("second apply changed the SA")
	}
	if changed, added, removed := ApplyToServiceAccount(sa, nil); !changed || added != 0 || removed != 2 {
		t.Fatalf("removal: changed=%v added=%d removed=%d", changed, added, removed)
	}
	if _, ok := sa.Annotations[AnnotationPullSecrets]; ok || len(sa.ImagePullSecrets) != 1 {
		t.Fatalf("after removal: %v %v", sa.Annotations, sa.ImagePullSecrets)
	}
}

func TestSecretName(t *testing.T) {
	tests := []struct {
		inst Instance
		want string
	}{
		{Instance{ID: "cri-abc123"}, "acr-pull-cri-abc123"},
		{Instance{ID: "CRI-ABC"}, "acr-pull-cri-abc"},
		{Instance{Region: "cn-hangzhou"}, "acr-pull-personal-cn-hangzhou"},
		{Instance{ID: "bad/name"}, "acr-pull-"},              // hashed: prefix + 16 hex digits
		{Instance{ID: strings.Repeat("x", 80)}, "acr-pull-"}, // too long for a label: hashed
	}
	for _, tt := range tests {
		got := SecretName(tt.inst)
		if tt.want == "acr-pull-" {
			if len(got) != len("acr-pull-")+16 || !strings.HasPrefix(got, "acr-pull-") {
				t.Errorf("SecretName(%q) = %q, want a hashed name", tt.inst.Key(), got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("SecretName(%q) = %q, want %q", tt.inst.Key(), got, tt.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	dup := &Settings{ExpiringThreshold: 1, Instances: []Instance{{ID: "cri-a"}, {ID: "CRI-A"}}}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "acr-registry-info[1]") {
		t.Errorf("duplicate instance: %v", err)
	}
	if err := (&Settings{}).Validate(); err == nil || !strings.Contains(err.Error(), "expiring-threshold") {
		t.Errorf("zero threshold: %v", err)
	}
}

func TestParseNameSet(t *testing.T) {
	s := ParseNameSet(" default, builder ,,default", "*")
	if s.All || !slices.Equal(s.Names, []string{"default", "builder"}) || !s.Has("builder") || s.Has("x") {
		t.Errorf("%+v", s)
	}
	if !ParseNameSet("*", "*").Has("anything") || !ParseNameSet("all", "all").Has("x") {
		t.Error("all word not honoured")
	}
}

func TestTokenNeverPrintsPassword(t *testing.T) {
	tok := Token{Username: "cr_temp_user", Password: "s3cr3t"}
	if strings.Contains(tok.String(), "s3cr3t") || strings.Contains(tok.LogValue().String(), "s3cr3t") {
		t.Error("password printed")
	}
}
