package app

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/operator"
)

// Options are the command-line settings. Everything about registries and namespaces comes from
// the acr-configuration ConfigMap instead.
type Options struct {
	Kubeconfig string
	QPS        float32
	Burst      int
	Workers    int

	LeaderElect      bool
	LeaderElectionID string
	LeaderElectionNS string
	Namespace        string

	// The operator surface every ferry binary shares: --log-format, -v,
	// --metrics-bind-address, --health-probe-bind-address.
	operator.Logging
	operator.Listeners

	// Alibaba Cloud.
	Region           string
	TokenMode        string
	VPC              bool
	CREndpoint       string
	STSEndpoint      string
	MetadataEndpoint string
	MetadataProxy    string
	CloudDialAddr    string
	CAFile           string
	RRSATokenFile    string
	ManagedRoleARN   string
	AddonSecret      string
	AddonRefresh     time.Duration

	// Webhook.
	WebhookPort       int
	WebhookHost       string
	WebhookCertDir    string
	WebhookService    string
	WebhookURL        string
	WebhookConfigName string
	WebhookCertSecret string
	CertManager       string
	WebhookResync     time.Duration

	// WebhookConfigCreate: create (and delete) the MutatingWebhookConfiguration; false only
	// fills in the one its owner (the Helm chart) created.
	WebhookConfigCreate bool
	// ImageCache runs the ImageCache controller: auto, true or false (imagecache.go).
	ImageCache string

	// skipNameValidation lets tests run two helpers in one process.
	skipNameValidation bool
}

// DefaultOptions returns the defaults shown by --help.
func DefaultOptions() *Options {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kube-system"
	}
	return &Options{
		QPS: 100, Burst: 200, Workers: 8,
		LeaderElectionID:  "ferry-acr-credential-helper",
		Logging:           operator.Logging{Format: operator.FormatJSON},
		Listeners:         operator.Listeners{MetricsAddr: ":8080", HealthAddr: ":8081"},
		Namespace:         ns,
		TokenMode:         "auto",
		RRSATokenFile:     "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
		AddonSecret:       "kube-system/alibaba-addon-secret",
		AddonRefresh:      time.Minute,
		WebhookPort:       9443,
		WebhookService:    "ferry-acr-credential-helper",
		WebhookConfigName: "ferry-acr-credential-helper",
		WebhookCertSecret: "ferry-acr-credential-helper-webhook-cert",
		WebhookResync:     time.Minute,

		WebhookConfigCreate: true,
		ImageCache:          "auto",
	}
}

