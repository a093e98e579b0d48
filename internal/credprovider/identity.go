package credprovider

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/redact"
)

// ServiceAccount annotations and the token audience of the KEP-4412 mode.
const (
	// RoleNameAnnotation names the RAM role of a ServiceAccount (ACK's RRSA convention, as
	// ack-pod-identity-webhook reads it). A full role ARN is accepted too.
	RoleNameAnnotation = "pod-identity.alibabacloud.com/role-name"
	// AssumeRoleAnnotation optionally names a role ARN to assume with the ServiceAccount's
	// role session (a cross-account hop); it replaces the instance's assumeRoleARN.
	AssumeRoleAnnotation = "ferry.dev/acr-assume-role-arn"
	// DefaultAudience is the audience of the ServiceAccount token: the client ID of ACK's
	// RRSA OIDC providers (tokenAttributes.serviceAccountTokenAudience).
	DefaultAudience = "sts.aliyuncs.com"
)

// ServiceAccountOptions turn on the KEP-4412 mode: a request carrying the Pod's
// ServiceAccount token and a role annotation is served with that role.
type ServiceAccountOptions struct {
	// OIDCProviderARN is the cluster's RRSA OIDC provider
	// (acs:ram::<uid>:oidc-provider/ack-rrsa-<cluster-id>); a role name is a role of its account.
	OIDCProviderARN string
	// RoleAnnotation (default RoleNameAnnotation) and AssumeRoleAnnotation (default
	// AssumeRoleAnnotation) are the ServiceAccount annotation keys read from the request.
	RoleAnnotation       string
	AssumeRoleAnnotation string
	// FallbackToNode serves requests without a token or without the role annotation with
	// the node identity. Off: such a request fails (ExitIdentity).
	FallbackToNode bool
}

// NodeIdentity is the identity of requests that are not served with a ServiceAccount role.
// Precedence: an instance's customAccessKey, then AccessKey, then TokenMode (workerRole:
// the ECS instance RAM role from metadata; managedRole: the managed role assumed with it;
// auto: managedRole when a managed role ARN is set).
type NodeIdentity struct {
	AccessKey *cloudcred.AccessKey
	TokenMode acrconfig.TokenMode
}

var (
	roleNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	providerRE = regexp.MustCompile(`^acs:ram::([0-9]{1,32}):oidc-provider/[A-Za-z0-9._@/-]{1,128}$`)
)

// Validate checks the options; errors name the setting.
func (o *ServiceAccountOptions) Validate() error {
	if o == nil {
		return nil
	}
	if !providerRE.MatchString(o.OIDCProviderARN) {
		return fmt.Errorf("OIDC provider ARN %q: must look like acs:ram::<uid>:oidc-provider/<name>", o.OIDCProviderARN)
	}
	return nil
}

func (o *ServiceAccountOptions) roleKey() string {
	if o.RoleAnnotation != "" {
		return o.RoleAnnotation
	}
	return RoleNameAnnotation
}

func (o *ServiceAccountOptions) hopKey() string {
	if o.AssumeRoleAnnotation != "" {
		return o.AssumeRoleAnnotation
	}
	return AssumeRoleAnnotation
}

// roleARN turns the annotation value (a role name, or a role ARN) into a role ARN of the
// OIDC provider's account.
func (o *ServiceAccountOptions) roleARN(v string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "acs:") {
		if !roleARNRE.MatchString(v) {
			return "", fmt.Errorf("ServiceAccount annotation %s: %q is neither a role name nor a role ARN (acs:ram::<uid>:role/<name>)", o.roleKey(), v)
		}
		return v, nil
	}
	if !roleNameRE.MatchString(v) {
		return "", fmt.Errorf("ServiceAccount annotation %s: %q is not a RAM role name (1-64 letters, digits, '.', '_', '-')", o.roleKey(), v)
	}
	m := providerRE.FindStringSubmatch(o.OIDCProviderARN)
	if m == nil {
		return "", fmt.Errorf("OIDC provider ARN %q: must look like acs:ram::<uid>:oidc-provider/<name>", o.OIDCProviderARN)
	}
	return "acs:ram::" + m[1] + ":role/" + v, nil
}

// Source says which identity served a request.
type Source string

// Identity sources.
const (
	SourceServiceAccount Source = "serviceAccount"
	SourceNode           Source = "node"
)

// identityRequest picks the identity of req for inst.
func (p *Provider) identityRequest(req *credentialproviderv1.CredentialProviderRequest, inst Instance) (cloudcred.Request, Source, error) {
	sa := p.opts.ServiceAccount
	if sa != nil {
		role := req.ServiceAccountAnnotations[sa.roleKey()]
		switch {
		case req.ServiceAccountToken != "" && role != "":
			arn, err := sa.roleARN(role)
			if err != nil {
				return cloudcred.Request{}, "", withCode(ExitIdentity, err)
			}
			hop := inst.AssumeRoleARN
			if v := strings.TrimSpace(req.ServiceAccountAnnotations[sa.hopKey()]); v != "" {
				if !roleARNRE.MatchString(v) {
					return cloudcred.Request{}, "", withCode(ExitIdentity, fmt.Errorf("ServiceAccount annotation %s: %q is not a role ARN (acs:ram::<uid>:role/<name>)", sa.hopKey(), v))
				}
				hop = v
			}
			return cloudcred.Request{ServiceAccountToken: redact.Secret(req.ServiceAccountToken), RRSARoleARN: arn,
				RRSAOIDCProviderARN: sa.OIDCProviderARN, AssumeRoleARN: hop, ExpireDuration: inst.ExpireDuration}, SourceServiceAccount, nil
		case sa.FallbackToNode:
		case req.ServiceAccountToken == "":
			return cloudcred.Request{}, "", withCode(ExitIdentity, errors.New("the kubelet sent no ServiceAccount token (set tokenAttributes.serviceAccountTokenAudience in the kubelet's CredentialProviderConfig; static Pods have none) and node fallback is off (--service-account-fallback-to-node)"))
		default:
			return cloudcred.Request{}, "", withCode(ExitIdentity, fmt.Errorf("the Pod's ServiceAccount has no %s annotation (or the kubelet does not pass it: list it in tokenAttributes.requiredServiceAccountAnnotationKeys or optionalServiceAccountAnnotationKeys) and node fallback is off (--service-account-fallback-to-node)", sa.roleKey()))
		}
	}
	return cloudcred.Request{CustomAccessKey: inst.CustomAccessKey, AddonAccessKey: p.opts.Node.AccessKey, TokenMode: p.opts.Node.TokenMode,
		AssumeRoleARN: inst.AssumeRoleARN, ExpireDuration: inst.ExpireDuration}, SourceNode, nil
}
