package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/operator"
)

// Options are the command-line settings; the kubelet passes them from the provider's args
// in its CredentialProviderConfig.
type Options struct {
	ConfigFile       string
	ACRConfiguration string
	Region           string

	// Node identity.
	AccessKeyFile    string
	TokenMode        string
	ManagedRoleARN   string
	MetadataRoleName string
	AllowIMDSv1      bool

	// KEP-4412 ServiceAccount mode (on when OIDCProviderARN is set).
	OIDCProviderARN      string
	RoleAnnotation       string
	AssumeRoleAnnotation string
	FallbackToNode       bool

	// Endpoints (the same flags as acr-credential-helper).
	VPC              bool
	CREndpoint       string
	STSEndpoint      string
	MetadataEndpoint string
	MetadataProxy    string
	CloudDialAddr    string
	CAFile           string

	CacheMargin time.Duration
	CacheDir    string
	Timeout     time.Duration

	// --log-format and -v, as every ferry binary has them.
	operator.Logging
}

// DefaultOptions returns the defaults shown by --help.
func DefaultOptions() *Options {
	return &Options{
		TokenMode:            "auto",
		RoleAnnotation:       credprovider.RoleNameAnnotation,
		AssumeRoleAnnotation: credprovider.AssumeRoleAnnotation,
		CacheMargin:          credprovider.DefaultCacheMargin,
		Timeout:              50 * time.Second,
		// text: the kubelet quotes the plugin's stderr inside its own log line
		Logging: operator.Logging{Format: operator.FormatText},
	}
}

// AddFlags registers every flag with its documentation.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "ACRCredentialProviderConfig file (ferry.dev/v1alpha1): instances with their region, name, custom domains and assumeRoleARN.")
	fs.StringVar(&o.ACRConfiguration, "acr-configuration", o.ACRConfiguration, "kube-system/acr-configuration as a directory of keys (a ConfigMap volume or a copy) or a ConfigMap YAML/JSON file: its acr-registry-info entries become instances (after those of --config).")
	fs.StringVar(&o.Region, "region", o.Region, "The cluster's region: the default regionId of acr-configuration entries.")

	fs.StringVar(&o.AccessKeyFile, "access-key-file", o.AccessKeyFile, "Node identity from an AccessKey: a directory with access-key-id and access-key-secret files (a Secret volume) or a YAML/JSON file with those keys. Wins over the ECS instance role.")
	fs.StringVar(&o.TokenMode, "token-mode", o.TokenMode, "Node identity without an AccessKey: workerRole (the ECS instance RAM role from metadata), managedRole (assume --managed-role-arn with it), or auto (managedRole when --managed-role-arn is set).")
	fs.StringVar(&o.ManagedRoleARN, "managed-role-arn", o.ManagedRoleARN, "Role assumed with the worker role in managedRole mode (e.g. acs:ram::<uid>:role/AliyunCSManagedAcrRole).")
	fs.StringVar(&o.MetadataRoleName, "metadata-role-name", o.MetadataRoleName, "The ECS instance's RAM role name; empty: read it from the metadata service.")
	fs.BoolVar(&o.AllowIMDSv1, "allow-imdsv1", o.AllowIMDSv1, "Fall back to tokenless metadata requests (IMDSv1) when the IMDSv2 token request fails.")

	fs.StringVar(&o.OIDCProviderARN, "oidc-provider-arn", o.OIDCProviderARN, "The cluster's RRSA OIDC provider (acs:ram::<uid>:oidc-provider/ack-rrsa-<cluster-id>). Set: a request with the Pod's ServiceAccount token (KEP-4412) and a role annotation is served with that role through AssumeRoleWithOIDC.")
	fs.StringVar(&o.RoleAnnotation, "service-account-role-annotation", o.RoleAnnotation, "ServiceAccount annotation naming the RAM role (a name in the OIDC provider's account, or a role ARN).")
	fs.StringVar(&o.AssumeRoleAnnotation, "service-account-assume-role-annotation", o.AssumeRoleAnnotation, "ServiceAccount annotation naming a role ARN to assume next (cross-account); replaces the instance's assumeRoleARN.")
	fs.BoolVar(&o.FallbackToNode, "service-account-fallback-to-node", o.FallbackToNode, "Serve requests without a ServiceAccount token or role annotation with the node identity. Off: they fail (exit 4).")

	fs.BoolVar(&o.VPC, "vpc", o.VPC, "Use the VPC endpoints of the Container Registry and STS APIs (cr-vpc.<region>.aliyuncs.com, sts-vpc.<region>.aliyuncs.com).")
	fs.StringVar(&o.CREndpoint, "cr-endpoint", o.CREndpoint, "Override the Container Registry OpenAPI endpoint (host[:port] or URL). Empty: cr[-vpc].<region>.aliyuncs.com.")
	fs.StringVar(&o.STSEndpoint, "sts-endpoint", o.STSEndpoint, "Override the STS endpoint (host[:port] or URL). Empty: sts[-vpc].<region>.aliyuncs.com.")
	fs.StringVar(&o.MetadataEndpoint, "metadata-endpoint", o.MetadataEndpoint, "Override the ECS instance metadata endpoint. Empty: http://100.100.100.200.")
	fs.StringVar(&o.MetadataProxy, "metadata-proxy", o.MetadataProxy, "HTTP proxy URL through which the metadata endpoint is reached (the acr-emulator serves 100.100.100.200 this way).")
	fs.StringVar(&o.CloudDialAddr, "cloud-dial-address", o.CloudDialAddr, "Dial every Container Registry API connection to this host:port, keeping the real endpoint names for TLS and signing (one acr-emulator serving all regions).")
	fs.StringVar(&o.CAFile, "ca-file", o.CAFile, "PEM CA bundle trusted for the Alibaba Cloud API endpoints in addition to the system roots.")

	fs.DurationVar(&o.CacheMargin, "cache-margin", o.CacheMargin, "cacheDuration = the token's remaining life minus this margin (at most half the life is subtracted).")
	fs.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "Keep node-identity registry tokens between runs in root-only files in this directory (created 0700), reused until half of their life has passed. Off by default: it writes temporary registry passwords to the node's disk. ServiceAccount tokens are never written.")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "Give up after this long (the kubelet kills the plugin after 1m).")
	o.Logging.AddFlags(fs)
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
	if o.OIDCProviderARN != "" {
		if err := (&credprovider.ServiceAccountOptions{OIDCProviderARN: o.OIDCProviderARN}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--oidc-provider-arn: %w", err))
		}
		if o.RoleAnnotation == "" {
			errs = append(errs, errors.New("--service-account-role-annotation: must not be empty"))
		}
	} else if o.FallbackToNode {
		errs = append(errs, errors.New("--service-account-fallback-to-node needs --oidc-provider-arn (without it every request uses the node identity)"))
	}
	if o.CacheMargin < 0 {
		errs = append(errs, fmt.Errorf("--cache-margin %s: must not be negative", o.CacheMargin))
	}
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: must be positive", o.Timeout))
	}
	if err := o.Logging.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
