// Package app is the node-agent command: flags, logging and the wiring of the
// registry host configuration reconciler.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/nodeagent/agent"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/operator"
)

// RunFunc runs the agent with validated options until ctx ends; logs go to s.Err.
type RunFunc func(ctx context.Context, o *Options, s operator.Streams) error

// Options are node-agent's command-line settings.
type Options struct {
	NodeName          string
	ConfigPath        string
	AllowedRegistries []string
	Scope             string
	Kubeconfig        string

	// ImageCache pre-pull (docs/imagecache.md).
	ImageCache            bool
	CRISocket             string
	ImageCacheParallelism int
	CredentialsNamespace  string

	// The operator surface every ferry binary shares.
	operator.Logging
	operator.Listeners

	allow *hostsconfig.Allowlist
}

// DefaultOptions returns the defaults; NodeName defaults to $NODE_NAME.
func DefaultOptions() *Options {
	return &Options{
		NodeName:   os.Getenv("NODE_NAME"),
		ConfigPath: "/etc/containerd/certs.d",
		Scope:      string(agent.ScopeCluster),
		CRISocket:  "/run/containerd/containerd.sock",
		// The ImageCache controller's namespace (acr-credential-helper's), where it writes credentials.
		CredentialsNamespace:  envOr("POD_NAMESPACE", "kube-system"),
		ImageCacheParallelism: 2,
		Logging:               operator.Logging{Format: operator.FormatJSON},
		Listeners:             operator.Listeners{MetricsAddr: ":8080", HealthAddr: ":8081"},
	}
}

// AddFlags registers the flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of this node (default $NODE_NAME; the downward API spec.nodeName)")
	fs.StringVar(&o.ConfigPath, "config-path", o.ConfigPath, "containerd registry config_path (certs.d directory) as mounted in this container; a single directory")
	fs.StringSliceVar(&o.AllowedRegistries, "allowed-registries", o.AllowedRegistries,
		"registries Pod annotations may downgrade: host, host:port, *.domain[:port], CIDR; comma-separated or repeated; empty denies all")
	fs.StringVar(&o.Scope, "pod-scope", o.Scope, `which Pods to serve: "cluster" (Pods labelled by ferry's Pod webhook, configured before scheduling) or "node" (Pods bound to this node; no webhook needed, no ordering)`)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file (default: in-cluster config)")
	fs.BoolVar(&o.ImageCache, "image-cache", o.ImageCache, "pre-pull the images of ImageCaches (eci.alibabacloud.com/v1) that target this node through the CRI socket; needs the ImageCache and NodeImageCache CRDs")
	fs.StringVar(&o.CRISocket, "cri-socket", o.CRISocket, "CRI socket of the node's container runtime (for --image-cache)")
	fs.IntVar(&o.ImageCacheParallelism, "image-cache-parallelism", o.ImageCacheParallelism, "concurrent ImageCache pulls on this node")
	fs.StringVar(&o.CredentialsNamespace, "image-cache-credentials-namespace", o.CredentialsNamespace,
		"namespace of the ImageCache credentials Secrets written by acr-credential-helper (default $POD_NAMESPACE, else kube-system)")
	o.Listeners.AddFlags(fs, operator.WithHealthProbe(":8081"))
	o.Logging.AddFlags(fs)
}

// Validate checks the options and parses the allow-list.
func (o *Options) Validate() error {
	var errs []error
	if err := o.Logging.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required (or set NODE_NAME)"))
	}
	if o.ConfigPath == "" {
		errs = append(errs, errors.New("--config-path is required"))
	} else if strings.Contains(o.ConfigPath, ":") {
		errs = append(errs, fmt.Errorf("--config-path %q: give one directory; containerd's transfer service treats a colon-separated config_path as one path", o.ConfigPath))
	}
	if o.Scope != string(agent.ScopeCluster) && o.Scope != string(agent.ScopeNode) {
		errs = append(errs, fmt.Errorf("--pod-scope %q: want %q or %q", o.Scope, agent.ScopeCluster, agent.ScopeNode))
	}
	if o.ImageCache {
		if o.CRISocket == "" {
			errs = append(errs, errors.New("--cri-socket is required with --image-cache"))
		}
		if o.ImageCacheParallelism < 1 || o.ImageCacheParallelism > 64 {
			errs = append(errs, fmt.Errorf("--image-cache-parallelism %d: want 1–64", o.ImageCacheParallelism))
		}
		if o.CredentialsNamespace == "" {
			errs = append(errs, errors.New("--image-cache-credentials-namespace is required with --image-cache"))
		}
	}
	allow, err := hostsconfig.ParseAllowlist(o.AllowedRegistries)
	if err != nil {
		errs = append(errs, err)
	}
	o.allow = allow
	return errors.Join(errs...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Allowlist returns the parsed allow-list (after Validate).
func (o *Options) Allowlist() *hostsconfig.Allowlist { return o.allow }

// NewCommand returns the cobra command (the shape every ferry binary has); run is called with
// the validated options.
func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command {
	o := DefaultOptions()
	cmd := operator.Command("node-agent", "Configure containerd registry hosts for ECI registry annotations",
		`node-agent watches Pods annotated with k8s.aliyun.com/plain-http-registry or
k8s.aliyun.com/insecure-registry and writes containerd registry host configuration
(<config-path>/<host[:port]>/hosts.toml) for the hosts that --allowed-registries permits.
It merges into existing files and removes only what it wrote. Hosts outside the allow-list
get a Warning Event on the Pod. The result is published on the Node object
(annotation node-agent.ferry.dev/registry-hosts) for ferry's Pod gate.

The setting is node-wide: once written, every Pod on the node reaches that registry
over plain HTTP or without TLS verification. See docs/annotations.md.

With --image-cache it also pre-pulls the images of the ImageCaches that target this node
through the runtime's CRI socket, reports per image into the NodeImageCache named after the
node and labels the Node imagecache.ferry.dev/<imageCacheId>=ready. See docs/imagecache.md.`,
		s, args, func(cmd *cobra.Command) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o, s)
		})
	o.AddFlags(cmd.Flags())
	return cmd
}
