package app

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ferrypull/ferry/internal/nodeagent/agent"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/operator/kube"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

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
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Logger:                 logger,
		Cache:                  agent.CacheOptions(o.NodeName, scope),
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	r, err := agent.New(mgr.GetClient(), agent.Options{
		NodeName: o.NodeName, Scope: scope, Hosts: hostsconfig.New(o.ConfigPath), Allowlist: o.Allowlist(),
		Recorder: mgr.GetEventRecorder("ferry-node-agent"),
	})
	if err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up node-agent controller: %w", err)
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
	logger.Info("starting node-agent", "node", o.NodeName, "configPath", o.ConfigPath, "allowed", o.Allowlist().String(), "scope", o.Scope)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("node-agent: %w", err)
	}
	return nil
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
