package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/controller/imagecache"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/nodeagent/prepull"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
	"github.com/ferrypull/ferry/internal/testutil/tools"
	imagecachewebhook "github.com/ferrypull/ferry/internal/webhook/imagecache"
)

var crdDir = filepath.Join("..", "..", "..", "config", "crd", "bases")

// imcRig is the whole stack: apiserver, acr-emulator, containerd, a kubelet, the real helper
// (ImageCache controller and webhooks) and the node's pre-puller.
type imcRig struct {
	kube *kubeenv.Env
	emu  *emulatorenv.Env
	ctrd *containerdenv.Containerd
	kl   *kubeletenv.Kubelet
	c    client.Client
}

func imcScheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eciv1.AddToScheme, ferryv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func startImageCacheRig(t testing.TB, registryNames ...string) *imcRig {
	t.Helper()
	kube := kubeenv.Start(t, kubeenv.WithCRDs(crdDir))
	emu := emulatorenv.Start(t, emulatorenv.Options{})
	names := slices.Clone(registryNames)
	for d := range emu.Domains() {
		names = append(names, d)
	}
	etchosts.Ensure(t, names...)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	// The node trusts the cloud's CA (real ACR has public certificates): node setup, not ferry's job.
	for _, in := range emu.Info.Instances {
		for _, d := range in.Domains {
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, emu.Info.CAFile))
		}
	}
	kl := kubeletenv.Start(t, kube, ctrd)
	c, err := client.New(kube.Config, client.Options{Scheme: imcScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &imcRig{kube: kube, emu: emu, ctrd: ctrd, kl: kl, c: c}
	logs := startImageCacheHelper(t, kube, emu)
	imcPoll(t, 60*time.Second, "ImageCache webhook in the MutatingWebhookConfiguration", func() error {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := kube.Client.Get(t.Context(), client.ObjectKey{Name: "ferry-acr-credential-helper"}, mwc); err != nil {
			return fmt.Errorf("%w; helper log tail:\n%s", err, tail(logs.String(), 2000))
		}
		for _, w := range mwc.Webhooks {
			if w.Name == imagecachewebhook.WebhookName && w.ClientConfig.URL != nil && strings.HasSuffix(*w.ClientConfig.URL, imagecachewebhook.Path) {
				return nil
			}
		}
		return fmt.Errorf("%d webhooks, none %s", len(mwc.Webhooks), imagecachewebhook.WebhookName)
	})
	r.startPrePull(t, registryNames)
	return r
}

// startImageCacheHelper runs the real helper as startPodWebhookHelper does (alibaba-addon-secret =
// account A's admin, --region cn-hangzhou, the webhook through --webhook-url), for tests and
// benchmarks.
func startImageCacheHelper(t testing.TB, kube *kubeenv.Env, emu *emulatorenv.Env) *logbuf.Buffer {
	t.Helper()
	ctx := t.Context()
	admin := emu.User(t, world.DemoAccountA, "admin")
	o := DefaultOptions()
	o.Kubeconfig, o.Region, o.Namespace = kube.KubeconfigPath, "cn-hangzhou", "ferry-system"
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
			Data: map[string][]byte{"access-key-id": []byte(admin.AccessKeyID), "access-key-secret": []byte(admin.AccessKeySecret)}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}}, // no controller-manager runs
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}},
	} {
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	port := tools.FreePort(t)
	o.CloudDialAddr, o.STSEndpoint, o.CAFile = emu.Info.OpenAPITLSEndpoint, emu.Info.OpenAPITLSEndpoint, emu.Info.CAFile
	o.MetricsAddr, o.HealthAddr, o.Verbosity = "0", "0", 1
	o.WebhookPort, o.WebhookHost, o.WebhookURL = port, "127.0.0.1", "https://127.0.0.1:"+strconv.Itoa(port)
	o.skipNameValidation = true
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- run(hctx, o, operator.Streams{Out: io.Discard, Err: logs}, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("helper: %v", err)
		}
	})
	return logs
}

func imcPoll(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	last := context.DeadlineExceeded
	if err := tools.Poll(t.Context(), timeout, 100*time.Millisecond, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	}); err != nil {
		t.Fatalf("%s: %v", what, last)
	}
}

