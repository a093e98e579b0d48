package prepull_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/nodeagent/prepull"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

const credNS = "ferry-system"

var crdDir = filepath.Join("..", "..", "..", "config", "crd", "bases")

// rig is a real apiserver, a real containerd and the pre-puller of one node (the Node object
// exists; no kubelet is needed to pre-pull).
type rig struct {
	kube *kubeenv.Env
	ctrd *containerdenv.Containerd
	c    client.Client
	node string
	rt   *prepull.Runtime
}

func scheme(t testing.TB) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eciv1.AddToScheme, ferryv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type rigOpts struct {
	parallelism int
	allowed     []string
	nodeLabels  map[string]string
}

func startRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	log.SetLogger(testr.New(t))
	kube := kubeenv.Start(t, kubeenv.WithCRDs(crdDir))
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	s := scheme(t)
	c, err := client.New(kube.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{kube: kube, ctrd: ctrd, c: c, node: "prepull-node", rt: prepull.NewRuntime(ctrd.Images, ctrd.Runtime)}
	for _, obj := range []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: r.node, Labels: o.nodeLabels}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credNS}},
	} {
		if err := c.Create(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	allow, err := hostsconfig.ParseAllowlist(o.allowed)
	if err != nil {
		t.Fatal(err)
	}
	byObject := prepull.CacheByObject(r.node, credNS)
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme: s, Cache: cache.Options{ByObject: byObject},
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := prepull.New(mgr.GetClient(), prepull.Options{
		NodeName: r.node, Runtime: r.rt, Hosts: hostsconfig.New(ctrd.HostsDir), Allowlist: allow,
		CredentialsNamespace: credNS, Parallelism: o.parallelism, MaxAttempts: 2, Backoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// smallImage is a random single-layer linux/amd64 image.
func smallImage(t testing.TB, size int64) v1.Image {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type cred struct{ user, pass string }

// publish does what the ImageCache controller does once a cache is checked: the credentials
// Secret for the generation, then status Creating with the images and the cache id.
func (r *rig) publish(t *testing.T, name string, ann map[string]string, images []string, creds map[string]cred, sel *metav1.LabelSelector) *eciv1.ImageCache {
	t.Helper()
	ctx := t.Context()
	ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: eciv1.ImageCacheSpec{Images: images, NodeSelector: sel}}
	if err := r.c.Create(ctx, ic); err != nil {
		t.Fatal(err)
	}
	id := "imc-" + strings.ReplaceAll(name, "-", "")
	if len(id) > 24 {
		id = id[:24]
	}
	cfg := dockercfg.New()
	for _, img := range images {
		if cr, ok := creds[img]; ok {
			cfg.Set(cr.user, cr.pass, annotations.ImageRepository(img))
		}
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: annotations.ImageCacheCredentialsSecret(id),
		Labels:      map[string]string{annotations.ImageCacheCredentialsLabel: id},
		Annotations: map[string]string{annotations.ImageCacheUIDAnnotation: string(ic.UID), annotations.ImageCacheGenerationAnnotation: strconv.FormatInt(ic.Generation, 10)}},
		Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg.Render()}}
	if err := r.c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	ic.Status = eciv1.ImageCacheStatus{Phase: eciv1.PhaseCreating, ImageCacheID: id, ObservedGeneration: ic.Generation}
	for _, img := range images {
		ic.Status.Images = append(ic.Status.Images, eciv1.ImageStatus{Image: img})
	}
	if err := r.c.Status().Update(ctx, ic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.c.Delete(context.WithoutCancel(ctx), sec) })
	return ic
}

// entry returns this node's report for cache name.
func (r *rig) entry(t *testing.T, name string) (ferryv1alpha1.CacheReport, error) {
	var nic ferryv1alpha1.NodeImageCache
	if err := r.c.Get(t.Context(), client.ObjectKey{Name: r.node}, &nic); err != nil {
		return ferryv1alpha1.CacheReport{}, err
	}
	for _, c := range nic.Status.Caches {
		if c.Name == name {
			return c, nil
		}
	}
	return ferryv1alpha1.CacheReport{}, fmt.Errorf("no report for %s in %+v", name, nic.Status)
}

func (r *rig) waitPhase(t *testing.T, name, phase string) ferryv1alpha1.CacheReport {
	t.Helper()
	var e ferryv1alpha1.CacheReport
	poll.Until(t, "cache "+name+" "+phase+" on the node", func() error {
		var err error
		if e, err = r.entry(t, name); err != nil {
			return err
		}
		if e.Phase != phase {
			return fmt.Errorf("phase %s: %+v", e.Phase, e.Images)
		}
		return nil
	})
	return e
}

// images lists the runtime's image references (what `crictl images` shows).
func (r *rig) images(t *testing.T) []string {
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

func (r *rig) nodeLabels(t *testing.T) map[string]string {
	t.Helper()
	var n corev1.Node
	if err := r.c.Get(t.Context(), client.ObjectKey{Name: r.node}, &n); err != nil {
		t.Fatal(err)
	}
	return n.Labels
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// TestPrePullSelfManagedRegistries: the seed's two registries — plain HTTP and self-signed
// HTTPS docker-registries, reached by name so that containerd needs the hosts.toml the cache's
// annotations ask for — with htpasswd credentials. Both caches become Ready on the node through
// CRI, the images are in containerd, hosts.toml holds ferry's blocks, the Node carries the
// ready label; an image already present counts as done and is kept on release; deleting the
// caches removes the images they pulled, the blocks and the labels.
func TestPrePullSelfManagedRegistries(t *testing.T) {
	const plainName, tlsName = "plain-imc.ferry.test", "tls-imc.ferry.test"
	etchosts.Ensure(t, plainName, tlsName)
	r := startRig(t, rigOpts{allowed: []string{plainName, tlsName}})
	const user, pass = "robot$imc", "s3cr$t-imagecache-pw"
	plainReg := registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{user: pass}})
	tlsReg := registryenv.StartDocker(t, registryenv.Options{TLS: true, Hosts: []string{tlsName}, Users: map[string]string{user: pass}})
	plainReg.Push(t, "test/nginx:latest", smallImage(t, 2048), user, pass)
	plainReg.Push(t, "test/present:latest", smallImage(t, 1024), user, pass)
	tlsReg.Push(t, "test/nginx:latest", smallImage(t, 4096), user, pass)
	plainHost := plainName + ":" + portOf(plainReg.Addr)
	tlsHost := tlsName + ":" + portOf(tlsReg.Addr)
	plainImg, presentImg, tlsImg := plainHost+"/test/nginx:latest", plainHost+"/test/present:latest", tlsHost+"/test/nginx:latest"

	// Without hosts.toml containerd cannot reach either registry: the annotations matter.
	for _, img := range []string{plainImg, tlsImg} {
		if _, err := r.ctrd.PullImage(t.Context(), img, &runtimeapi.AuthConfig{Username: user, Password: pass}); err == nil {
			t.Fatalf("%s pulled without registry configuration; the test would prove nothing", img)
		}
	}
	// An image the node already has (pulled by someone else, with the annotation's help).
	r.ctrd.WriteHostsTOML(t, plainHost, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+plainHost, "http://"+plainHost))
	if _, err := r.ctrd.PullImage(t.Context(), presentImg, &runtimeapi.AuthConfig{Username: user, Password: pass}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(r.ctrd.HostsDir, plainHost)); err != nil {
		t.Fatal(err)
	}

	plain := r.publish(t, "imagecache-plain", map[string]string{annotations.PlainHTTPRegistry: plainHost},
		[]string{plainImg, presentImg}, map[string]cred{plainImg: {user, pass}, presentImg: {user, pass}}, nil)
	insecure := r.publish(t, "imagecache-insecure", map[string]string{annotations.InsecureRegistry: "harbor.example.invalid," + tlsHost},
		[]string{tlsImg}, map[string]cred{tlsImg: {user, pass}}, nil)

	pe := r.waitPhase(t, plain.Name, ferryv1alpha1.PhaseReady)
	ie := r.waitPhase(t, insecure.Name, ferryv1alpha1.PhaseReady)
	for _, im := range append(pe.Images, ie.Images...) {
		if im.ImageRef == "" || !strings.HasPrefix(im.Digest, "sha256:") || im.Size <= 0 || im.Error != "" {
			t.Errorf("image report %+v", im)
		}
		if wantPresent := im.Image == presentImg; im.Present != wantPresent {
			t.Errorf("%s: present %v, want %v", im.Image, im.Present, wantPresent)
		}
	}
	have := r.images(t)
	for _, img := range []string{plainImg, presentImg, tlsImg} {
		if !slices.Contains(have, img) {
			t.Errorf("%s not in containerd's images %v", img, have)
		}
	}
	for host, want := range map[string]string{plainHost: `"http://` + plainHost + `"`, tlsHost: "skip_verify = true"} {
		b, err := os.ReadFile(filepath.Join(r.ctrd.HostsDir, host, hostsconfig.FileName))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("hosts.toml of %s: %v\n%s", host, err, b)
		}
	}
	labels := r.nodeLabels(t)
	for _, ic := range []*eciv1.ImageCache{plain, insecure} {
		if labels[annotations.ImageCacheNodeLabel(ic.Status.ImageCacheID)] != "ready" {
			t.Errorf("node labels %v lack the ready label of %s", labels, ic.Status.ImageCacheID)
		}
	}
	var nic ferryv1alpha1.NodeImageCache
	if err := r.c.Get(t.Context(), client.ObjectKey{Name: r.node}, &nic); err != nil {
		t.Fatal(err)
	}
	if nic.Status.Pinning != prepull.PinningRepull || nic.Status.CacheCount != 2 || len(nic.OwnerReferences) != 1 {
		t.Errorf("report %+v owners %v", nic.Status, nic.OwnerReferences)
	}
	if strings.Contains(fmt.Sprint(nic), pass) {
		t.Fatal("the NodeImageCache shows the registry password")
	}

	// Release: delete both caches.
	for _, ic := range []*eciv1.ImageCache{plain, insecure} {
		if err := r.c.Delete(t.Context(), ic); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "caches released", func() error {
		var nic ferryv1alpha1.NodeImageCache
		if err := r.c.Get(t.Context(), client.ObjectKey{Name: r.node}, &nic); err != nil {
			return err
		}
		if len(nic.Status.Caches) != 0 {
			return fmt.Errorf("report still has %d caches", len(nic.Status.Caches))
		}
		have := r.images(t)
		if slices.Contains(have, plainImg) || slices.Contains(have, tlsImg) {
			return fmt.Errorf("pulled images still present: %v", have)
		}
		for _, h := range []string{plainHost, tlsHost} {
			if _, err := os.Stat(filepath.Join(r.ctrd.HostsDir, h)); !os.IsNotExist(err) {
				return fmt.Errorf("hosts dir of %s still there (%v)", h, err)
			}
		}
		for k := range r.nodeLabels(t) {
			if strings.HasPrefix(k, annotations.ImageCacheNodeLabelPrefix) {
				return fmt.Errorf("label %s still on the node", k)
			}
		}
		return nil
	})
	if !slices.Contains(r.images(t), presentImg) {
		t.Error("the image that was on the node before the cache was removed on release")
	}
}

