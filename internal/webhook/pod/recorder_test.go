package pod

import (
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"

	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// newAPIRecorder returns an events.k8s.io recorder writing to env's apiserver.
func newAPIRecorder(t testing.TB, env *kubeenv.Env) events.EventRecorder {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(t.Context().Done())
	t.Cleanup(b.Shutdown)
	return b.NewRecorder(scheme.Scheme, "ferry-pod-webhook")
}
