package credprovider

import (
	"strings"
	"testing"
	"time"

	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
)

func TestIdentityRequest(t *testing.T) {
	const provider = "acs:ram::1000000000000001:oidc-provider/ack-rrsa-c1"
	nodeAK := &cloudcred.AccessKey{ID: "LTAInode", Secret: "node-secret"}
	custom := &cloudcred.AccessKey{ID: "LTAIcustom", Secret: "custom-secret"}
	inst := Instance{ID: "cri-a", Region: "cn-hangzhou", AssumeRoleARN: "acs:ram::2:role/inst-hop", ExpireDuration: 2 * time.Hour, CustomAccessKey: custom}
	sa := &ServiceAccountOptions{OIDCProviderARN: provider}
	req := func(token string, ann map[string]string) *credentialproviderv1.CredentialProviderRequest {
		return &credentialproviderv1.CredentialProviderRequest{Image: "x.example/y", ServiceAccountToken: token, ServiceAccountAnnotations: ann}
	}
	role := func(v string) map[string]string { return map[string]string{RoleNameAnnotation: v} }
	tests := []struct {
		name     string
		sa       *ServiceAccountOptions
		req      *credentialproviderv1.CredentialProviderRequest
		source   Source
		roleARN  string
		hop      string
		wantErr  string
		wantCode int
	}{
		{name: "no ServiceAccount mode: node identity, instance key and hop", req: req("jwt", role("team-a")), source: SourceNode, hop: "acs:ram::2:role/inst-hop"},
		{name: "role name in the provider's account", sa: sa, req: req("jwt", role("team-a")), source: SourceServiceAccount,
			roleARN: "acs:ram::1000000000000001:role/team-a", hop: "acs:ram::2:role/inst-hop"},
		{name: "role ARN as is", sa: sa, req: req("jwt", role("acs:ram::3:role/other")), source: SourceServiceAccount, roleARN: "acs:ram::3:role/other", hop: "acs:ram::2:role/inst-hop"},
		{name: "hop annotation replaces the instance's", sa: sa, req: req("jwt", map[string]string{RoleNameAnnotation: "team-a", AssumeRoleAnnotation: "acs:ram::2:role/acr-pull"}),
			source: SourceServiceAccount, roleARN: "acs:ram::1000000000000001:role/team-a", hop: "acs:ram::2:role/acr-pull"},
		{name: "custom annotation keys", sa: &ServiceAccountOptions{OIDCProviderARN: provider, RoleAnnotation: "example.com/role"},
			req: req("jwt", map[string]string{"example.com/role": "r", RoleNameAnnotation: "ignored"}), source: SourceServiceAccount, roleARN: "acs:ram::1000000000000001:role/r", hop: "acs:ram::2:role/inst-hop"},
		{name: "bad role name", sa: sa, req: req("jwt", role("team a")), wantErr: `pod-identity.alibabacloud.com/role-name: "team a" is not a RAM role name`, wantCode: ExitIdentity},
		{name: "bad role ARN", sa: sa, req: req("jwt", role("acs:ram::x:role/")), wantErr: `is neither a role name nor a role ARN`, wantCode: ExitIdentity},
		{name: "bad hop", sa: sa, req: req("jwt", map[string]string{RoleNameAnnotation: "r", AssumeRoleAnnotation: "pull"}), wantErr: `ferry.dev/acr-assume-role-arn: "pull" is not a role ARN`, wantCode: ExitIdentity},
		{name: "no annotation, no fallback", sa: sa, req: req("jwt", nil), wantErr: "has no pod-identity.alibabacloud.com/role-name annotation", wantCode: ExitIdentity},
		{name: "no token, no fallback", sa: sa, req: req("", role("team-a")), wantErr: "the kubelet sent no ServiceAccount token", wantCode: ExitIdentity},
		{name: "no annotation, fallback", sa: &ServiceAccountOptions{OIDCProviderARN: provider, FallbackToNode: true}, req: req("jwt", nil), source: SourceNode, hop: "acs:ram::2:role/inst-hop"},
		{name: "no token, fallback", sa: &ServiceAccountOptions{OIDCProviderARN: provider, FallbackToNode: true}, req: req("", role("team-a")), source: SourceNode, hop: "acs:ram::2:role/inst-hop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Provider{opts: Options{ServiceAccount: tt.sa, Node: NodeIdentity{AccessKey: nodeAK, TokenMode: acrconfig.TokenModeWorkerRole}}}
			got, source, err := p.identityRequest(tt.req, inst)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ExitCode(err) != tt.wantCode {
					t.Fatalf("error %v (exit %d), want %q (exit %d)", err, ExitCode(err), tt.wantErr, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if source != tt.source || got.AssumeRoleARN != tt.hop || got.ExpireDuration != 2*time.Hour {
				t.Fatalf("source %s, request %+v", source, got)
			}
			switch source {
			case SourceServiceAccount:
				if got.ServiceAccountToken.Reveal() != "jwt" || got.RRSARoleARN != tt.roleARN || got.RRSAOIDCProviderARN != tt.sa.OIDCProviderARN ||
					got.CustomAccessKey != nil || got.AddonAccessKey != nil {
					t.Fatalf("ServiceAccount request %+v", got)
				}
			case SourceNode:
				if !got.ServiceAccountToken.IsZero() || got.CustomAccessKey != custom || got.AddonAccessKey != nodeAK || got.TokenMode != acrconfig.TokenModeWorkerRole {
					t.Fatalf("node request %+v", got)
				}
			}
		})
	}
	if err := (&ServiceAccountOptions{OIDCProviderARN: "acs:ram::1:role/x"}).Validate(); err == nil {
		t.Error("a role ARN accepted as the OIDC provider")
	}
}