// AddFlags registers every flag with its documentation.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig; empty means in-cluster config (or $KUBECONFIG).")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "Client-side request rate limit towards the kube-apiserver.")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Client-side request burst towards the kube-apiserver.")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Namespaces reconciled in parallel.")

	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect a leader among replicas (a Lease in --leader-election-namespace); only the leader writes Secrets and ServiceAccounts, every replica serves the webhook. Set it when running more than one replica.")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "Name of the leader-election Lease.")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", o.LeaderElectionNS, "Namespace of the leader-election Lease (default: --namespace).")
	o.Listeners.AddFlags(fs, operator.WithHealthProbe(":8081"))
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "Namespace ferry runs in (default $POD_NAMESPACE, else kube-system): holds the webhook certificate Secret and is excluded from the webhook.")
	o.Logging.AddFlags(fs)

	fs.StringVar(&o.Region, "region", o.Region, "The cluster's Alibaba Cloud region (e.g. cn-hangzhou): the default regionId of acr-registry-info entries and of the default Personal Edition registry.")
	fs.StringVar(&o.TokenMode, "token-mode", o.TokenMode, "Base identity when an instance has no customAccessKey, no RRSA and no alibaba-addon-secret: auto, managedRole or workerRole (ECS instance RAM role from the metadata service).")
	fs.BoolVar(&o.VPC, "vpc", o.VPC, "Use the VPC endpoints of the Container Registry and STS APIs (cr-vpc.<region>.aliyuncs.com, sts-vpc.<region>.aliyuncs.com).")
	fs.StringVar(&o.CREndpoint, "cr-endpoint", o.CREndpoint, "Override the Container Registry OpenAPI endpoint (host[:port] or URL; e.g. the acr-emulator). Empty: cr[-vpc].<region>.aliyuncs.com.")
	fs.StringVar(&o.STSEndpoint, "sts-endpoint", o.STSEndpoint, "Override the STS endpoint (host[:port] or URL). Empty: sts[-vpc].<region>.aliyuncs.com.")
	fs.StringVar(&o.MetadataEndpoint, "metadata-endpoint", o.MetadataEndpoint, "Override the ECS instance metadata endpoint used by the worker role. Empty: http://100.100.100.200.")
	fs.StringVar(&o.MetadataProxy, "metadata-proxy", o.MetadataProxy, "HTTP proxy URL through which the metadata endpoint is reached (the acr-emulator serves 100.100.100.200 this way).")
	fs.StringVar(&o.CloudDialAddr, "cloud-dial-address", o.CloudDialAddr, "Dial every Container Registry API connection to this host:port while keeping the real endpoint names for TLS and signing (one acr-emulator serving all regions).")
	fs.StringVar(&o.CAFile, "ca-file", o.CAFile, "PEM CA bundle trusted for the Alibaba Cloud API endpoints in addition to the system roots (e.g. the acr-emulator's CA).")
	fs.StringVar(&o.ManagedRoleARN, "managed-role-arn", o.ManagedRoleARN, "RAM role assumed with the node's worker role in tokenMode managedRole, e.g. acs:ram::<uid>:role/AliyunCSManagedAcrRole (ACK's managed ACR role); with it, tokenMode auto means managedRole.")
	fs.StringVar(&o.RRSATokenFile, "rrsa-token-file", o.RRSATokenFile, "Projected ServiceAccount token (audience sts.aliyuncs.com) used for RRSA (AssumeRoleWithOIDC); re-read on every refresh.")
	fs.StringVar(&o.AddonSecret, "addon-secret", o.AddonSecret, "namespace/name of the Secret holding access-key-id and access-key-secret (registered, non-ACK clusters).")

	fs.DurationVar(&o.AddonRefresh, "addon-secret-refresh", o.AddonRefresh, "How long the --addon-secret AccessKey is reused before the Secret is read again.")

	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "Port of the ServiceAccount-creation webhook server; 0 disables the webhook entirely.")
	fs.StringVar(&o.WebhookHost, "webhook-host", o.WebhookHost, "Address the webhook server binds to (empty: all).")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", o.WebhookCertDir, "Directory with tls.crt/tls.key for the webhook server; only used with --cert-manager (otherwise ferry manages the certificate itself).")
	fs.StringVar(&o.WebhookService, "webhook-service", o.WebhookService, "Service (in --namespace) through which the apiserver reaches the webhook; also the certificate's DNS names.")
	fs.StringVar(&o.WebhookURL, "webhook-url", o.WebhookURL, "Reach the webhook at this https://host:port instead of the Service (for running outside the cluster); IP hosts are added to the certificate.")
	fs.StringVar(&o.WebhookConfigName, "webhook-configuration-name", o.WebhookConfigName, "Name of the MutatingWebhookConfiguration ferry creates, updates and deletes according to webhook-configuration in acr-configuration.")
	fs.BoolVar(&o.WebhookConfigCreate, "webhook-configuration-create", o.WebhookConfigCreate, "Create the MutatingWebhookConfiguration when it is missing (and delete it when the webhook is disabled). false: only fill in one that its owner created — the Helm chart does, so that helm uninstall removes it and a helper still running cannot bring it back.")
	fs.StringVar(&o.WebhookCertSecret, "webhook-cert-secret", o.WebhookCertSecret, "Secret (in --namespace) holding ferry's self-signed webhook CA and serving certificate; renewed when a third of its life is left.")
	fs.StringVar(&o.CertManager, "cert-manager", o.CertManager, "namespace/name of a cert-manager Certificate for the webhook: cert-manager issues the serving certificate (mounted at --webhook-cert-dir) and injects the CA; ferry then manages no certificate.")
	fs.DurationVar(&o.WebhookResync, "webhook-resync", o.WebhookResync, "How often the webhook certificate and configuration are re-checked.")
	o.addImageCacheFlags(fs)
}

// Validate checks flag values, naming the flag and the value.
func (o *Options) Validate() error {
	var errs []error
	if o.Region != "" {
		if err := (acrconfig.Options{ClusterRegion: o.Region}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--region: %w", err))
		}
	}
	if _, err := acrconfig.ParseTokenMode(o.TokenMode); err != nil {
		errs = append(errs, fmt.Errorf("--token-mode %q: must be auto, managedRole or workerRole", o.TokenMode))
	}
	if o.ManagedRoleARN != "" {
		if arns, err := annotations.ParseRoleARNs("--managed-role-arn", o.ManagedRoleARN); err != nil {
			errs = append(errs, err)
		} else if len(arns) != 1 {
			errs = append(errs, fmt.Errorf("--managed-role-arn %q: want one role ARN", o.ManagedRoleARN))
		}
	}
	if err := o.Logging.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Workers < 1 {
		errs = append(errs, fmt.Errorf("--workers %d: must be at least 1", o.Workers))
	}
	if o.WebhookPort < 0 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port %d: must be 0..65535", o.WebhookPort))
	}
	if o.WebhookURL != "" && !strings.HasPrefix(o.WebhookURL, "https://") {
		errs = append(errs, fmt.Errorf("--webhook-url %q: must start with https://", o.WebhookURL))
	}
	if o.CertManager != "" {
		if ns, name, ok := strings.Cut(o.CertManager, "/"); !ok || ns == "" || name == "" {
			errs = append(errs, fmt.Errorf("--cert-manager %q: want namespace/name", o.CertManager))
		}
		if o.WebhookCertDir == "" {
			errs = append(errs, errors.New("--cert-manager needs --webhook-cert-dir (where the Certificate's Secret is mounted)"))
		}
	}
	if err := o.validateImageCache(); err != nil {
		errs = append(errs, err)
	}
	if ns, name, ok := strings.Cut(o.AddonSecret, "/"); o.AddonSecret != "" && (!ok || ns == "" || name == "") {
		errs = append(errs, fmt.Errorf("--addon-secret %q: want namespace/name", o.AddonSecret))
	}
	return errors.Join(errs...)
}
