package imagecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/controller/imagecache"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

const ns = "ferry-system"

type env struct {
	kube  *kubeenv.Env
	c     client.Client
	clock *fakeclock.Clock
	r     *imagecache.Reconciler
}

func start(t *testing.T) *env {
	t.Helper()
	kube := kubeenv.Start(t, kubeenv.WithCRDs(filepath.Join("..", "..", "..", "config", "crd", "bases")))
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eciv1.AddToScheme, ferryv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(kube.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ns, "app"} {
		if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: kube.Clientset.EventsV1()})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	b.StartRecordingToSink(ctx.Done())
	t.Cleanup(func() { cancel(); b.Shutdown() })
	clock := fakeclock.New(time.Now())
	r := &imagecache.Reconciler{Client: c, APIReader: c, Namespace: ns, Now: clock.Now, Recorder: b.NewRecorder(s, "ferry-imagecache-test")}
	return &env{kube: kube, c: c, clock: clock, r: r}
}

func (e *env) reconcile(t *testing.T, name string) reconcile.Result {
	t.Helper()
	res, err := e.r.Reconcile(t.Context(), reconcile.Request{NamespacedName: client.ObjectKey{Name: name}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (e *env) get(t *testing.T, name string) *eciv1.ImageCache {
	t.Helper()
	var ic eciv1.ImageCache
	if err := e.c.Get(t.Context(), client.ObjectKey{Name: name}, &ic); err != nil {
		t.Fatal(err)
	}
	return &ic
}

func (e *env) create(t *testing.T, name string, ann map[string]string, spec eciv1.ImageCacheSpec) *eciv1.ImageCache {
	t.Helper()
	ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: spec}
	if err := e.c.Create(t.Context(), ic); err != nil {
		t.Fatal(err)
	}
	return ic
}

func (e *env) pullSecret(t *testing.T, namespace, name string, cfg *dockercfg.Config) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg.Render()}}
	if err := e.c.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

