package kubeletenv_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// TestKubeletPullsPodImage pushes an image to a docker-registry and has a real kubelet, registered with a
// real apiserver, pull it for a Pod; the kubelet's "Successfully pulled image" event is the proof.
func TestKubeletPullsPodImage(t *testing.T) {
	kube := kubeenv.Start(t, kubeenv.WithControllerManager())
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	kl := kubeletenv.Start(t, kube, ctrd)
	reg := registryenv.StartDocker(t, registryenv.Options{}) // plain HTTP on 127.0.0.1: containerd's default for loopback

	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "rig/app:v1", img, "", "")

	kube.CreateNamespace(t, "rig")
	tests := []struct {
		name, image string
		pulled      bool
	}{
		{"present", reg.Addr + "/rig/app:v1", true},
		{"missing", reg.Addr + "/rig/missing:v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := kl.Pod("rig", "pod-"+tt.name, tt.image)
			if err := kube.Client.Create(t.Context(), pod); err != nil {
				t.Fatal(err)
			}
			res, err := kubeletenv.WaitForPullEvent(t.Context(), kube.Client, pod)
			if err != nil {
				t.Fatalf("%v\nkubelet log tail:\n%s", err, tail(kl.Log()))
			}
			if res.Pulled != tt.pulled {
				t.Fatalf("pulled=%v (%s: %s), want %v", res.Pulled, res.Reason, res.Message, tt.pulled)
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
