package imagecache

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

func pod(ann map[string]string, images ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p", Annotations: ann}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('a'+i)), Image: img})
	}
	return p
}

// admit runs the handler on pod and returns the response and the patched Pod.
func admit(t *testing.T, m *Mutator, p *corev1.Pod) (admission.Response, *corev1.Pod) {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	resp := m.Handle(t.Context(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw}}})
	if !resp.Allowed || len(resp.Patches) == 0 {
		return resp, p
	}
	patch, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	jp, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jp.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return resp, &got
}

type cacheDef struct {
	name, id string
	phase    eciv1.Phase
	images   map[string]int64
}

// TestWebhook runs the handler against ImageCaches stored in a real apiserver.
func TestWebhook(t *testing.T) {
	env := kubeenv.Start(t, kubeenv.WithCRDs(filepath.Join("..", "..", "..", "config", "crd", "bases")))
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = eciv1.AddToScheme(s)
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []cacheDef{
		{name: "web", id: "imc-web0000000000000001", phase: eciv1.PhaseReady, images: map[string]int64{"nginx:1.25": 50, "docker.io/library/redis:7": 30}},
		{name: "web-big", id: "imc-webbig000000000000002", phase: eciv1.PhaseReady, images: map[string]int64{"docker.io/library/nginx:1.25": 500}},
		{name: "app-old", id: "imc-appold000000000000003", phase: eciv1.PhaseReady, images: map[string]int64{"reg.corp:5000/team/app:v1": 10}},
		{name: "app-new", id: "imc-appnew000000000000004", phase: eciv1.PhaseReady, images: map[string]int64{"reg.corp:5000/team/app:v1": 10}},
		{name: "building", id: "imc-building00000000000005", phase: eciv1.PhaseCreating, images: map[string]int64{"busybox": 1}},
		{name: "broken", id: "imc-broken0000000000000006", phase: eciv1.PhaseFailed, images: map[string]int64{"busybox": 1}},
	} {
		ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: d.name}}
		for img := range d.images {
			ic.Spec.Images = append(ic.Spec.Images, img)
		}
		if err := c.Create(t.Context(), ic); err != nil {
			t.Fatal(err)
		}
		ic.Status = eciv1.ImageCacheStatus{Phase: d.phase, ImageCacheID: d.id, Progress: "50%"}
		if d.phase == eciv1.PhaseFailed {
			ic.Status.Reason, ic.Status.Message = "SizeExceeded", "the images need 30 GiB"
		}
		for img, size := range d.images {
			ic.Status.Images = append(ic.Status.Images, eciv1.ImageStatus{Image: img, CompressedSize: size})
		}
		if err := c.Status().Update(t.Context(), ic); err != nil {
			t.Fatal(err)
		}
	}
	m := &Mutator{Client: c}
	label := func(id string) string { return annotations.ImageCacheNodeLabel(id) }

	for _, tt := range []struct {
		name      string
		pod       *corev1.Pod
		denied    string // substring of the denial; "" = allowed
		matched   string // eci-matched-image-cache; "" = none
		required  bool
		preferred bool
	}{
		{name: "no annotations", pod: pod(nil, "nginx:1.25")},
		{name: "explicit ready", pod: pod(map[string]string{annotations.EciImcID: "imc-appold000000000000003"}, "busybox"),
			matched: "imc-appold000000000000003", required: true},
		{name: "legacy explicit", pod: pod(map[string]string{annotations.EciImageSnapshotID: "imc-web0000000000000001"}, "nginx"),
			matched: "imc-web0000000000000001", required: true},
		{name: "explicit wins over auto", pod: pod(map[string]string{annotations.EciImcID: "imc-appold000000000000003", annotations.EciAutoImc: "true"}, "nginx:1.25"),
			matched: "imc-appold000000000000003", required: true},
		{name: "explicit creating", pod: pod(map[string]string{annotations.EciImcID: "imc-building00000000000005"}, "busybox"),
			denied: "annotation k8s.aliyun.com/eci-imc-id: image cache imc-building00000000000005 (ImageCache building) is Creating, not Ready, progress 50%"},
		{name: "explicit failed", pod: pod(map[string]string{annotations.EciImcID: "imc-broken0000000000000006"}, "busybox"),
			denied: "is Failed, not Ready, progress 50%; SizeExceeded: the images need 30 GiB"},
		{name: "explicit unknown", pod: pod(map[string]string{annotations.EciImcID: "imc-nope"}, "busybox"), denied: `image cache "imc-nope" does not exist`},
		{name: "explicit malformed", pod: pod(map[string]string{annotations.EciImcID: "IMC 1"}, "busybox"), denied: `value "IMC 1" is not an image cache id`},
		{name: "auto: more images win", pod: pod(map[string]string{annotations.EciAutoImc: "true"}, "nginx:1.25", "redis:7"), matched: "imc-web0000000000000001", preferred: true},
		{name: "auto: then size", pod: pod(map[string]string{annotations.EciAutoImc: "true"}, "nginx:1.25"), matched: "imc-webbig000000000000002", preferred: true},
		{name: "auto: legacy annotation", pod: pod(map[string]string{annotations.EciImageCache: "true"}, "redis:7"), matched: "imc-web0000000000000001", preferred: true},
		{name: "auto: perfect match needs every image", pod: pod(map[string]string{annotations.EciAutoImc: "true", annotations.ImcPerfectMatch: "true"}, "nginx:1.25", "busybox")},
		{name: "auto: perfect match", pod: pod(map[string]string{annotations.EciAutoImc: "true", annotations.ImcPerfectMatch: "true"}, "nginx:1.25", "redis:7"),
			matched: "imc-web0000000000000001", preferred: true},
		{name: "auto: count request not met", pod: pod(map[string]string{annotations.EciAutoImc: "true", annotations.ImcMatchCountRequest: "2"}, "nginx:1.25", "busybox")},
		{name: "auto: not-ready caches never match", pod: pod(map[string]string{annotations.EciAutoImc: "true"}, "busybox")},
		{name: "auto false", pod: pod(map[string]string{annotations.EciAutoImc: "false"}, "nginx:1.25")},
		{name: "auto malformed", pod: pod(map[string]string{annotations.EciAutoImc: "yes please"}, "nginx"), denied: `annotation k8s.aliyun.com/eci-auto-imc: value "yes please"`},
		{name: "count malformed", pod: pod(map[string]string{annotations.EciAutoImc: "true", annotations.ImcMatchCountRequest: "0"}, "nginx"),
			denied: `annotation k8s.aliyun.com/imc-match-count-request: value "0"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := admit(t, m, tt.pod)
			if tt.denied != "" {
				if resp.Allowed || !strings.Contains(resp.Result.Message, tt.denied) {
					t.Fatalf("allowed=%v message %q, want denial containing %q", resp.Allowed, resp.Result.Message, tt.denied)
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %s", resp.Result.Message)
			}
			if m := got.Annotations[annotations.EciMatchedImageCache]; m != tt.matched {
				t.Fatalf("matched %q, want %q", m, tt.matched)
			}
			na := got.Spec.Affinity
			var req, pref bool
			if na != nil && na.NodeAffinity != nil {
				if r := na.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
					for _, term := range r.NodeSelectorTerms {
						req = req || hasRequirement(term.MatchExpressions, requirement(tt.matched))
					}
				}
				for _, p := range na.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
					pref = pref || p.Weight == preferredWeight && hasRequirement(p.Preference.MatchExpressions, requirement(tt.matched))
				}
			}
			if req != tt.required || pref != tt.preferred {
				t.Fatalf("required %v preferred %v (label %s), affinity %+v", req, pref, label(tt.matched), na)
			}
		})
	}

	// The required term is added to every existing term (they are ORed) and never twice.
	p := pod(map[string]string{annotations.EciImcID: "imc-web0000000000000001"}, "nginx")
	p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}},
		}}}}
	_, once := admit(t, m, p)
	_, twice := admit(t, m, once)
	for _, got := range []*corev1.Pod{once, twice} {
		terms := got.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 2 || len(terms[0].MatchExpressions) != 2 || len(terms[1].MatchExpressions) != 2 {
			t.Fatalf("terms %+v", terms)
		}
	}
}

// TestBestPrefersNewestOnTies: equal count and size → the newest cache (then the name).
func TestBestPrefersNewestOnTies(t *testing.T) {
	now := time.Now()
	mk := func(name string, created time.Time) eciv1.ImageCache {
		return eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
			Status: eciv1.ImageCacheStatus{Phase: eciv1.PhaseReady, ImageCacheID: "imc-" + name, Images: []eciv1.ImageStatus{{Image: "reg.corp/app:v1", CompressedSize: 10}}}}
	}
	caches := []eciv1.ImageCache{mk("old", now.Add(-time.Hour)), mk("new", now), mk("mid", now.Add(-time.Minute)), mk("anew", now)}
	if got := best(caches, []string{"reg.corp/app:v1"}, &selection{minCount: 1}); got == nil || got.Name != "anew" {
		t.Fatalf("best = %v, want anew (newest, then by name)", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("imc-abc", "true", "true", "2")
	f.Add("", "false", "x", "-1")
	f.Fuzz(func(t *testing.T, id, auto, perfect, count string) {
		ann := map[string]string{annotations.EciAutoImc: auto, annotations.ImcPerfectMatch: perfect, annotations.ImcMatchCountRequest: count}
		if id != "" {
			ann[annotations.EciImcID] = id
		}
		s, err := parse(ann)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "annotation k8s.aliyun.com/") || len(err.Error()) > 512 {
				t.Fatalf("error does not name the annotation or is unbounded: %v", err)
			}
			return
		}
		if s != nil && s.explicit != "" && !validID(s.explicit) {
			t.Fatalf("accepted id %q", s.explicit)
		}
	})
}
