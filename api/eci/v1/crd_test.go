package v1_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

var crdDir = filepath.Join("..", "..", "..", "config", "crd", "bases")

func startEnv(t *testing.T) (*kubeenv.Env, client.Client) {
	t.Helper()
	env := kubeenv.Start(t, kubeenv.WithCRDs(crdDir))
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := eciv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return env, c
}

func kubectl(t *testing.T, env *kubeenv.Env, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(kubeenv.Assets(), "kubectl"), append([]string{"--kubeconfig", env.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSeedManifestsApplyVerbatim applies Alibaba's two ImageCache examples for self-managed registries
// (seed 002: plain HTTP, self-signed HTTPS) and the reference's §2.2 sample, byte for byte, with kubectl.
func TestSeedManifestsApplyVerbatim(t *testing.T) {
	env, c := startEnv(t)
	for _, tt := range []struct {
		file        string
		annotation  string
		images      []string
		secrets     []string
		retention   int32
		size        int32
		statusIsSet bool
	}{
		{file: "seed-plain-http.yaml", annotation: "k8s.aliyun.com/plain-http-registry", images: []string{"192.168.XX.XX:5000/test/nginx:latest"},
			secrets: []string{"default:secret1", "default:secret2", "kube-system:secret3"}, retention: 7, size: 25},
		{file: "seed-insecure.yaml", annotation: "k8s.aliyun.com/insecure-registry", images: []string{"harbor***.pre.com/test/nginx:latest"},
			secrets: []string{"default:secret1", "default:secret2", "kube-system:secret3"}, retention: 7, size: 25},
		{file: "reference-sample.yaml", annotation: "k8s.aliyun.com/acr-instance-ids", images: []string{"centos:latest", "busybox:latest", "192.168.XX.XX:5000/test/nginx:latest"},
			secrets: []string{"default:secret1", "kube-system:secret3"}, retention: 7, size: 25},
	} {
		t.Run(tt.file, func(t *testing.T) {
			out, err := kubectl(t, env, "apply", "-f", filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("kubectl apply: %v\n%s", err, out)
			}
			if !strings.Contains(out, "imagecache.eci.alibabacloud.com/imagecache-sample created") {
				t.Fatalf("kubectl apply: %s", out)
			}
			var ic eciv1.ImageCache
			if err := c.Get(t.Context(), client.ObjectKey{Name: "imagecache-sample"}, &ic); err != nil {
				t.Fatal(err)
			}
			if _, ok := ic.Annotations[tt.annotation]; !ok {
				t.Errorf("annotation %s lost: %v", tt.annotation, ic.Annotations)
			}
			if strings.Join(ic.Spec.Images, ",") != strings.Join(tt.images, ",") ||
				strings.Join(ic.Spec.ImagePullSecrets, ",") != strings.Join(tt.secrets, ",") ||
				ptr.Deref(ic.Spec.RetentionDays, 0) != tt.retention || ptr.Deref(ic.Spec.ImageCacheSize, 0) != tt.size {
				t.Errorf("stored spec %+v", ic.Spec)
			}
			if ic.Status.Phase != "" {
				t.Errorf("status written on create through the main resource: %+v", ic.Status)
			}
			out, err = kubectl(t, env, "get", "imc")
			if err != nil {
				t.Fatalf("kubectl get imc: %v\n%s", err, out)
			}
			if header := strings.Fields(strings.SplitN(out, "\n", 2)[0]); strings.Join(header, " ") != "NAME CACHEID PHASE PROGRESS READY TARGET AGE" {
				t.Errorf("printer columns %q", header)
			}
			if err := c.Delete(t.Context(), &ic); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestValidation: the schema refuses what ECI refuses, naming the field and the value.
func TestValidation(t *testing.T) {
	_, c := startEnv(t)
	ok := eciv1.ImageCacheSpec{Images: []string{"nginx:1.25"}}
	for _, tt := range []struct {
		name    string
		mutate  func(*eciv1.ImageCacheSpec)
		wantErr string // "" = accepted
	}{
		{name: "minimal, defaulted", mutate: func(*eciv1.ImageCacheSpec) {}},
		{name: "digest and port", mutate: func(s *eciv1.ImageCacheSpec) {
			s.Images = []string{"127.0.0.1:5000/a/b-c/d_e@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "[::1]:5000/x:y"}
		}},
		{name: "no images", mutate: func(s *eciv1.ImageCacheSpec) { s.Images = nil }, wantErr: "spec.images"},
		{name: "empty image list", mutate: func(s *eciv1.ImageCacheSpec) { s.Images = []string{} }, wantErr: "spec.images"},
		{name: "upper-case repository", mutate: func(s *eciv1.ImageCacheSpec) { s.Images = []string{"nginx", "Nginx:1"} }, wantErr: `spec.images[1]: Invalid value: "Nginx:1"`},
		{name: "scheme in image", mutate: func(s *eciv1.ImageCacheSpec) { s.Images = []string{"https://r.io/a:1"} }, wantErr: `spec.images[0]: Invalid value: "https://r.io/a:1"`},
		{name: "space in image", mutate: func(s *eciv1.ImageCacheSpec) { s.Images = []string{"nginx 1"} }, wantErr: "spec.images[0]"},
		{name: "secret without namespace", mutate: func(s *eciv1.ImageCacheSpec) { s.ImagePullSecrets = []string{"secret1"} }, wantErr: `spec.imagePullSecrets[0]: Invalid value: "secret1"`},
		{name: "secret with slash", mutate: func(s *eciv1.ImageCacheSpec) { s.ImagePullSecrets = []string{"default:a", "default/b"} }, wantErr: `spec.imagePullSecrets[1]`},
		{name: "size too small", mutate: func(s *eciv1.ImageCacheSpec) { s.ImageCacheSize = ptr.To[int32](19) }, wantErr: "spec.imageCacheSize: Invalid value: 19"},
		{name: "size too large", mutate: func(s *eciv1.ImageCacheSpec) { s.ImageCacheSize = ptr.To[int32](32769) }, wantErr: "spec.imageCacheSize: Invalid value: 32769"},
		{name: "size bounds", mutate: func(s *eciv1.ImageCacheSpec) {
			s.ImageCacheSize = ptr.To[int32](32768)
			s.RetentionDays = ptr.To[int32](65536)
		}},
		{name: "retention zero", mutate: func(s *eciv1.ImageCacheSpec) { s.RetentionDays = ptr.To[int32](0) }, wantErr: "spec.retentionDays: Invalid value: 0"},
		{name: "retention too long", mutate: func(s *eciv1.ImageCacheSpec) { s.RetentionDays = ptr.To[int32](65537) }, wantErr: "spec.retentionDays: Invalid value: 65537"},
		{name: "bad node selector", mutate: func(s *eciv1.ImageCacheSpec) {
			s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}}, // the operator is checked by the controller (Failed, InvalidSpec); the schema has no enum for it
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := *ok.DeepCopy()
			tt.mutate(&spec)
			ic := &eciv1.ImageCache{ObjectMeta: metav1.ObjectMeta{GenerateName: "v-"}, Spec: spec}
			err := c.Create(t.Context(), ic)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.name == "minimal, defaulted" && ptr.Deref(ic.Spec.ImageCacheSize, 0) != 20 {
					t.Errorf("imageCacheSize defaulted to %v, want 20", ic.Spec.ImageCacheSize)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}
