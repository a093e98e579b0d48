// Package app is the acr-credential-helper command: flags, logging and the wiring of the
// pull-secret controller, the ServiceAccount webhook and the token client.
package app

import (
	"context"

	"github.com/spf13/cobra"
)

// RunFunc runs the helper with parsed options until ctx ends.
type RunFunc func(ctx context.Context, o *Options) error

// NewCommand returns the cobra command; run is called with the validated options.
func NewCommand(run RunFunc, args []string) *cobra.Command {
	o := DefaultOptions()
	cmd := &cobra.Command{
		Use:   "acr-credential-helper",
		Short: "Keep ACR pull Secrets fresh and merge them into ServiceAccounts",
		Long: `acr-credential-helper reads kube-system/acr-configuration (the ConfigMap of Alibaba Cloud's
aliyun-acr-credential-helper), mints registry tokens for every configured ACR instance, keeps one
kubernetes.io/dockerconfigjson Secret per (namespace, instance) fresh in the watched namespaces
(acr-pull-<instanceId> or acr-pull-personal-<region>), and merges those Secrets into the
imagePullSecrets of the selected ServiceAccounts without touching user entries. With
webhook-configuration.enable it also adds them to ServiceAccounts at creation.

Metrics are served on --metrics-bind-address; see docs/acr-credential-helper.md.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.SetArgs(args)
	return cmd
}
