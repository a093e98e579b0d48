// Package kubeenv starts a real kube-apiserver and etcd (controller-runtime envtest) for tests, using the
// assets that hack/envtest-assets.sh builds from the Go module proxy.
package kubeenv

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Env is a running control plane.
type Env struct {
	Env            *envtest.Environment
	Config         *rest.Config
	Client         client.Client
	Clientset      kubernetes.Interface
	KubeconfigPath string // admin kubeconfig file
}

// Option adjusts the envtest environment before it starts.
type Option func(*envtest.Environment)

// WithCRDs loads CRD manifests from these directories.
func WithCRDs(dirs ...string) Option {
	return func(e *envtest.Environment) { e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, dirs...) }
}

// WithWebhooks installs the given webhook options (envtest serves the CA bundle and patches URLs).
func WithWebhooks(w envtest.WebhookInstallOptions) Option {
	return func(e *envtest.Environment) { e.WebhookInstallOptions = w }
}

// Assets returns the KUBEBUILDER_ASSETS directory, or "" when it is not built.
func Assets() string {
	dir := tools.Env("KUBEBUILDER_ASSETS")
	if dir == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return ""
	}
	return dir
}

// Start starts kube-apiserver and etcd and stops them when the test ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	assets := Assets()
	if assets == "" {
		tools.Require(t, "KUBEBUILDER_ASSETS is not set and bin/tools.env has none (run `make tools`)")
	}
	e := &envtest.Environment{BinaryAssetsDirectory: assets, ErrorIfCRDPathMissing: true}
	// envtest disables the ServiceAccount admission plugin by default (no controller-manager creates the
	// default ServiceAccounts). ferry depends on exactly that plugin — it copies a ServiceAccount's
	// imagePullSecrets into Pods at admission — so it runs here as in a real cluster: tests create the
	// ServiceAccounts their Pods use.
	e.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	for _, o := range opts {
		o(e)
	}
	cfg, err := e.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver+etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	env := &Env{Env: e, Config: cfg, Client: c, Clientset: cs}
	user, err := e.AddUser(envtest.User{Name: "ferry-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add admin user: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("admin kubeconfig: %v", err)
	}
	env.KubeconfigPath = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(env.KubeconfigPath, kc, 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return env
}