// node creates a Node and its (empty) node-agent report, making it a target.
func (e *env) node(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if err := e.c.Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Create(t.Context(), &ferryv1alpha1.NodeImageCache{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// report writes what a node-agent would report for ic on node.
func (e *env) report(t *testing.T, node string, ic *eciv1.ImageCache, phase string, imageErr string) {
	t.Helper()
	var nic ferryv1alpha1.NodeImageCache
	if err := e.c.Get(t.Context(), client.ObjectKey{Name: node}, &nic); err != nil {
		t.Fatal(err)
	}
	cr := ferryv1alpha1.CacheReport{Name: ic.Name, UID: string(ic.UID), ImageCacheID: ic.Status.ImageCacheID, Generation: ic.Status.ObservedGeneration, Phase: phase}
	for _, im := range ic.Status.Images {
		cr.Images = append(cr.Images, ferryv1alpha1.ImageReport{Image: im.Image, Phase: phase, Error: imageErr})
	}
	nic.Status.Caches = []ferryv1alpha1.CacheReport{cr}
	if err := e.c.Update(t.Context(), &nic); err != nil {
		t.Fatal(err)
	}
}

func image(t testing.TB, size int64) v1.Image {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (e *env) events(t *testing.T, ic *eciv1.ImageCache) string {
	t.Helper()
	var list eventsv1.EventList
	if err := e.c.List(t.Context(), &list); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "ImageCache" && ev.Regarding.UID == ic.UID {
			fmt.Fprintf(&b, "%s %s: %s\n", ev.Type, ev.Reason, ev.Note)
		}
	}
	return b.String()
}

// TestLifecycle: a cache with credentials from two namespaces goes Preparing → Creating; the
// credentials Secret for node-agents holds the verified credential per image; node reports
// move it to Ready with progress and Kubernetes Events; a spec change goes through Updating;
// a node that gives up makes the update UpdateFailed naming node and image.
func TestLifecycle(t *testing.T) {
	e := start(t)
	const user, pass = "robot", "lifecycle-pass-1234"
	reg := registryenv.StartDistribution(t, registryenv.Options{Users: map[string]string{user: pass}})
	reg.Push(t, "team/a:v1", image(t, 1000), user, pass)
	reg.Push(t, "team/b:v1", image(t, 2000), user, pass)
	wrong := dockercfg.New()
	wrong.Set("robot", "not-the-password", reg.Addr+"/team/other") // a repository-scoped key that does not match
	e.pullSecret(t, "app", "unrelated", wrong)
	good := dockercfg.New()
	good.Set(user, pass, reg.Addr)
	e.pullSecret(t, "kube-system", "registry", good)
	e.node(t, "n1", map[string]string{"pool": "web"})
	e.node(t, "n2", map[string]string{"pool": "web"})
	e.node(t, "other", map[string]string{"pool": "batch"})
	if err := e.c.Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "no-agent", Labels: map[string]string{"pool": "web"}}}); err != nil {
		t.Fatal(err)
	}

	a, b := reg.Addr+"/team/a:v1", reg.Addr+"/team/b:v1"
	ic := e.create(t, "lifecycle", nil, eciv1.ImageCacheSpec{Images: []string{a}, ImagePullSecrets: []string{"app:unrelated", "kube-system:registry"},
		RetentionDays: ptr.To[int32](7), NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "web"}}})
	e.reconcile(t, ic.Name)
	ic = e.get(t, ic.Name)
	st := ic.Status
	if st.Phase != eciv1.PhaseCreating || !strings.HasPrefix(st.ImageCacheID, "imc-") || len(st.ImageCacheID) != 24 || st.ObservedGeneration != ic.Generation ||
		st.TargetNodes != 2 || st.Progress != "0%" || len(st.Images) != 1 || !strings.HasPrefix(st.Images[0].Digest, "sha256:") || st.CompressedSize <= 1000 {
		t.Fatalf("status after the first reconcile: %+v", st)
	}
	if st.ImageCacheID != imagecache.ID(ic.UID) {
		t.Errorf("id %s is not derived from the UID", st.ImageCacheID)
	}
	if want := ic.CreationTimestamp.Add(7 * 24 * time.Hour); st.ExpireDateTime == nil || !st.ExpireDateTime.Time.Equal(want) {
		t.Errorf("expireDateTime %v, want %v", st.ExpireDateTime, want)
	}
	if names := eventNames(st.Events); names != "Preparing,Creating" {
		t.Errorf("status events %s", names)
	}
	var sec corev1.Secret
	if err := e.c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: annotations.ImageCacheCredentialsSecret(st.ImageCacheID)}, &sec); err != nil {
		t.Fatal(err)
	}
	cfg, err := dockercfg.Parse(sec.Data[corev1.DockerConfigJsonKey])
	if err != nil {
		t.Fatal(err)
	}
	if en, ok := cfg.Lookup(annotations.ImageRepository(a)); !ok || en.Password.Reveal() != pass || len(cfg.Auths) != 1 {
		t.Errorf("credentials Secret: %v", cfg)
	}
	if sec.Annotations[annotations.ImageCacheUIDAnnotation] != string(ic.UID) || sec.Labels[annotations.ImageCacheCredentialsLabel] != st.ImageCacheID {
		t.Errorf("credentials Secret metadata %v %v", sec.Labels, sec.Annotations)
	}

	e.report(t, "n1", ic, ferryv1alpha1.PhaseReady, "")
	e.reconcile(t, ic.Name)
	if ic = e.get(t, ic.Name); ic.Status.Progress != "50%" || ic.Status.Phase != eciv1.PhaseCreating || ic.Status.ReadyNodes != 1 {
		t.Fatalf("after one node: %+v", ic.Status)
	}
	e.report(t, "n2", ic, ferryv1alpha1.PhaseReady, "")
	e.reconcile(t, ic.Name)
	ic = e.get(t, ic.Name)
	if ic.Status.Phase != eciv1.PhaseReady || ic.Status.Progress != "100%" || !readyCondition(ic) {
		t.Fatalf("after both nodes: %+v", ic.Status)
	}
	poll.Until(t, "Kubernetes Events for the transitions", func() error {
		if ev := e.events(t, ic); !strings.Contains(ev, "Normal Preparing") || !strings.Contains(ev, "Normal Creating") || !strings.Contains(ev, "Normal Ready") {
			return fmt.Errorf("events:\n%s", ev)
		}
		return nil
	})

	// Spec change: Updating, new images published, the nodes' old reports no longer count.
	ic.Spec.Images = []string{a, b}
	if err := e.c.Update(t.Context(), ic); err != nil {
		t.Fatal(err)
	}
	e.reconcile(t, ic.Name)
	ic = e.get(t, ic.Name)
	if ic.Status.Phase != eciv1.PhaseUpdating || len(ic.Status.Images) != 2 || ic.Status.ObservedGeneration != ic.Generation || ic.Status.Progress != "0%" {
		t.Fatalf("after the spec change: %+v", ic.Status)
	}
	e.report(t, "n1", ic, ferryv1alpha1.PhaseReady, "")
	e.report(t, "n2", ic, ferryv1alpha1.PhaseFailed, "failed to pull: no space left on device")
	e.reconcile(t, ic.Name)
	ic = e.get(t, ic.Name)
	if ic.Status.Phase != eciv1.PhaseUpdateFailed || ic.Status.Reason != imagecache.ReasonPullFailed ||
		!strings.Contains(ic.Status.Message, "node n2") || !strings.Contains(ic.Status.Message, "image "+b) {
		t.Fatalf("after a node failed the update: %+v", ic.Status)
	}
	if strings.Contains(fmt.Sprint(ic.Status), pass) || strings.Contains(e.events(t, ic), pass) {
		t.Fatal("a password reached the status or the Events")
	}
}

