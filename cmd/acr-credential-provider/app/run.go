package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/operator"
)

// Run answers the request on s.In. Configuration problems come first (ExitConfig), then the
// request (ExitBadRequest), then the provider's answer.
func Run(ctx context.Context, o *Options, s operator.Streams) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	popts, secrets, err := o.providerOptions()
	if err != nil {
		return &credprovider.Error{Code: credprovider.ExitConfig, Err: err}
	}
	in := s.In
	if in == nil {
		in = eofReader{}
	}
	req, err := credprovider.DecodeRequest(in)
	if err != nil {
		return err
	}
	// the token and every AccessKey secret are scrubbed from any line, whatever its attribute
	popts.Logger = o.Logging.Logger(s.Err, append(secrets, req.ServiceAccountToken)...)
	p, err := credprovider.New(popts)
	if err != nil {
		return err
	}
	resp, err := p.Credentials(ctx, req)
	if err != nil {
		return err
	}
	if err := credprovider.EncodeResponse(s.Out, resp); err != nil {
		return &credprovider.Error{Code: credprovider.ExitConfig, Err: err}
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// providerOptions turns the flags and files into provider options, and returns the secrets
// read (for the log scrubber).
func (o *Options) providerOptions() (credprovider.Options, []string, error) {
	var popts credprovider.Options
	var secrets []string
	if o.ConfigFile != "" {
		c, err := credprovider.LoadConfig(o.ConfigFile)
		if err != nil {
			return popts, nil, fmt.Errorf("--config: %w", err)
		}
		popts.Instances = append(popts.Instances, c.ConfigInstances()...)
	}
	if o.ACRConfiguration != "" {
		ins, err := credprovider.LoadACRConfiguration(o.ACRConfiguration, o.Region)
		if err != nil {
			return popts, nil, fmt.Errorf("--acr-configuration: %w", err)
		}
		for _, in := range ins {
			if in.CustomAccessKey != nil {
				secrets = append(secrets, in.CustomAccessKey.Secret.Reveal())
			}
		}
		popts.Instances = append(popts.Instances, ins...)
	}
	mode, _ := acrconfig.ParseTokenMode(o.TokenMode)
	popts.Node.TokenMode = mode
	if o.AccessKeyFile != "" {
		ak, err := credprovider.ReadAccessKeyFile(o.AccessKeyFile)
		if err != nil {
			return popts, nil, fmt.Errorf("--access-key-file: %w", err)
		}
		secrets = append(secrets, ak.Secret.Reveal())
		popts.Node.AccessKey = ak
	}
	if o.OIDCProviderARN != "" {
		popts.ServiceAccount = &credprovider.ServiceAccountOptions{OIDCProviderARN: o.OIDCProviderARN,
			RoleAnnotation: o.RoleAnnotation, AssumeRoleAnnotation: o.AssumeRoleAnnotation, FallbackToNode: o.FallbackToNode}
	}
	if o.CAFile != "" {
		if _, err := os.Stat(o.CAFile); err != nil {
			return popts, nil, fmt.Errorf("--ca-file: %w", err)
		}
	}
	// built at the first cloud call: an answer from --cache-dir loads no CA bundle
	popts.HTTPClient = func() (*http.Client, error) {
		hc, err := cloudcred.NewHTTPClient(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		return hc, nil
	}
	popts.Cloud = cloudcred.Options{
		VPC: o.VPC, STSEndpoint: o.STSEndpoint, MetadataURL: o.MetadataEndpoint, MetadataProxy: o.MetadataProxy,
		MetadataRoleName: o.MetadataRoleName, DisableIMDSv1: !o.AllowIMDSv1, ManagedRoleARN: o.ManagedRoleARN,
		SessionName: "ferry-acr-credential-provider",
	}
	popts.ACR = acr.ClientOptions{Endpoint: o.CREndpoint, VPC: o.VPC, DialAddr: o.CloudDialAddr}
	popts.CacheMargin = o.CacheMargin
	popts.CacheDir = o.CacheDir
	if mode == acrconfig.TokenModeManagedRole && o.ManagedRoleARN == "" {
		return popts, nil, errors.New("--token-mode managedRole needs --managed-role-arn")
	}
	return popts, secrets, nil
}
