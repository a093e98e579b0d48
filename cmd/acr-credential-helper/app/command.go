// Package app is the acr-credential-helper command: flags, logging and the wiring of the
// pull-secret controller, the ServiceAccount webhook and the token client.
package app

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/operator"
)

// RunFunc runs the helper with validated options until ctx ends; logs go to s.Err.
type RunFunc func(ctx context.Context, o *Options, s operator.Streams) error

// NewCommand returns the cobra command (the shape every ferry binary has); run is called with
// the validated options.
func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command {
	o := DefaultOptions()
	cmd := operator.Command("acr-credential-helper", "Keep ACR pull Secrets fresh and merge them into ServiceAccounts",
		`acr-credential-helper reads kube-system/acr-configuration (the ConfigMap of Alibaba Cloud's
aliyun-acr-credential-helper), mints registry tokens for every configured ACR instance, keeps one
kubernetes.io/dockerconfigjson Secret per (namespace, instance) fresh in the watched namespaces
(acr-pull-<instanceId> or acr-pull-personal-<region>), and merges those Secrets into the
imagePullSecrets of the selected ServiceAccounts without touching user entries. With
webhook-configuration.enable it also adds them to ServiceAccounts at creation.

Metrics are served on --metrics-bind-address; see docs/acr-credential-helper.md.`,
		s, args, func(cmd *cobra.Command) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o, s)
		})
	o.AddFlags(cmd.Flags())
	return cmd
}
