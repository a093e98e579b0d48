// Package kubeletenv runs a real kubelet (built from the same Kubernetes version as the envtest apiserver)
// registered as a node of a kubeenv control plane and using a containerdenv containerd, so tests can observe
// real image pulls of Pods bound to it by spec.nodeName.
package kubeletenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// lockPath serialises kubelets across test processes: a kubelet uses host-global paths
// (/var/lib/kubelet/device-plugins, /var/log/containers) and the kubepods cgroups.
const lockPath = "/tmp/ferry-kubelet.lock"

// Kubelet is a running kubelet.
type Kubelet struct {
	NodeName string
	Dir      string
	LogPath  string
}

// Option configures Start.
type Option func(*options)

type options struct {
	credProviderConfig, credProviderBinDir string
}

// WithCredentialProvider starts the kubelet with --image-credential-provider-config config and
// --image-credential-provider-bin-dir binDir: it then runs the exec plugins named in config
// (kubelet.config.k8s.io/v1 CredentialProviderConfig) for matching images.
func WithCredentialProvider(config, binDir string) Option {
	return func(o *options) { o.credProviderConfig, o.credProviderBinDir = config, binDir }
}

// Start starts a kubelet for node "ferry-node-<pid>" and waits until its Node object exists.
func Start(t testing.TB, kube *kubeenv.Env, ctrd *containerdenv.Containerd, opts ...Option) *Kubelet {
	t.Helper()
	tools.Rig(t, "a kubelet")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := tools.Env("FERRY_KUBELET")
	if _, err := os.Stat(bin); bin == "" || err != nil {
		tools.Require(t, "kubelet binary unavailable (FERRY_KUBELET=%q; run `make tools`)", bin)
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lockPath, err)
	}
	t.Cleanup(func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); _ = lock.Close() })

	dir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{NodeName: fmt.Sprintf("ferry-node-%d", os.Getpid()), Dir: dir, LogPath: filepath.Join(dir, "kubelet.log")}
	user, err := kube.Env.AddUser(envtest.User{Name: "system:node:" + k.NodeName, Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		t.Fatalf("kubelet user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	port, healthz := tools.FreePort(t), tools.FreePort(t)
	for _, d := range []string{"root", "pod-logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
podLogsDir: %[1]s
syncFrequency: 2s
fileCheckFrequency: 2s
failSwapOn: false
failCgroupV1: false
cgroupDriver: cgroupfs
address: 127.0.0.1
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%[4]s
imageServiceEndpoint: unix://%[4]s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "0%%", imagefs.available: "0%%"}
localStorageCapacityIsolation: false
resolvConf: ""
registerNode: true
serializeImagePulls: false
# tests pull the same image many times with imagePullPolicy Always; the default 5 pulls/s limit would
# fail pulls with "pull QPS exceeded" (0 = no limit)
registryPullQPS: 0
`, filepath.Join(dir, "pod-logs"), port, healthz, ctrd.Socket)
	cfgPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{bin, "--config", cfgPath, "--kubeconfig", kcPath,
		"--root-dir", filepath.Join(dir, "root"), "--cert-dir", filepath.Join(dir, "root", "pki"),
		"--hostname-override", k.NodeName, "--node-ip", "127.0.0.1", "--v=2"}
	if o.credProviderConfig != "" {
		argv = append(argv, "--image-credential-provider-config", o.credProviderConfig, "--image-credential-provider-bin-dir", o.credProviderBinDir)
	}
	proc := tools.StartProcess(t, "kubelet", k.LogPath, argv...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
		defer cancel()
		// Delete pods on this node first so the kubelet tears down their sandboxes itself.
		var pods corev1.PodList
		if err := kube.Client.List(ctx, &pods); err == nil {
			for i := range pods.Items {
				if pods.Items[i].Spec.NodeName == k.NodeName {
					_ = kube.Client.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0))
				}
			}
		}
		proc.Stop()
		containerdenv.UnmountUnder(dir)
		containerdenv.RemoveEmptyCgroups("kubepods")
		// host-global paths the kubelet hard-codes; removed only when empty
		_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
		for _, d := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers", "/var/log/pods"} {
			_ = os.Remove(d)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})

	err = tools.Poll(t.Context(), 60*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		var node corev1.Node
		return kube.Client.Get(ctx, client.ObjectKey{Name: k.NodeName}, &node) == nil, proc.Exited()
	})
	if err != nil {
		tools.Broken(t, "kubelet did not register node %s: %v\n%s", k.NodeName, err, lastLines(k.Log(), 40))
	}
	return k
}

// Log returns the kubelet log so far.
func (k *Kubelet) Log() string {
	b, _ := os.ReadFile(k.LogPath)
	return string(b)
}

// Pod returns a minimal Pod bound to this node that runs image with imagePullPolicy Always.
func (k *Kubelet) Pod(namespace, name, image string) *corev1.Pod {
	f := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			NodeName:                      k.NodeName,
			HostNetwork:                   true,
			AutomountServiceAccountToken:  &f,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "app", Image: image, ImagePullPolicy: corev1.PullAlways,
			}},
		},
	}
}

// PullResult is the kubelet's verdict on a Pod's image.
type PullResult struct {
	Pulled  bool   // "Successfully pulled image …" was reported
	Reason  string // event reason (Pulled, Failed, …)
	Message string
}

// WaitForPullEvent waits until the kubelet reports a pull success (reason Pulled) or a pull failure
// (reason Failed / ErrImagePull) for the pod, and returns it.
func WaitForPullEvent(ctx context.Context, c client.Client, pod *corev1.Pod) (PullResult, error) {
	var res PullResult
	err := tools.Poll(ctx, 90*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace(pod.Namespace)); err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Kind != "Pod" || e.InvolvedObject.Name != pod.Name || (pod.UID != "" && e.InvolvedObject.UID != pod.UID) {
				continue
			}
			switch {
			case e.Reason == "Pulled" && strings.Contains(e.Message, "Successfully pulled image"):
				res = PullResult{Pulled: true, Reason: e.Reason, Message: e.Message}
				return true, nil
			case e.Reason == "Failed" && strings.Contains(e.Message, "Failed to pull image"):
				res = PullResult{Reason: e.Reason, Message: e.Message}
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return PullResult{}, fmt.Errorf("no pull event for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
