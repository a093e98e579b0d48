package pod

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-containerregistry/pkg/v1/random"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// TestRegistryAnnotationsRealPull proves the registry annotations end to end
// with a real kubelet and containerd: the webhook gates the Pod, node-agent
// writes hosts.toml into containerd's config_path, the gate controller
// releases the Pod, the test binds it (as the scheduler would) and the kubelet
// pulls. Registry names are non-loopback names mapped to 127.0.0.1 in
// /etc/hosts, so containerd does not fall back to plain HTTP by itself.
func TestRegistryAnnotationsRealPull(t *testing.T) {
	log.SetLogger(testr.NewWithOptions(t, testr.Options{Verbosity: 0}))
	const httpName, tlsName, otherName = "harbor-http.ferry.test", "harbor-tls.ferry.test", "harbor-other.ferry.test"
	etchosts.Ensure(t, httpName, tlsName, otherName)
	kube := kubeenv.Start(t)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	kl := kubeletenv.Start(t, kube, ctrd)
	plain := registryenv.StartDocker(t, registryenv.Options{})
	secure := registryenv.StartDocker(t, registryenv.Options{TLS: true, Hosts: []string{tlsName}})
	for _, r := range []*registryenv.Registry{plain, secure} { // distinct content: no layer is shared between the pulls
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		r.Push(t, "app/web:v1", img, "", "")
	}
	port := func(r *registryenv.Registry) string { return r.Addr[strings.LastIndex(r.Addr, ":")+1:] }
	httpHost := httpName + ":" + port(plain)
	otherHost := otherName + ":" + port(plain)
	tlsHost := tlsName + ":" + port(secure)

	// A user's own hosts.toml for the TLS registry (no skip_verify): must survive byte for byte.
	userTOML := []byte("# operator-managed; ferry must not touch these bytes\nserver = \"https://" + tlsHost + "\"\n")
	ctrd.WriteHostsTOML(t, tlsHost, string(userTOML))

	ctx, c := t.Context(), kube.Client
	namespace(t, c, "app")
	StartWebhook(t, kube, Options{Recorder: newAPIRecorder(t, kube)})
	StartGate(t, kube)
	StartAgent(t, kube, kl.NodeName, ctrd.HostsDir, httpName, tlsName) // harbor-other is not allowed

	tests := []struct {
		name    string
		ann     map[string]string
		image   string
		bound   bool // created with spec.nodeName (no webhook ordering)
		pulled  bool
		wantErr string // substring of the kubelet's failure
	}{
		{name: "plain-http without annotation fails", image: httpHost + "/app/web:v1", bound: true, wantErr: "HTTP response to HTTPS client"},
		{name: "insecure without annotation fails", image: tlsHost + "/app/web:v1", bound: true, wantErr: "certificate"},
		{name: "plain-http outside the allow-list fails", ann: map[string]string{annotations.PlainHTTPRegistry: otherHost}, image: otherHost + "/app/web:v1", wantErr: "HTTP response to HTTPS client"},
		{name: "plain-http-registry pulls", ann: map[string]string{annotations.PlainHTTPRegistry: httpHost}, image: httpHost + "/app/web:v1", pulled: true},
		{name: "insecure-registry pulls", ann: map[string]string{annotations.InsecureRegistry: tlsHost}, image: tlsHost + "/app/web:v1", pulled: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := kl.Pod("app", fmt.Sprintf("pull-%d", i), tt.image)
			pod.Annotations = tt.ann
			if !tt.bound {
				pod.Spec.NodeName = ""
			}
			if err := c.Create(ctx, pod); err != nil {
				t.Fatal(err)
			}
			if !tt.bound {
				if !annotations.Gated(pod) {
					t.Fatalf("webhook did not gate the pod: %v", pod.Spec.SchedulingGates)
				}
				waitUngated(ctx, t, c, pod, "gate released")
				// Act as the scheduler.
				bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: pod.Name},
					Target: corev1.ObjectReference{Kind: "Node", Name: kl.NodeName}}
				if err := c.SubResource("binding").Create(ctx, pod, bind); err != nil {
					t.Fatal(err)
				}
			}
			expectPull(ctx, t, c, ctrd, pod, tt.pulled, tt.wantErr)
		})
	}

	t.Run("pre-existing hosts.toml restored byte for byte once no Pod needs the entry", func(t *testing.T) {
		path := filepath.Join(ctrd.HostsDir, tlsHost, hostsconfig.FileName)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, userTOML) || !strings.Contains(string(got), "skip_verify = true") {
			t.Fatalf("while in use the file is\n%s", got)
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("app")); err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			if err := c.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0)); err != nil {
				t.Fatal(err)
			}
		}
		poll.Until(t, "user file restored", func() error {
			got, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, userTOML) {
				return fmt.Errorf("file is\n%s", got)
			}
			if _, err := os.Stat(filepath.Join(ctrd.HostsDir, httpHost)); !os.IsNotExist(err) {
				return fmt.Errorf("ferry-created dir for %s still there (%v)", httpHost, err)
			}
			return nil
		})
	})
}

// expectPull waits for the kubelet's pull Event for pod and fails the test
// unless the image was pulled (pulled) or the pull failed with a message
// containing wantErr; on a wait error it shows the containerd log tail.
func expectPull(ctx context.Context, t *testing.T, c client.Client, ctrd *containerdenv.Containerd, pod *corev1.Pod, pulled bool, wantErr string) {
	t.Helper()
	res, err := kubeletenv.WaitForPullEvent(ctx, c, pod)
	if err != nil {
		t.Fatalf("%v\ncontainerd log tail:\n%s", err, tail(ctrd.Log(), 20))
	}
	if res.Pulled != pulled || (wantErr != "" && !strings.Contains(res.Message, wantErr)) {
		t.Fatalf("pulled=%v %s: %s; want pulled=%v error containing %q", res.Pulled, res.Reason, res.Message, pulled, wantErr)
	}
	t.Logf("kubelet: %s: %s", res.Reason, res.Message)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