// startPrePull runs node-agent's pre-puller for the kubelet's node, as `node-agent
// --image-cache --allowed-registries=<names>` does.
func (r *imcRig) startPrePull(t testing.TB, allowed []string) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		log.SetLogger(testr.New(tt))
	}
	allow, err := hostsconfig.ParseAllowlist(allowed)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(r.kube.Config, ctrl.Options{
		Scheme: imcScheme(t), Cache: cache.Options{ByObject: prepull.CacheByObject(r.kl.NodeName, "ferry-system")},
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := prepull.New(mgr.GetClient(), prepull.Options{NodeName: r.kl.NodeName, Runtime: prepull.NewRuntime(r.ctrd.Images, r.ctrd.Runtime),
		Hosts: hostsconfig.New(r.ctrd.HostsDir), Allowlist: allow, CredentialsNamespace: "ferry-system"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (r *imcRig) kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(kubeenv.Assets(), "kubectl"), append([]string{"--kubeconfig", r.kube.KubeconfigPath}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (r *imcRig) cache(t testing.TB, name string) *eciv1.ImageCache {
	t.Helper()
	var ic eciv1.ImageCache
	if err := r.c.Get(t.Context(), client.ObjectKey{Name: name}, &ic); err != nil {
		t.Fatal(err)
	}
	return &ic
}

// waitPhase waits until the cache reaches phase (any other terminal phase fails at once).
func (r *imcRig) waitPhase(t testing.TB, name string, phase eciv1.Phase) *eciv1.ImageCache {
	t.Helper()
	var ic *eciv1.ImageCache
	imcPoll(t, 120*time.Second, "ImageCache "+name+" "+string(phase), func() error {
		ic = r.cache(t, name)
		if ic.Status.Phase == phase {
			return nil
		}
		if p := ic.Status.Phase; p == eciv1.PhaseFailed || p == eciv1.PhaseReady {
			t.Fatalf("%s is %s, want %s: %s: %s (nodes %+v)", name, p, phase, ic.Status.Reason, ic.Status.Message, ic.Status.Nodes)
		}
		return fmt.Errorf("phase %q progress %q nodes %+v", ic.Status.Phase, ic.Status.Progress, ic.Status.Nodes)
	})
	return ic
}

func (r *imcRig) criImages(t testing.TB) []string {
	t.Helper()
	resp, err := r.ctrd.Images.ListImages(t.Context(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, im := range resp.Images {
		out = append(out, im.RepoTags...)
	}
	return out
}

// podEvents returns "reason: message" lines of the Pod's Events.
func (r *imcRig) podEvents(t testing.TB, pod *corev1.Pod) []string {
	t.Helper()
	var list corev1.EventList
	if err := r.c.List(t.Context(), &list, client.InNamespace(pod.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.UID == pod.UID {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// runFromCache starts a Pod (imagePullPolicy IfNotPresent, no imagePullSecrets) on the node
// and checks that the kubelet found the image on the machine, pulled nothing and ran it.
func (r *imcRig) runFromCache(t testing.TB, name, image string, ann map[string]string) {
	t.Helper()
	pod := r.kl.Pod("app", name, image)
	pod.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	pod.Annotations = ann
	if err := r.c.Create(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.c.Delete(context.WithoutCancel(t.Context()), pod, client.GracePeriodSeconds(0)) })
	imcPoll(t, 90*time.Second, "Pod "+name+" succeeded", func() error {
		var p corev1.Pod
		if err := r.c.Get(t.Context(), client.ObjectKeyFromObject(pod), &p); err != nil {
			return err
		}
		if p.Status.Phase == corev1.PodFailed {
			t.Fatalf("pod failed: %+v events %v", p.Status, r.podEvents(t, pod))
		}
		if p.Status.Phase != corev1.PodSucceeded {
			return fmt.Errorf("phase %s, events %v", p.Status.Phase, r.podEvents(t, pod))
		}
		return nil
	})
	evs := strings.Join(r.podEvents(t, pod), "\n")
	if !strings.Contains(evs, "already present on machine") || strings.Contains(evs, "Pulling") {
		t.Fatalf("the kubelet pulled instead of using the cache:\n%s", evs)
	}
}

func (r *imcRig) deletePods(t testing.TB) {
	t.Helper()
	if err := r.c.DeleteAllOf(t.Context(), &corev1.Pod{}, client.InNamespace("app"), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	imcPoll(t, 60*time.Second, "pods and their containers gone", func() error {
		var pods corev1.PodList
		if err := r.c.List(t.Context(), &pods, client.InNamespace("app")); err != nil {
			return err
		}
		resp, err := r.ctrd.Runtime.ListContainers(t.Context(), &runtimeapi.ListContainersRequest{})
		if err != nil {
			return err
		}
		if len(pods.Items)+len(resp.Containers) > 0 {
			return fmt.Errorf("%d pods, %d containers", len(pods.Items), len(resp.Containers))
		}
		return nil
	})
}

func dockerSecret(t testing.TB, c client.Client, ns, name, host, user, pass string) {
	t.Helper()
	cfg := dockercfg.New()
	cfg.Set(user, pass, host)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg.Render()}}
	if err := c.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// TestImageCacheOnRealNode is issue 11's acceptance run on the rig:
//   - the seed's two ImageCache manifests (plain-HTTP and self-signed HTTPS docker-registries
//     with htpasswd users, imagePullSecrets as namespace:name), applied with kubectl with only
//     the masked registry hosts filled in, reach Ready and 100%; the image is in the node's
//     containerd; a Pod with the image and no pull secret then starts with the kubelet's
//     "already present on machine" and no pull; a Pod naming the cache with eci-imc-id gets the
//     required affinity and runs on the labelled node; deleting the cache removes the image;
//   - a private acr-emulator image cached through acr-instance-ids reaches Ready;
//   - an image over imageCacheSize fails with SizeExceeded, a wrong secret fails naming the
//     image, and a Pod naming a cache that is not Ready is refused with a clear message.
func TestImageCacheOnRealNode(t *testing.T) {
	const plainName, tlsName = "plain-imagecache.ferry.test", "tls-imagecache.ferry.test"
	r := startImageCacheRig(t, plainName, tlsName)
	ctx := t.Context()
	const user, pass = "robot$imc", "s3cr$t-imagecache-seed"
	plainReg := registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{user: pass}})
	tlsReg := registryenv.StartDocker(t, registryenv.Options{TLS: true, Hosts: []string{tlsName}, Users: map[string]string{user: pass}})
	plainReg.Push(t, "test/nginx:latest", testimage.Hello(t, "plain"), user, pass)
	tlsReg.Push(t, "test/nginx:latest", testimage.Hello(t, "tls"), user, pass)
	plainHost, tlsHost := plainName+":"+portOf(plainReg.Addr), tlsName+":"+portOf(tlsReg.Addr)
	dockerSecret(t, r.c, "default", "secret1", plainHost, user, pass)
	dockerSecret(t, r.c, "default", "secret2", tlsHost, user, pass)
	dockerSecret(t, r.c, "kube-system", "secret3", "unrelated.example.com", "someone", "elsewhere-password")

	for _, tc := range []struct{ file, masked, host string }{
		{"seed-plain-http.yaml", "192.168.XX.XX:5000", plainHost},
		{"seed-insecure.yaml", "harbor***.pre.com", tlsHost},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "..", "api", "eci", "v1", "testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			manifest := strings.ReplaceAll(string(raw), tc.masked, tc.host)
			if out := r.kubectl(t, manifest, "apply", "-f", "-"); !strings.Contains(out, "imagecache-sample created") {
				t.Fatalf("kubectl apply: %s", out)
			}
			image := tc.host + "/test/nginx:latest"
			ic := r.waitPhase(t, "imagecache-sample", eciv1.PhaseReady)
			if ic.Status.Progress != "100%" || ic.Status.ReadyNodes != 1 || ic.Status.TargetNodes != 1 {
				t.Fatalf("status %+v", ic.Status)
			}
			if out := r.kubectl(t, "", "get", "imc", "imagecache-sample"); !strings.Contains(out, "Ready") || !strings.Contains(out, "100%") || !strings.Contains(out, ic.Status.ImageCacheID) {
				t.Errorf("kubectl get imc:\n%s", out)
			}
			if !slices.Contains(r.criImages(t), image) {
				t.Fatalf("%s not in containerd's images: %v", image, r.criImages(t))
			}
			r.runFromCache(t, "from-cache", image, nil)
			r.runFromCache(t, "by-imc-id", image, map[string]string{annotations.EciImcID: ic.Status.ImageCacheID})
			var p corev1.Pod
			if err := r.c.Get(ctx, client.ObjectKey{Namespace: "app", Name: "by-imc-id"}, &p); err != nil {
				t.Fatal(err)
			}
			if p.Annotations[annotations.EciMatchedImageCache] != ic.Status.ImageCacheID || p.Spec.Affinity == nil ||
				!strings.Contains(fmt.Sprint(p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution), annotations.ImageCacheNodeLabel(ic.Status.ImageCacheID)) {
				t.Fatalf("pod by eci-imc-id: annotations %v affinity %+v", p.Annotations, p.Spec.Affinity)
			}
			evs, _ := json.Marshal(ic.Status.Events)
			if bytes.Contains(evs, []byte(pass)) || strings.Contains(fmt.Sprint(ic.Status), pass) {
				t.Fatal("the registry password reached the ImageCache status")
			}

			r.deletePods(t)
			if err := r.c.Delete(ctx, ic); err != nil {
				t.Fatal(err)
			}
			imcPoll(t, 60*time.Second, "the cache's image released", func() error {
				if slices.Contains(r.criImages(t), image) {
					return fmt.Errorf("%s still in containerd", image)
				}
				var secrets corev1.SecretList
				if err := r.c.List(ctx, &secrets, client.InNamespace("ferry-system"), client.HasLabels{annotations.ImageCacheCredentialsLabel}); err != nil {
					return err
				}
				if len(secrets.Items) > 0 {
					return fmt.Errorf("credentials Secret %s still there", secrets.Items[0].Name)
				}
				return nil
			})
		})
	}

	t.Run("acr-instance-ids", func(t *testing.T) {
		inst := r.emu.Instance(t, world.DemoInstanceABeijing)
		ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "acr-private",
			Annotations: map[string]string{annotations.AcrInstanceIDs: "cn-beijing:" + world.DemoInstanceABeijing}},
			Spec: eciv1.ImageCacheSpec{Images: []string{inst.Image}}}
		if err := r.c.Create(ctx, ic); err != nil {
			t.Fatal(err)
		}
		r.waitPhase(t, ic.Name, eciv1.PhaseReady)
		if !slices.Contains(r.criImages(t), inst.Image) {
			t.Fatalf("%s not in containerd: %v", inst.Image, r.criImages(t))
		}
	})

	t.Run("failures", func(t *testing.T) {
		dockerSecret(t, r.c, "default", "wrong", plainHost, user, "not-the-password")
		huge := hugeManifest(t, plainReg, user, pass)
		for _, tc := range []struct {
			name, reason string
			spec         eciv1.ImageCacheSpec
			want         []string
		}{
			{"wrong-secret", imagecache.ReasonCredentialsRejected, eciv1.ImageCacheSpec{Images: []string{plainHost + "/test/nginx:latest"}, ImagePullSecrets: []string{"default:wrong"}},
				[]string{"image " + plainHost + "/test/nginx:latest", "default:wrong", "401"}},
			{"over-size", imagecache.ReasonSizeExceeded, eciv1.ImageCacheSpec{Images: []string{plainHost + "/" + huge}, ImagePullSecrets: []string{"default:secret1"}, ImageCacheSize: new(int32(25))},
				[]string{"more than imageCacheSize 25 GiB"}},
		} {
			ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Annotations: map[string]string{annotations.PlainHTTPRegistry: plainHost}}, Spec: tc.spec}
			if err := r.c.Create(ctx, ic); err != nil {
				t.Fatal(err)
			}
			ic = r.waitPhase(t, ic.Name, eciv1.PhaseFailed)
			if ic.Status.Reason != tc.reason {
				t.Errorf("%s: reason %s: %s", tc.name, ic.Status.Reason, ic.Status.Message)
			}
			for _, w := range tc.want {
				if !strings.Contains(ic.Status.Message, w) {
					t.Errorf("%s: message %q lacks %q", tc.name, ic.Status.Message, w)
				}
			}
			out := r.kubectl(t, "", "get", "imc", tc.name)
			if !strings.Contains(out, "Failed") {
				t.Errorf("kubectl get imc %s:\n%s", tc.name, out)
			}
		}
		// A Pod naming a cache that is not Ready is refused, as on ECI.
		failed := r.cache(t, "wrong-secret")
		pod := r.kl.Pod("app", "refused", plainHost+"/test/nginx:latest")
		pod.Annotations = map[string]string{annotations.EciImcID: failed.Status.ImageCacheID}
		err := r.c.Create(ctx, pod)
		if err == nil || !strings.Contains(err.Error(), "annotation k8s.aliyun.com/eci-imc-id: image cache "+failed.Status.ImageCacheID+" (ImageCache wrong-secret) is Failed, not Ready") {
			t.Fatalf("pod with a failed cache: %v", err)
		}
	})
}

// hugeManifest pushes test/huge:v1 whose manifest declares a 30 GiB layer (the blob is small;
// registries check that blobs exist, not their declared sizes).
func hugeManifest(t testing.TB, reg *registryenv.Registry, user, pass string) string {
	t.Helper()
	img := testimage.Hello(t, "huge")
	ref := reg.Ref(t, "test/huge:v1")
	opts := reg.Options(t.Context(), user, pass)
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["layers"].([]any)[0].(map[string]any)["size"] = int64(30) << 30
	raw, _ = json.Marshal(m)
	if err := remote.Put(ref, rawManifest{raw}, opts...); err != nil {
		t.Fatal(err)
	}
	return "test/huge:v1"
}

type rawManifest struct{ raw []byte }

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }
