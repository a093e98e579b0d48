package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/annotations"
)

// recordedEvents captures Events in unit tests (the envtest tests check real ones).
type recordedEvents struct {
	mu   sync.Mutex
	list []string // "<kind>/<name> <type> <reason>: <note>"
}

func (r *recordedEvents) Eventf(regarding, _ runtime.Object, eventtype, reason, _, note string, args ...interface{}) {
	ref := regarding.(*corev1.ObjectReference)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, fmt.Sprintf("%s/%s %s %s: %s", ref.Kind, ref.Name, eventtype, reason, fmt.Sprintf(note, args...)))
}

// stubEnsurer stands in for the token machinery (another package's job): it
// names Secrets after the instance and chain, and fails for instances listed in deny.
type stubEnsurer struct {
	deny  map[string]error
	calls []string
}

func (s *stubEnsurer) EnsureInstanceSecret(_ context.Context, ns string, i annotations.InstanceRef, c annotations.RoleChain) (string, error) {
	s.calls = append(s.calls, ns+"/"+i.String()+"/"+c.String())
	if err, ok := s.deny[i.InstanceID]; ok {
		return "", err
	}
	name := "acr-pull-" + i.InstanceID
	if !c.Empty() {
		name += "-chain"
	}
	return name, nil
}

func podJSON(t *testing.T, p *corev1.Pod) []byte {
	t.Helper()
	p.APIVersion, p.Kind = "v1", "Pod"
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func request(raw []byte, op admissionv1.Operation) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: "app",
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Object: runtime.RawExtension{Raw: raw},
	}}
}

func apply(t *testing.T, raw []byte, resp admission.Response) *corev1.Pod {
	t.Helper()
	out := raw
	if len(resp.Patches) > 0 {
		pb, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jsonpatch.DecodePatch(pb)
		if err != nil {
			t.Fatal(err)
		}
		if out, err = p.Apply(raw); err != nil {
			t.Fatal(err)
		}
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func secretNames(p *corev1.Pod) []string {
	var s []string
	for _, r := range p.Spec.ImagePullSecrets {
		s = append(s, r.Name)
	}
	return s
}

func TestMutator(t *testing.T) {
	denied := fmt.Errorf("%w: cri-gone in cn-beijing", ErrUnknownInstance)
	tests := []struct {
		name        string
		policy      FailurePolicy
		ann         map[string]string
		nodeName    string
		existing    []string // user's imagePullSecrets
		owner       bool
		wantAllowed bool
		wantSecrets []string
		wantGate    bool
		wantLabel   bool
		wantCalls   []string
		wantMsg     string // in the denial or a warning
		wantEvent   string
	}{
		{name: "no annotations", wantAllowed: true},
		{name: "instance with region, user secrets kept", ann: map[string]string{annotations.AcrInstanceID: "cn-beijing:cri-aaa"},
			existing: []string{"mine"}, wantAllowed: true, wantSecrets: []string{"mine", "acr-pull-cri-aaa"},
			wantCalls: []string{"app/cn-beijing:cri-aaa/"}},
		{name: "plural list deduped against existing", ann: map[string]string{annotations.AcrInstanceIDs: "cri-aaa, cri-bbb,cri-aaa"},
			existing: []string{"acr-pull-cri-aaa"}, wantAllowed: true, wantSecrets: []string{"acr-pull-cri-aaa", "acr-pull-cri-bbb"}},
		{name: "cross-account chain", ann: map[string]string{annotations.AcrInstanceIDs: "cri-aaa",
			annotations.AcrServiceARNs: "acs:ram::111:role/role-assume", annotations.AcrUserARNs: "acs:ram::222:role/role-acr"},
			wantAllowed: true, wantSecrets: []string{"acr-pull-cri-aaa-chain"},
			wantCalls: []string{"app/cri-aaa/acs:ram::111:role/role-assume>acs:ram::222:role/role-acr"}},
		{name: "malformed instance, Ignore", policy: Ignore, ann: map[string]string{annotations.AcrInstanceID: "cri-a b"},
			wantAllowed: true, wantMsg: `annotation k8s.aliyun.com/acr-instance-id: value "cri-a b"`, wantEvent: "Pod/p Warning InvalidECIAnnotation"},
		{name: "malformed instance, Fail", policy: Fail, ann: map[string]string{annotations.AcrInstanceID: "cri-a b"},
			wantMsg: `annotation k8s.aliyun.com/acr-instance-id: value "cri-a b"`, wantEvent: "Pod/p Warning InvalidECIAnnotation"},
		{name: "unknown instance, Fail, event on owner", policy: Fail, owner: true, ann: map[string]string{annotations.AcrInstanceIDs: "cri-aaa,cri-gone"},
			wantMsg: `annotation k8s.aliyun.com/acr-instance-ids: value "cri-gone": unknown ACR instance`, wantEvent: "ReplicaSet/web-7d9f Warning ACRPullSecretFailed"},
		{name: "unknown instance, Ignore keeps the others", policy: Ignore, ann: map[string]string{annotations.AcrInstanceIDs: "cri-gone,cri-bbb"},
			wantAllowed: true, wantSecrets: []string{"acr-pull-cri-bbb"}, wantMsg: "cri-gone", wantEvent: "ACRPullSecretFailed"},
		{name: "bad arn", policy: Fail, ann: map[string]string{annotations.AcrInstanceIDs: "cri-aaa", annotations.AcrUserARNs: "acs:ram::1:user/x"},
			wantMsg: "k8s.aliyun.com/acr-user-arns"},
		{name: "plain http gates and labels", ann: map[string]string{annotations.PlainHTTPRegistry: "harbor.corp:5000"},
			wantAllowed: true, wantGate: true, wantLabel: true},
		{name: "bound at creation: label, no gate, warning", nodeName: "n1", ann: map[string]string{annotations.InsecureRegistry: "harbor.corp"},
			wantAllowed: true, wantLabel: true, wantMsg: ReasonBoundAtCreation},
		{name: "bad registry list, Fail", policy: Fail, ann: map[string]string{annotations.InsecureRegistry: "https://harbor.corp"},
			wantMsg: `annotation k8s.aliyun.com/insecure-registry: value "https://harbor.corp"`},
		{name: "bad registry list, Ignore: no gate", policy: Ignore, ann: map[string]string{annotations.InsecureRegistry: "https://harbor.corp"},
			wantAllowed: true, wantMsg: "without a scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ens := &stubEnsurer{deny: map[string]error{"cri-gone": denied}}
			rec := &recordedEvents{}
			m := NewMutator(Options{Ensurer: ens, FailurePolicy: tt.policy, Recorder: rec})
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "app", Annotations: tt.ann},
				Spec: corev1.PodSpec{NodeName: tt.nodeName, Containers: []corev1.Container{{Name: "c", Image: "harbor.corp:5000/x"}}}}
			if tt.owner {
				pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "u", Controller: ptr(true)}}
			}
			for _, s := range tt.existing {
				pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
			}
			raw := podJSON(t, pod)
			resp := m.Handle(t.Context(), request(raw, admissionv1.Create))
			if resp.Allowed != tt.wantAllowed {
				t.Fatalf("allowed = %v (%v), want %v", resp.Allowed, resp.Result, tt.wantAllowed)
			}
			msgs := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				msgs += "\n" + resp.Result.Message
			}
			if tt.wantMsg != "" && !strings.Contains(msgs, tt.wantMsg) {
				t.Fatalf("messages %q, want %q", msgs, tt.wantMsg)
			}
			if tt.wantEvent != "" && !strings.Contains(strings.Join(rec.list, "\n"), tt.wantEvent) {
				t.Fatalf("events %q, want %q", rec.list, tt.wantEvent)
			}
			if tt.wantCalls != nil && !slices.Equal(ens.calls, tt.wantCalls) {
				t.Fatalf("ensurer calls %v, want %v", ens.calls, tt.wantCalls)
			}
			if !resp.Allowed {
				return
			}
			got := apply(t, raw, resp)
			if want := tt.wantSecrets; want == nil {
				want = tt.existing
				if !slices.Equal(secretNames(got), want) {
					t.Fatalf("imagePullSecrets %v, want %v", secretNames(got), want)
				}
			} else if !slices.Equal(secretNames(got), want) {
				t.Fatalf("imagePullSecrets %v, want %v", secretNames(got), want)
			}
			if annotations.Gated(got) != tt.wantGate {
				t.Fatalf("gate %v, want %v", got.Spec.SchedulingGates, tt.wantGate)
			}
			if (got.Labels[annotations.RegistryConfigLabel] == "true") != tt.wantLabel {
				t.Fatalf("labels %v", got.Labels)
			}
		})
	}
}