// TestPrePullFailures: a rejected credential fails the image after the retries with the
// registry's answer (no password); a host outside --allowed-registries fails at once naming the
// host and writes no hosts.toml; a cache whose node selector does not match is not pulled.
func TestPrePullFailures(t *testing.T) {
	const plainName = "plain-imc-fail.ferry.test"
	etchosts.Ensure(t, plainName)
	r := startRig(t, rigOpts{allowed: []string{"127.0.0.1"}, nodeLabels: map[string]string{"pool": "web"}})
	const user, pass = "robot", "right-password-1234"
	reg := registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{user: pass}})
	reg.Push(t, "team/app:v1", smallImage(t, 512), user, pass)
	local := reg.Addr + "/team/app:v1" // 127.0.0.1: containerd falls back to HTTP by itself
	named := plainName + ":" + portOf(reg.Addr) + "/team/app:v1"

	wrong := r.publish(t, "wrong-secret", nil, []string{local}, map[string]cred{local: {user, "wrong-password-5678"}}, nil)
	refused := r.publish(t, "refused-host", map[string]string{annotations.PlainHTTPRegistry: plainName + ":" + portOf(reg.Addr)},
		[]string{named}, map[string]cred{named: {user, pass}}, nil)
	other := r.publish(t, "other-pool", nil, []string{local}, map[string]cred{local: {user, pass}},
		&metav1.LabelSelector{MatchLabels: map[string]string{"pool": "batch"}})

	we := r.waitPhase(t, wrong.Name, ferryv1alpha1.PhaseFailed)
	if im := we.Images[0]; im.Attempts != 2 || !strings.Contains(strings.ToLower(im.Error), "unauthorized") || strings.Contains(im.Error, "wrong-password") {
		t.Errorf("wrong secret report %+v", im)
	}
	re := r.waitPhase(t, refused.Name, ferryv1alpha1.PhaseFailed)
	if im := re.Images[0]; !strings.Contains(im.Error, "--allowed-registries") || !strings.Contains(im.Error, plainName) || im.Attempts != 0 {
		t.Errorf("refused host report %+v", im)
	}
	if _, err := os.Stat(filepath.Join(r.ctrd.HostsDir, plainName+":"+portOf(reg.Addr))); !os.IsNotExist(err) {
		t.Errorf("hosts.toml written for a refused host (%v)", err)
	}
	if _, err := r.entry(t, other.Name); err == nil {
		t.Error("a cache for another node pool was served")
	}
	if slices.Contains(r.images(t), local) {
		t.Error("the image was pulled although no cache on this node could pull it")
	}

	// Fixing the credential is a new generation for the controller; here: the node selector
	// now matches, so other-pool is pulled with its good credential.
	other.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "web"}}
	if err := r.c.Update(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	r.waitPhase(t, other.Name, ferryv1alpha1.PhaseReady)
}

