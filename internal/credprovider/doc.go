// Package credprovider is the kubelet image credential provider for Alibaba Cloud Container
// Registry: it reads one credentialprovider.kubelet.k8s.io/v1 CredentialProviderRequest,
// finds the ACR instance behind the image's registry host, picks an identity (the Pod's
// ServiceAccount token exchanged with AssumeRoleWithOIDC under KEP-4412, a per-instance
// AccessKey, or the node's identity) and answers a CredentialProviderResponse with a
// temporary registry token cached for its life minus a margin.
//
//	req, err := credprovider.DecodeRequest(os.Stdin)        // strict; *Error with ExitBadRequest
//	p, err := credprovider.New(credprovider.Options{...})    // endpoints, instances, identity rules
//	resp, err := p.Credentials(ctx, req)
//	err = credprovider.EncodeResponse(os.Stdout, resp)
//	os.Exit(credprovider.ExitCode(err))                      // 0, or the class of the failure
//
// Nothing secret (the ServiceAccount token, AccessKey secrets, STS tokens, the registry
// password) appears in an error or a log line. The package imports no Kubernetes client.
package credprovider
