package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/controller/namespace"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/operator/kube"
	"github.com/ferrypull/ferry/internal/pullsecret"
	ferrywebhook "github.com/ferrypull/ferry/internal/webhook"
	"github.com/ferrypull/ferry/internal/webhook/serviceaccount"
)

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;create;update;patch;delete

// Run starts the manager and blocks until ctx ends. Logs go to s.Err.
func Run(ctx context.Context, o *Options, s operator.Streams) error {
	return run(ctx, o, s, nil)
}

// run is Run with an optional TokenSource for the namespace controller in place of the cloud one
// (tests that count or fail token calls); the Pod-annotation path always uses the cloud one.
func run(ctx context.Context, o *Options, s operator.Streams, tokens pullsecret.TokenSource) error {
	logger := logr.FromSlogHandler(o.Logging.Handler(s.Err))
	kube.SetGlobalLoggers(logger)
	ctx = logr.NewContext(ctx, logger)

	cfg, err := restConfig(o)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst

	direct, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}

	var (
		certs    *ferrywebhook.CertProvider
		whServer webhook.Server
	)
	if o.WebhookPort > 0 {
		wo := webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.WebhookCertDir}
		if o.CertManager == "" {
			certs = &ferrywebhook.CertProvider{Client: direct, Namespace: o.Namespace, SecretName: o.WebhookCertSecret,
				DNSNames: ferrywebhook.ServiceDNSNames(o.WebhookService, o.Namespace)}
			if o.WebhookURL != "" {
				addWebhookURLHost(certs, o.WebhookURL)
			}
			if err := ensureCerts(ctx, certs); err != nil {
				return err
			}
			wo.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}
		}
		whServer = webhook.NewServer(wo)
	}

	scheme, err := managerScheme()
	if err != nil {
		return err
	}
	leNS := o.LeaderElectionNS
	if leNS == "" {
		leNS = o.Namespace
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logger,
		Cache:                         podWebhookCache(namespace.CacheOptions()),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       leNS,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 whServer,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(o.skipNameValidation)},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	mode, _ := acrconfig.ParseTokenMode(o.TokenMode)
	store := &pullsecret.Store{}
	cloud, err := newCloudTokens(ctx, o, mgr.GetAPIReader(), store)
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = cloud
	}
	rec := mgr.GetEventRecorder("ferry-acr-credential-helper")
	if err := (&namespace.ConfigReconciler{
		Client: mgr.GetClient(), Store: store, Recorder: rec, Elected: mgr.Elected(),
		Load: pullsecret.NewLoader(acrconfig.Options{ClusterRegion: o.Region, TokenMode: mode}),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up config controller: %w", err)
	}
	if err := (&namespace.NamespaceReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: store, Tokens: tokens, Recorder: rec,
		MaxConcurrentReconciles: o.Workers,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up pull-secret controller: %w", err)
	}
	imageCaches, err := setupImageCache(mgr, o, direct, cloud, rec)
	if err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if whServer != nil {
		mgr.GetWebhookServer().Register(serviceaccount.Path, serviceaccount.NewWebhook(store))
		podWebhooks, err := setupPodWebhook(mgr, o, store, cloud, rec)
		if err != nil {
			return err
		}
		if imageCaches {
			podWebhooks = withImageCacheWebhook(mgr, o, podWebhooks)
		}
		cm := &ferrywebhook.ConfigManager{
			Client: direct, Policy: store, Name: o.WebhookConfigName, Namespace: o.Namespace,
			URL: o.WebhookURL, Certs: certs, CertManager: o.CertManager, Resync: o.WebhookResync,
			Switched: func(cc admissionregistrationv1.WebhookClientConfig, fp string, timeout int32) admissionregistrationv1.MutatingWebhook {
				return serviceaccount.MutatingWebhook(cc, fp, timeout, o.Namespace)
			},
			SwitchedName: serviceaccount.WebhookName,
			Extra:        podWebhooks,
			NoCreate:     !o.WebhookConfigCreate,
		}
		if o.WebhookURL == "" {
			cm.Service = &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: o.WebhookService}
		}
		if err := mgr.Add(cm); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return err
		}
	} else if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}

	logger.Info("starting acr-credential-helper", "region", o.Region, "tokenMode", string(mode), "leaderElect", o.LeaderElect,
		"webhookPort", o.WebhookPort, "namespace", o.Namespace)
	return mgr.Start(ctx)
}

func restConfig(o *Options) (*rest.Config, error) {
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", o.Kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config (in-cluster or $KUBECONFIG): %w", err)
	}
	return cfg, nil
}

// addWebhookURLHost puts the host of --webhook-url into the serving certificate.
func addWebhookURLHost(c *ferrywebhook.CertProvider, raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		c.IPs = append(c.IPs, ip)
	} else if u.Hostname() != "" {
		c.DNSNames = append(c.DNSNames, u.Hostname())
	}
}

// ensureCerts loads or creates the webhook certificate before the server starts, retrying
// while the apiserver is unreachable.
func ensureCerts(ctx context.Context, c *ferrywebhook.CertProvider) error {
	var err error
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		if err = c.Ensure(ctx); err == nil {
			return nil
		}
		logr.FromContextOrDiscard(ctx).Error(err, "webhook certificate not ready; retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook certificate: %w", err)
		case <-time.After(delay):
		}
	}
}