// gate is a reverse proxy in front of a registry that holds the first blob request of every
// repository until released, and records the most repositories held at once.
type gate struct {
	mu       sync.Mutex
	arrivals []string
	held     int
	maxHeld  int
	released map[string]chan struct{}
	proxy    *httputil.ReverseProxy
}

func (g *gate) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if i := strings.Index(req.URL.Path, "/blobs/"); i > 0 && strings.HasPrefix(req.URL.Path, "/v2/") {
		repo := req.URL.Path[len("/v2/"):i]
		g.mu.Lock()
		ch, seen := g.released[repo]
		if !seen {
			ch = make(chan struct{})
			g.released[repo] = ch
			g.arrivals = append(g.arrivals, repo)
			g.held++
			g.maxHeld = max(g.maxHeld, g.held)
		}
		g.mu.Unlock()
		if ch != nil { // nil: released
			select {
			case <-ch:
			case <-req.Context().Done():
				return
			}
		}
	}
	g.proxy.ServeHTTP(w, req)
}

// release lets repo's downloads through ("" = every held repository).
func (g *gate) release(repo string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for r, ch := range g.released {
		if (repo == "" || r == repo) && ch != nil {
			close(ch)
			g.released[r] = nil
			g.held--
		}
	}
}

func (g *gate) waiting() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, r := range g.arrivals {
		if g.released[r] != nil {
			out = append(out, r)
		}
	}
	return out
}

