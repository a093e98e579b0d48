package app

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
)

func imageStatusRequest(ref string) *runtimeapi.ImageStatusRequest {
	return &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}}
}

// BenchmarkImageCache measures, on the rig (apiserver, kubelet, containerd, the helper and the
// node's pre-puller), with a runnable image of about 300 MB (compressed) in a plain-HTTP
// htpasswd docker-registry reached by name:
//
//	ready-s       ImageCache creation → Ready (credentials, manifest, size check, CRI pull, report)
//	pod-pull-s    Pod creation → Succeeded when the kubelet pulls the image (no cache)
//	pod-cached-s  Pod creation → Succeeded when the image is cached ("already present")
//	ratio         pod-pull-s / pod-cached-s
//
// Run under the heavy-test lock: go test -run '^$' -bench BenchmarkImageCache -benchtime 3x (numbers in
// docs/imagecache.md).
func BenchmarkImageCache(b *testing.B) {
	const name = "bench-imagecache.ferry.test"
	r := startImageCacheRig(b, name)
	ctx := b.Context()
	const user, pass = "bench", "bench-password-1234"
	reg := registryenv.StartDocker(b, registryenv.Options{Users: map[string]string{user: pass}})
	big, err := random.Layer(300<<20, types.DockerLayer)
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(testimage.Hello(b, "bench"), big)
	if err != nil {
		b.Fatal(err)
	}
	reg.Push(b, "bench/big:v1", img, user, pass)
	host := name + ":" + portOf(reg.Addr)
	image := host + "/bench/big:v1"
	dockerSecret(b, r.c, "app", "bench-pull", host, user, pass)
	dockerSecret(b, r.c, "default", "bench-pull", host, user, pass)

	runPod := func(podName string, withSecret bool) time.Duration {
		b.Helper()
		pod := r.kl.Pod("app", podName, image)
		pod.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
		if withSecret {
			pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "bench-pull"}}
		}
		start := time.Now()
		if err := r.c.Create(ctx, pod); err != nil {
			b.Fatal(err)
		}
		imcPoll(b, 5*time.Minute, "pod "+podName, func() error {
			var p corev1.Pod
			if err := r.c.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
				return err
			}
			if p.Status.Phase == corev1.PodFailed {
				b.Fatalf("pod failed: %v", r.podEvents(b, pod))
			}
			if p.Status.Phase != corev1.PodSucceeded {
				return fmt.Errorf("phase %s", p.Status.Phase)
			}
			return nil
		})
		took := time.Since(start)
		b.Logf("pod %s: %v, events %v", podName, took, r.podEvents(b, pod))
		return took
	}

	var ready, pulled, cached time.Duration
	for i := range b.N {
		// Without the cache: the kubelet pulls (the node has the registry's hosts.toml).
		r.ctrd.WriteHostsTOML(b, host, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+host, "http://"+host))
		_ = r.ctrd.RemoveImage(ctx, image)
		pulled += runPod(fmt.Sprintf("pull-%d", i), true)
		r.deletePods(b)
		if err := r.ctrd.RemoveImage(ctx, image); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(r.ctrd.HostsDir, host)); err != nil { // the cache's annotation configures it again
			b.Fatal(err)
		}
		// The cache.
		ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", i),
			Annotations: map[string]string{annotations.PlainHTTPRegistry: host}},
			Spec: eciv1.ImageCacheSpec{Images: []string{image}, ImagePullSecrets: []string{"default:bench-pull"}}}
		start := time.Now()
		if err := r.c.Create(ctx, ic); err != nil {
			b.Fatal(err)
		}
		ic = r.waitPhase(b, ic.Name, eciv1.PhaseReady)
		ready += time.Since(start)
		b.Logf("cache %s: %d compressed bytes", ic.Name, ic.Status.CompressedSize)
		// The same pull secret: the kubelet has a pull record for this image id from the first
		// Pod, so KEP-2535 (1.37 default policy) verifies the Pod's credential before using it.
		cached += runPod(fmt.Sprintf("cached-%d", i), true)
		r.deletePods(b)
		if err := r.c.Delete(ctx, ic); err != nil {
			b.Fatal(err)
		}
		imcPoll(b, time.Minute, "image released", func() error {
			if st, _ := r.ctrd.Images.ImageStatus(ctx, imageStatusRequest(image)); st.GetImage() != nil {
				return fmt.Errorf("%s still present", image)
			}
			return nil
		})
	}
	n := float64(b.N)
	b.ReportMetric(ready.Seconds()/n, "ready-s")
	b.ReportMetric(pulled.Seconds()/n, "pod-pull-s")
	b.ReportMetric(cached.Seconds()/n, "pod-cached-s")
	b.ReportMetric(pulled.Seconds()/cached.Seconds(), "ratio")
}