func TestMutatorIgnoresOtherOperationsAndDryRun(t *testing.T) {
	ens := &stubEnsurer{}
	m := NewMutator(Options{Ensurer: ens, FailurePolicy: Fail})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{annotations.AcrInstanceID: "cri-aaa"}}}
	raw := podJSON(t, pod)
	if resp := m.Handle(t.Context(), request(raw, admissionv1.Update)); !resp.Allowed || len(resp.Patches) != 0 {
		t.Fatalf("update: %+v", resp)
	}
	req := request(raw, admissionv1.Create)
	req.DryRun = ptr(true)
	resp := m.Handle(t.Context(), req)
	if !resp.Allowed || len(ens.calls) != 0 || len(resp.Warnings) == 0 {
		t.Fatalf("dry run must not create Secrets: %+v calls %v", resp, ens.calls)
	}
	if resp := m.Handle(t.Context(), request([]byte("{"), admissionv1.Create)); resp.Allowed {
		t.Fatal("garbage admitted")
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrUnknownInstance), ErrUnknownInstance) {
		t.Fatal("sentinel")
	}
}

func TestNoEnsurerFollowsPolicy(t *testing.T) {
	raw := podJSON(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{annotations.AcrInstanceID: "cri-aaa"}}})
	if resp := NewMutator(Options{FailurePolicy: Fail}).Handle(t.Context(), request(raw, admissionv1.Create)); resp.Allowed {
		t.Fatal("Fail policy admitted a Pod whose instance cannot be served")
	}
	if resp := NewMutator(Options{}).Handle(t.Context(), request(raw, admissionv1.Create)); !resp.Allowed || len(resp.Warnings) == 0 {
		t.Fatalf("default Ignore: %+v", resp)
	}
}
