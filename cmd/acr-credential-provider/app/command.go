// Package app is the acr-credential-provider command: flags, logging, and one
// CredentialProviderRequest (stdin) answered with one CredentialProviderResponse (stdout).
package app

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/operator"
)

// RunFunc answers one request with validated options: the request is read from s.In, the
// response written to s.Out, logs to s.Err.
type RunFunc func(ctx context.Context, o *Options, s operator.Streams) error

// NewCommand returns the cobra command (the shape every ferry binary has).
func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command {
	o := DefaultOptions()
	cmd := operator.Command("acr-credential-provider", "Kubelet image credential provider for Alibaba Cloud Container Registry",
		`acr-credential-provider is run by the kubelet (--image-credential-provider-config,
--image-credential-provider-bin-dir) for every image matching its matchImages. It reads a
credentialprovider.kubelet.k8s.io/v1 CredentialProviderRequest on stdin, finds the ACR instance
of the image's registry, mints a temporary registry token and writes a CredentialProviderResponse
on stdout. No pull Secret is involved.

Identity: with --oidc-provider-arn and the kubelet's tokenAttributes (KEP-4412), the Pod's
ServiceAccount token is exchanged with AssumeRoleWithOIDC for the role named by the
ServiceAccount annotation pod-identity.alibabacloud.com/role-name; otherwise (or as a configured
fallback) the node's identity: an instance's customAccessKey, --access-key-file, or the ECS
instance RAM role from metadata (IMDSv2), optionally assuming --managed-role-arn.

Exit codes: 0 ok, 1 configuration, 2 malformed request, 3 unknown registry host, 4 no identity,
5 cloud API failure; the reason is one line on stderr. See docs/acr-credential-provider.md.

The install subcommand places the binary and its files on a node (the chart's DaemonSet).`,
		s, args, func(cmd *cobra.Command) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o, s)
		})
	o.AddFlags(cmd.Flags())
	cmd.AddCommand(newInstallCommand(s))
	return cmd
}