// TestPrePullParallelismIsBounded: with Parallelism 2 and four images, at most two downloads
// are ever in progress: the others start only as slots are freed.
func TestPrePullParallelismIsBounded(t *testing.T) {
	r := startRig(t, rigOpts{parallelism: 2})
	reg := registryenv.StartDistribution(t, registryenv.Options{})
	target, _ := url.Parse(reg.URL)
	g := &gate{released: map[string]chan struct{}{}, proxy: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { g.release("") }) // runs before srv.Close, so no handler blocks it
	host := strings.TrimPrefix(srv.URL, "http://")
	var images []string
	for i := range 4 {
		repo := fmt.Sprintf("team/p%d", i)
		reg.Push(t, repo+":v1", smallImage(t, 256), "", "")
		images = append(images, host+"/"+repo+":v1")
	}
	ic := r.publish(t, "bounded", nil, images, nil, nil)
	for done := 0; done < 4; {
		var w []string
		poll.Until(t, "downloads waiting at the gate", func() error {
			if w = g.waiting(); len(w) < min(2, 4-done) {
				return fmt.Errorf("waiting %v", w)
			}
			return nil
		})
		g.release(w[0])
		done++
	}
	r.waitPhase(t, ic.Name, ferryv1alpha1.PhaseReady)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxHeld != 2 || len(g.arrivals) != 4 {
		t.Fatalf("at most %d downloads at once (want 2), arrivals %v", g.maxHeld, g.arrivals)
	}
}