func eventNames(evs []eciv1.ImageCacheEvent) string {
	var n []string
	for _, e := range evs {
		n = append(n, e.Name)
	}
	return strings.Join(n, ",")
}

func readyCondition(ic *eciv1.ImageCache) bool {
	for _, c := range ic.Status.Conditions {
		if c.Type == imagecache.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// hugeImage pushes an image whose manifest says its layer is 25 GiB (the blob is small; the
// registry checks that blobs exist, not their declared sizes), to test the size budget.
func hugeImage(t *testing.T, reg *registryenv.Registry, repo string) string {
	t.Helper()
	img := image(t, 100)
	ref := reg.Ref(t, repo)
	if err := remote.Write(ref, img, reg.Options(t.Context(), "", "")...); err != nil {
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
	m["layers"].([]any)[0].(map[string]any)["size"] = int64(25) << 30
	raw, _ = json.Marshal(m)
	tagged, err := name.ParseReference(ref.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tagged, rawManifest{raw: raw, mt: types.DockerManifestSchema2}, reg.Options(t.Context(), "", "")...); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// TestFailures: each way a cache fails names what is wrong, and a failed cache expires 24 h
// after the failure.
func TestFailures(t *testing.T) {
	e := start(t)
	const user, pass = "robot", "failures-pass-1234"
	reg := registryenv.StartDistribution(t, registryenv.Options{Users: map[string]string{user: pass}})
	reg.Push(t, "team/a:v1", image(t, 1000), user, pass)
	open := registryenv.StartDistribution(t, registryenv.Options{})
	huge := hugeImage(t, open, "team/huge:v1")
	wrong := dockercfg.New()
	wrong.Set(user, "wrong-password-5678", reg.Addr)
	e.pullSecret(t, "default", "secret1", wrong)
	a := reg.Addr + "/team/a:v1"
	for _, tt := range []struct {
		name, reason string
		ann          map[string]string
		spec         eciv1.ImageCacheSpec
		want         []string
	}{
		{name: "wrong-secret", reason: imagecache.ReasonCredentialsRejected, spec: eciv1.ImageCacheSpec{Images: []string{a}, ImagePullSecrets: []string{"default:secret1"}},
			want: []string{"image " + a, "imagePullSecrets default:secret1", "401"}},
		{name: "no-secret", reason: imagecache.ReasonCredentialsRejected, spec: eciv1.ImageCacheSpec{Images: []string{a}},
			want: []string{"image " + a, "has none for " + reg.Addr}},
		{name: "missing-secret", reason: imagecache.ReasonCredentialsUnavailable, spec: eciv1.ImageCacheSpec{Images: []string{a}, ImagePullSecrets: []string{"default:secret1", "kube-system:secret3"}},
			want: []string{"spec.imagePullSecrets[1]", "kube-system/secret3 not found"}},
		{name: "over-size", reason: imagecache.ReasonSizeExceeded, spec: eciv1.ImageCacheSpec{Images: []string{huge}, ImageCacheSize: ptr.To[int32](20)},
			want: []string{"25.0 GiB", "imageCacheSize 20 GiB", "linux/"}},
		{name: "not-found", reason: imagecache.ReasonImageUnavailable, spec: eciv1.ImageCacheSpec{Images: []string{open.Addr + "/team/missing:v1"}},
			want: []string{"image " + open.Addr + "/team/missing:v1", "not found"}},
		{name: "masked-host", reason: imagecache.ReasonInvalidImage, spec: eciv1.ImageCacheSpec{Images: []string{"harbor***.pre.com/test/nginx:latest"}},
			want: []string{`spec.images[0] "harbor***.pre.com/test/nginx:latest"`, "'*'"}},
		{name: "bad-annotation", reason: imagecache.ReasonInvalidAnnotation, ann: map[string]string{annotations.PlainHTTPRegistry: "http://x"},
			spec: eciv1.ImageCacheSpec{Images: []string{a}}, want: []string{annotations.PlainHTTPRegistry, "http://x"}},
		{name: "acr-without-minter", reason: imagecache.ReasonCredentialsUnavailable, ann: map[string]string{annotations.AcrInstanceIDs: "cri-abc123"},
			spec: eciv1.ImageCacheSpec{Images: []string{a}}, want: []string{"cri-abc123", "not configured"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ic := e.create(t, tt.name, tt.ann, tt.spec)
			e.reconcile(t, ic.Name)
			ic = e.get(t, ic.Name)
			st := ic.Status
			if st.Phase != eciv1.PhaseFailed || st.Reason != tt.reason {
				t.Fatalf("phase %s reason %s: %s", st.Phase, st.Reason, st.Message)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.Message, w) {
					t.Errorf("message %q lacks %q", st.Message, w)
				}
			}
			if strings.Contains(st.Message, "wrong-password") || strings.Contains(st.Message, pass) {
				t.Fatal("a password in the message")
			}
			if want := e.clock.Now().Add(24 * time.Hour).UTC().Truncate(time.Second); st.ExpireDateTime == nil || !st.ExpireDateTime.Time.Equal(want) {
				t.Errorf("expireDateTime %v, want %v", st.ExpireDateTime, want)
			}
			poll.Until(t, "a Warning Event", func() error {
				if ev := e.events(t, ic); !strings.Contains(ev, "Warning Failed: "+tt.reason) {
					return fmt.Errorf("events:\n%s", ev)
				}
				return nil
			})
		})
	}
}

// TestExpiry (fake clock): a cache lives retentionDays from its creation, a failed one 24 h;
// then the controller deletes it and its credentials Secret.
func TestExpiry(t *testing.T) {
	e := start(t)
	reg := registryenv.StartDistribution(t, registryenv.Options{})
	reg.Push(t, "team/a:v1", image(t, 100), "", "")
	ok := e.create(t, "keep-one-day", nil, eciv1.ImageCacheSpec{Images: []string{reg.Addr + "/team/a:v1"}, RetentionDays: ptr.To[int32](1)})
	bad := e.create(t, "failed", nil, eciv1.ImageCacheSpec{Images: []string{reg.Addr + "/team/none:v1"}, RetentionDays: ptr.To[int32](3)})
	res := e.reconcile(t, ok.Name)
	e.reconcile(t, bad.Name)
	ok, bad = e.get(t, ok.Name), e.get(t, bad.Name)
	if ok.Status.Phase != eciv1.PhaseCreating || bad.Status.Phase != eciv1.PhaseFailed {
		t.Fatalf("phases %s, %s", ok.Status.Phase, bad.Status.Phase)
	}
	if res.RequeueAfter <= 23*time.Hour || res.RequeueAfter > 24*time.Hour {
		t.Errorf("requeue after %v, want about a day (the expiry)", res.RequeueAfter)
	}
	secret := client.ObjectKey{Namespace: ns, Name: annotations.ImageCacheCredentialsSecret(ok.Status.ImageCacheID)}
	if err := e.c.Get(t.Context(), secret, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(23 * time.Hour)
	e.reconcile(t, ok.Name)
	e.reconcile(t, bad.Name)
	e.get(t, ok.Name)
	e.get(t, bad.Name)

	// The failed cache expires 24 h after its failure, the other one day after its creation
	// (the fake clock started at about the creation time).
	e.clock.Advance(time.Hour + 2*time.Second)
	for _, ic := range []*eciv1.ImageCache{ok, bad} {
		e.reconcile(t, ic.Name)
		if err := e.c.Get(t.Context(), client.ObjectKey{Name: ic.Name}, &eciv1.ImageCache{}); !apierrors.IsNotFound(err) {
			t.Fatalf("%s not deleted after expiry: %v", ic.Name, err)
		}
	}
	if err := e.c.Get(t.Context(), secret, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("credentials Secret of the expired cache: %v", err)
	}
	poll.Until(t, "an Expired Event", func() error {
		if ev := e.events(t, ok); !strings.Contains(ev, "Normal Expired") {
			return fmt.Errorf("events:\n%s", ev)
		}
		return nil
	})
}

// TestACRInstanceCredentials: the acr-instance-ids annotation is minted through the Minter with
// the role chain of acr-service-arns/acr-user-arns, for the token's domains; the token ends up
// in the credentials Secret, and the controller renews it at half its lifetime.
func TestACRInstanceCredentials(t *testing.T) {
	e := start(t)
	const user, pass = "acr-temp-user", "minted-token-1234"
	reg := registryenv.StartDistribution(t, registryenv.Options{Users: map[string]string{user: pass}})
	reg.Push(t, "ns/app:v1", image(t, 300), user, pass)
	var calls []string
	e.r.Minter = imagecache.MinterFunc(func(_ context.Context, inst annotations.InstanceRef, chain annotations.RoleChain) (imagecache.Token, error) {
		calls = append(calls, inst.String()+"|"+chain.String())
		return imagecache.Token{Username: user, Password: redact.Secret(pass), ExpiresAt: e.clock.Now().Add(time.Hour), Domains: []string{reg.Addr}}, nil
	})
	ic := e.create(t, "acr", map[string]string{
		annotations.AcrInstanceIDs: "cn-hangzhou:cri-abc123", annotations.AcrServiceARNs: "acs:ram::1111111111111111:role/role-assume",
		annotations.AcrUserARNs: "acs:ram::2222222222222222:role/role-acr",
	}, eciv1.ImageCacheSpec{Images: []string{reg.Addr + "/ns/app:v1"}})
	res := e.reconcile(t, ic.Name)
	ic = e.get(t, ic.Name)
	if ic.Status.Phase != eciv1.PhaseCreating {
		t.Fatalf("status %+v", ic.Status)
	}
	want := "cn-hangzhou:cri-abc123|acs:ram::1111111111111111:role/role-assume>acs:ram::2222222222222222:role/role-acr"
	if len(calls) != 1 || calls[0] != want {
		t.Fatalf("mint calls %v, want [%s]", calls, want)
	}
	if res.RequeueAfter != 30*time.Minute {
		t.Errorf("requeue after %v, want 30m (half the token's life)", res.RequeueAfter)
	}
	var sec corev1.Secret
	if err := e.c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: annotations.ImageCacheCredentialsSecret(ic.Status.ImageCacheID)}, &sec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sec.Data[corev1.DockerConfigJsonKey], []byte(reg.Addr+"/ns/app")) {
		t.Errorf("credentials Secret %s", redact.DockerConfigJSON(sec.Data[corev1.DockerConfigJsonKey]))
	}
	e.clock.Advance(31 * time.Minute)
	e.reconcile(t, ic.Name)
	if len(calls) != 2 {
		t.Fatalf("the token was not renewed at half its life: %v", calls)
	}
}
