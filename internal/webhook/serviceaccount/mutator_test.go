package serviceaccount

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/pullsecret"
)

func TestMutator(t *testing.T) {
	saJSON, _ := json.Marshal(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "app"}})
	req := func(op admissionv1.Operation, kind string, raw []byte) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: op, Namespace: "app", Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
			Object: runtime.RawExtension{Raw: raw}}}
	}
	tests := []struct {
		name        string
		settings    *pullsecret.Settings
		req         admission.Request
		wantAllowed bool
		wantPatches int
	}{
		{name: "idle: unchanged", req: req(admissionv1.Create, "ServiceAccount", saJSON), wantAllowed: true},
		{name: "disabled: unchanged", settings: settings(false, "Ignore", 10), req: req(admissionv1.Create, "ServiceAccount", saJSON), wantAllowed: true},
		{name: "update: unchanged", settings: settings(true, "Ignore", 10), req: req(admissionv1.Update, "ServiceAccount", saJSON), wantAllowed: true},
		{name: "create: Secrets and annotation added", settings: settings(true, "Ignore", 10), req: req(admissionv1.Create, "ServiceAccount", saJSON), wantAllowed: true, wantPatches: 2},
		{name: "garbage object: rejected", settings: settings(true, "Ignore", 10), req: req(admissionv1.Create, "ServiceAccount", []byte("{")), wantAllowed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &pullsecret.Store{}
			store.Set(tt.settings)
			resp := (&Mutator{Policy: store}).Handle(t.Context(), tt.req)
			if resp.Allowed != tt.wantAllowed || len(resp.Patches) != tt.wantPatches {
				t.Errorf("allowed=%v patches=%v", resp.Allowed, resp.Patches)
			}
		})
	}
}
