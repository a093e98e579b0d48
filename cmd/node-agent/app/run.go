package app

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/nodeagent/agent"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/nodeagent/prepull"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/operator/kube"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// With --image-cache:
// +kubebuilder:rbac:groups=eci.alibabacloud.com,resources=imagecaches,verbs=get;list;watch
// +kubebuilder:rbac:groups=ferry.dev,resources=nodeimagecaches,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch,namespace=kube-system

// Run starts the agent and blocks until ctx ends. Logs go to s.Err (slog through the
// redacting handler, as in every ferry binary).
func Run(ctx context.Context, o *Options, s operator.Streams) error {
	logger := logr.FromSlogHandler(o.Logging.Handler(s.Err))
	kube.SetGlobalLoggers(logger)
	ctx = logr.NewContext(ctx, logger)

	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	scope := agent.Scope(o.Scope)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eciv1.AddToScheme, ferryv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	cacheOpts := agent.CacheOptions(o.NodeName, scope)
	if o.ImageCache {
		for obj, by := range prepull.CacheByObject(o.NodeName, o.CredentialsNamespace) {
			cacheOpts.ByObject[obj] = by
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logger,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	hosts := hostsconfig.New(o.ConfigPath)
	r, err := agent.New(mgr.GetClient(), agent.Options{
		NodeName: o.NodeName, Scope: scope, Hosts: hosts, Allowlist: o.Allowlist(),
		Recorder: mgr.GetEventRecorder("ferry-node-agent"),
	})
	if err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up node-agent controller: %w", err)
	}
	if o.ImageCache {
		if err := setupPrePull(ctx, mgr, o, hosts); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("registry-config", r.ReadyCheck); err != nil {
		return err
	}
	if o.Allowlist().Len() == 0 {
		logger.Info("--allowed-registries is empty: every plain-http-registry / insecure-registry annotation will be refused")
	}
	logger.Info("starting node-agent", "node", o.NodeName, "configPath", o.ConfigPath, "allowed", o.Allowlist().String(), "scope", o.Scope,
		"imageCache", o.ImageCache)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("node-agent: %w", err)
	}
	return nil
}

// setupPrePull wires the ImageCache pre-puller: CRI connection, shared hosts.toml writer (both
// sources expected, so a restart removes no block early), controller and readiness check.
func setupPrePull(ctx context.Context, mgr ctrl.Manager, o *Options, hosts *hostsconfig.Manager) error {
	hosts.ExpectSources("", prepull.HostsSource)
	rt, err := prepull.Dial(ctx, o.CRISocket)
	if err != nil {
		return fmt.Errorf("--image-cache: %w", err)
	}
	pp, err := prepull.New(mgr.GetClient(), prepull.Options{
		NodeName: o.NodeName, Runtime: rt, Hosts: hosts, Allowlist: o.Allowlist(),
		CredentialsNamespace: o.CredentialsNamespace, Parallelism: o.ImageCacheParallelism,
	})
	if err != nil {
		return err
	}
	if err := pp.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up image pre-pull controller: %w", err)
	}
	return mgr.AddReadyzCheck("image-cache", pp.ReadyCheck)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (use --kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
