// Package kubeenv starts a real kube-apiserver and etcd (controller-runtime envtest) for tests, using the
// assets that hack/envtest-assets.sh builds from the Go module proxy.
package kubeenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

	controllerManager bool
}

// Option adjusts the environment before it starts.
type Option func(*envtest.Environment, *options)

type options struct{ controllerManager bool }

// WithCRDs loads CRD manifests from these directories.
func WithCRDs(dirs ...string) Option {
	return func(e *envtest.Environment, _ *options) { e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, dirs...) }
}

// WithWebhooks installs the given webhook options (envtest serves the CA bundle and patches URLs).
func WithWebhooks(w envtest.WebhookInstallOptions) Option {
	return func(e *envtest.Environment, _ *options) { e.WebhookInstallOptions = w }
}

// WithControllerManager also runs kube-controller-manager's serviceaccount controller, which creates the
// "default" ServiceAccount of every namespace as in a real cluster. Without it, tests create the
// ServiceAccounts their Pods use (the ServiceAccount admission plugin needs them either way).
func WithControllerManager() Option {
	return func(_ *envtest.Environment, o *options) { o.controllerManager = true }
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
	tools.Rig(t, "kube-apiserver and etcd")
	tools.NoInheritedFDs() // envtest's kube-apiserver and etcd must not inherit a lock held around go test
	assets := Assets()
	if assets == "" {
		tools.Require(t, "KUBEBUILDER_ASSETS is not set and bin/tools.env has none (run `make tools`)")
	}
	e := &envtest.Environment{BinaryAssetsDirectory: assets, ErrorIfCRDPathMissing: true}
	// envtest disables the ServiceAccount admission plugin by default because no controller-manager
	// creates the default ServiceAccounts. ferry depends on exactly that plugin — it copies a
	// ServiceAccount's imagePullSecrets into Pods at admission — so the rig runs it as a real cluster
	// does (optionally with kube-controller-manager's serviceaccount controller, WithControllerManager).
	e.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	var cfgOpts options
	for _, o := range opts {
		o(e, &cfgOpts)
	}
	kcm := ""
	if cfgOpts.controllerManager {
		kcm = tools.Env("FERRY_KUBE_CONTROLLER_MANAGER")
		if _, err := os.Stat(kcm); kcm == "" || err != nil {
			tools.Require(t, "kube-controller-manager unavailable (FERRY_KUBE_CONTROLLER_MANAGER=%q; run `make tools`)", kcm)
		}
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
	if kcm != "" {
		startControllerManager(t, kcm, env.KubeconfigPath)
		env.controllerManager = true
		env.WaitForServiceAccount(t, "default", "default")
	}
	return env
}

// CreateNamespace creates a namespace with its "default" ServiceAccount — created by
// kube-controller-manager when it runs (WithControllerManager), else here — so Pods can be admitted
// in it right away.
func (e *Env) CreateNamespace(t testing.TB, name string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	if !e.controllerManager {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}
		if err := e.Client.Create(t.Context(), sa); err != nil {
			t.Fatalf("create ServiceAccount %s/default: %v", name, err)
		}
	}
	e.WaitForServiceAccount(t, name, "default")
	return ns
}

// WaitForServiceAccount waits up to 30 s for a ServiceAccount to exist.
func (e *Env) WaitForServiceAccount(t testing.TB, namespace, name string) {
	t.Helper()
	err := tools.Poll(t.Context(), 30*time.Second, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		var sa corev1.ServiceAccount
		return e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sa) == nil, nil
	})
	if err != nil {
		t.Fatalf("ServiceAccount %s/%s does not exist: %v", namespace, name, err)
	}
}

// startControllerManager runs kube-controller-manager with only the serviceaccount controller, which
// creates the "default" ServiceAccount in every namespace, as in a real cluster.
func startControllerManager(t testing.TB, bin, kubeconfig string) {
	t.Helper()
	tools.StartProcess(t, "kube-controller-manager", filepath.Join(t.TempDir(), "kube-controller-manager.log"),
		bin, "--kubeconfig", kubeconfig, "--controllers", "serviceaccount", "--leader-elect=false", "--secure-port=0", "--v=1")
}
