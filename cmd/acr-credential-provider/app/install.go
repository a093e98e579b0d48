package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/operator"
)

// InstallOptions are the flags of `acr-credential-provider install`, which the chart's
// DaemonSet runs to place the binary and its configuration on the node.
type InstallOptions struct {
	BinDir string
	Name   string
	Copies []string
	Watch  time.Duration
	operator.Logging
}

func newInstallCommand(s operator.Streams) *cobra.Command {
	o := &InstallOptions{Name: "acr-credential-provider", Logging: operator.Logging{Format: operator.FormatJSON}}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Place this binary and its configuration files on the node (the chart's DaemonSet)",
		Long: `install copies this executable into --bin-dir (the kubelet's --image-credential-provider-bin-dir)
and each --copy SRC=DST (the kubelet's CredentialProviderConfig, the provider's --config, an
acr-configuration ConfigMap volume, an AccessKey Secret volume) onto the node, files 0600 in 0700
directories. With --watch it repeats every interval until stopped, so ConfigMap and Secret
updates reach the node; a file is rewritten only when its content changed. The kubelet reads its
CredentialProviderConfig at start: restart it after the first install.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInstall(cmd.Context(), o, s)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.BinDir, "bin-dir", o.BinDir, "Directory of the kubelet's credential provider binaries (its --image-credential-provider-bin-dir).")
	fs.StringVar(&o.Name, "name", o.Name, "File name of the binary there: the provider name in the kubelet's CredentialProviderConfig.")
	fs.StringArrayVar(&o.Copies, "copy", o.Copies, "SRC=DST: copy a file, or the files of a directory, to DST on the node (repeatable).")
	fs.DurationVar(&o.Watch, "watch", o.Watch, "Repeat the copies at this interval until stopped (0: once).")
	o.Logging.AddFlags(fs)
	return cmd
}

func runInstall(ctx context.Context, o *InstallOptions, s operator.Streams) error {
	if err := o.Logging.Validate(); err != nil {
		return &credprovider.Error{Code: credprovider.ExitConfig, Err: err}
	}
	if o.BinDir == "" {
		return &credprovider.Error{Code: credprovider.ExitConfig, Err: errors.New("--bin-dir is required")}
	}
	if o.Watch < 0 {
		return &credprovider.Error{Code: credprovider.ExitConfig, Err: fmt.Errorf("--watch %s: must not be negative", o.Watch)}
	}
	var copies []credprovider.Copy
	for _, c := range o.Copies {
		cp, err := credprovider.ParseCopy(c)
		if err != nil {
			return &credprovider.Error{Code: credprovider.ExitConfig, Err: fmt.Errorf("--copy %w", err)}
		}
		copies = append(copies, cp)
	}
	log := o.Logging.Logger(s.Err)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	wrote, err := credprovider.InstallBinary(self, o.BinDir, o.Name)
	if err != nil {
		return err
	}
	log.Info("binary in place", "path", o.BinDir+"/"+o.Name, "updated", wrote)
	for {
		changed, err := credprovider.Sync(copies)
		if err != nil {
			if o.Watch == 0 {
				return err
			}
			log.Error("copy failed; retrying", "err", err)
		} else if len(changed) > 0 {
			log.Info("node files updated", "files", changed)
		}
		if o.Watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Watch):
		}
	}
}
