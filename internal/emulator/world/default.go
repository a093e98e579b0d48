package world

import (
	"encoding/json"
	"fmt"
	"time"
)

// DefaultOptions adjust the built-in demo world.
type DefaultOptions struct {
	// ClusterID names the RRSA cluster (OIDC provider ack-rrsa-<ClusterID>); default c0ferry0demo.
	ClusterID string
	// OIDCIssuer is the RRSA provider's issuer URL; tests point it at an envtest apiserver.
	OIDCIssuer string
	// OIDCJWKS, OIDCJWKSFile or OIDCJWKSURL give the provider's keys (at most one).
	OIDCJWKS     json.RawMessage
	OIDCJWKSFile string
	OIDCJWKSURL  string
	// OIDCCAFile and OIDCBearerTokenFile configure the JWKS fetch from an apiserver.
	OIDCCAFile          string
	OIDCBearerTokenFile string
	// TokenTTL overrides the registry token lifetime (default 1h).
	TokenTTL time.Duration
}

// Fixed identifiers of the demo world, stable across starts (secrets are random per start).
const (
	DemoAccountA = "1000000000000001" // cluster owner
	DemoAccountB = "2000000000000002" // registry owner

	DemoInstanceAHangzhou = "cri-ahangzhou0001"
	DemoInstanceABeijing  = "cri-abeijing00001"
	DemoInstanceBHangzhou = "cri-bhangzhou0001"

	DemoWorkerRole = "KubernetesWorkerRole-c0ferry0demo"
	DemoRRSARole   = "ferry-rrsa-acr-helper"
	DemoPullRole   = "acr-pull"
	DemoECIRole    = "eci-acr-assume" // ArnService: assumed by the ECI service, may assume B's acr-pull
	DemoRRSASA     = "system:serviceaccount:kube-system:aliyun-acr-credential-helper"
	DemoClusterID  = "c0ferry0demo"
)

// Default returns the built-in demo world covering the scenarios of the source documents:
//
//   - account A (uid DemoAccountA, cluster owner): EE instances in cn-hangzhou and cn-beijing, a
//     Personal namespace in cn-hangzhou, the worker role handed out by ECS metadata, an RRSA role
//     trusting the aliyun-acr-credential-helper ServiceAccount through OIDC provider
//     ack-rrsa-<cluster>, and users acr-puller (exactly cr:GetAuthorizationToken,
//     cr:ListInstanceEndpoint, cr:PullRepository), image-syncer (push to, and list, the
//     image-syncer namespace), deployer (only sts:AssumeRole, no registry password) and admin;
//   - account B (uid DemoAccountB, registry owner): an EE instance in cn-hangzhou and role
//     acr-pull trusting A's root, A's worker role and A's RRSA role.
func Default(o DefaultOptions) (*World, error) {
	if o.ClusterID == "" {
		o.ClusterID = DemoClusterID
	}
	if o.OIDCIssuer == "" {
		o.OIDCIssuer = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou-internal.aliyuncs.com/" + o.ClusterID
	}
	provider := &OIDCProvider{
		Name: "ack-rrsa-" + o.ClusterID, IssuerURL: o.OIDCIssuer, ClientIDs: []string{"sts.aliyuncs.com"},
		JWKS: o.OIDCJWKS, JWKSFile: o.OIDCJWKSFile, JWKSURL: o.OIDCJWKSURL,
		CAFile: o.OIDCCAFile, BearerTokenFile: o.OIDCBearerTokenFile,
	}
	providerARN := "acs:ram::" + DemoAccountA + ":oidc-provider/" + provider.Name
	allow := func(res []string, actions ...string) Statement {
		return Statement{Effect: "Allow", Action: actions, Resource: res}
	}
	pullOnly := PolicyDocument{Version: "1", Statement: []Statement{
		allow([]string{"*"}, "cr:GetAuthorizationToken", "cr:ListInstanceEndpoint", "cr:PullRepository"),
	}}
	syncer := PolicyDocument{Version: "1", Statement: []Statement{
		allow([]string{"*"}, "cr:GetAuthorizationToken", "cr:ListInstance*", "cr:GetInstance*"),
		allow([]string{
			"acs:cr:*:*:repository/" + DemoInstanceAHangzhou + "/image-syncer/*",
			"acs:cr:*:*:repository/" + DemoInstanceAHangzhou + "/image-syncer",
		}, "cr:CreateRepository", "cr:UpdateRepository", "cr:PushRepository", "cr:PullRepository",
			"cr:ListRepository", "cr:GetRepository", "cr:ListRepoTag", "cr:GetRepoTag"),
	}}
	trustService := PolicyDocument{Version: "1", Statement: []Statement{{
		Effect: "Allow", Action: StringList{"sts:AssumeRole"},
		Principal: &PolicyPrincipal{Service: StringList{"ecs.aliyuncs.com"}},
	}}}
	trustECI := PolicyDocument{Version: "1", Statement: []Statement{{
		Effect: "Allow", Action: StringList{"sts:AssumeRole"},
		Principal: &PolicyPrincipal{Service: StringList{"eci.aliyuncs.com"}},
	}}}
	trustRRSA := PolicyDocument{Version: "1", Statement: []Statement{{
		Effect: "Allow", Action: StringList{"sts:AssumeRole"},
		Principal: &PolicyPrincipal{Federated: StringList{providerARN}},
		Condition: map[string]map[string]StringList{"StringEquals": {
			"oidc:iss": {o.OIDCIssuer}, "oidc:aud": {"sts.aliyuncs.com"}, "oidc:sub": {DemoRRSASA},
		}},
	}}}
	trustA := PolicyDocument{Version: "1", Statement: []Statement{{
		Effect: "Allow", Action: StringList{"sts:AssumeRole"},
		Principal: &PolicyPrincipal{RAM: StringList{
			"acs:ram::" + DemoAccountA + ":root",
			"acs:ram::" + DemoAccountA + ":role/" + DemoWorkerRole,
			"acs:ram::" + DemoAccountA + ":role/" + DemoRRSARole,
			"acs:ram::" + DemoAccountA + ":role/" + DemoECIRole,
		}},
	}}}
	a := &Account{
		Name: "A", UID: DemoAccountA,
		AccessKeys: []AccessKey{{ID: "LTAI5tFerryARoot0001"}},
		Policies: []*Policy{
			{Name: "ferry-pull-only", Document: pullOnly},
			{Name: "ferry-image-syncer", Document: syncer},
		},
		Users: []*User{
			{Name: "acr-puller", AccessKeys: []AccessKey{{ID: "LTAI5tFerryAPuller01"}}, Password: RandomSecret(16), Policies: []string{"ferry-pull-only"}},
			{Name: "image-syncer", AccessKeys: []AccessKey{{ID: "LTAI5tFerryASyncer01"}}, Password: RandomSecret(16), Policies: []string{"ferry-image-syncer"}},
			{Name: "deployer", AccessKeys: []AccessKey{{ID: "LTAI5tFerryADeploy01"}}, Policies: []string{"AliyunSTSAssumeRoleAccess"}},
			{Name: "admin", AccessKeys: []AccessKey{{ID: "LTAI5tFerryAAdmin001"}}, Password: RandomSecret(16), Policies: []string{"AdministratorAccess"}},
		},
		Roles: []*Role{
			{Name: DemoWorkerRole, Description: "ACK worker node role", TrustPolicy: trustService,
				Policies: []string{"AliyunCSManagedAcrRolePolicy", "AliyunSTSAssumeRoleAccess"}},
			{Name: DemoRRSARole, Description: "RRSA role of aliyun-acr-credential-helper", TrustPolicy: trustRRSA,
				Policies: []string{"AliyunCSManagedAcrRolePolicy", "AliyunSTSAssumeRoleAccess"}},
			{Name: DemoECIRole, Description: "ECI ArnService role: the ECI service assumes it to assume acr-pull in account B",
				TrustPolicy: trustECI, Policies: []string{"AliyunSTSAssumeRoleAccess"}},
		},
		OIDCProviders: []*OIDCProvider{provider},
		Instances: []*Instance{
			{
				ID: DemoInstanceAHangzhou, Name: "ferry-a", Region: "cn-hangzhou",
				InternetEndpoint: Endpoint{Enable: true}, VPCEndpoint: Endpoint{Enable: true},
				Namespaces: []*Namespace{
					{Name: "apps", AutoCreateRepo: true, DefaultRepoType: RepoTypePrivate},
					{Name: "public", AutoCreateRepo: true, DefaultRepoType: RepoTypePublic},
					{Name: "image-syncer", AutoCreateRepo: true, DefaultRepoType: RepoTypePrivate},
					{Name: "locked", AutoCreateRepo: false, DefaultRepoType: RepoTypePrivate},
				},
				Repositories: []*Repository{
					{Namespace: "apps", Name: "hello", RepoType: RepoTypePrivate},
					{Namespace: "public", Name: "hello", RepoType: RepoTypePublic},
				},
				Images: []string{"apps/hello:v1", "public/hello:v1"},
			},
			{
				ID: DemoInstanceABeijing, Name: "ferry-a", Region: "cn-beijing",
				InternetEndpoint: Endpoint{Enable: true, Whitelist: []string{"127.0.0.1/32"}}, VPCEndpoint: Endpoint{Enable: true},
				Namespaces:   []*Namespace{{Name: "apps", AutoCreateRepo: true, DefaultRepoType: RepoTypePrivate}},
				Repositories: []*Repository{{Namespace: "apps", Name: "hello"}},
				Images:       []string{"apps/hello:v1"},
			},
		},
		Personal: []*Instance{{
			Region:       "cn-hangzhou",
			Namespaces:   []*Namespace{{Name: "ferry-a", AutoCreateRepo: true, DefaultRepoType: RepoTypePrivate}},
			Repositories: []*Repository{{Namespace: "ferry-a", Name: "hello"}},
			Images:       []string{"ferry-a/hello:v1"},
		}},
	}
	b := &Account{
		Name: "B", UID: DemoAccountB,
		AccessKeys: []AccessKey{{ID: "LTAI5tFerryBRoot0001"}},
		Policies:   []*Policy{{Name: "acr-pull", Document: pullOnly}},
		Users: []*User{
			{Name: "admin", AccessKeys: []AccessKey{{ID: "LTAI5tFerryBAdmin001"}}, Password: RandomSecret(16), Policies: []string{"AdministratorAccess"}},
		},
		Roles: []*Role{
			{Name: DemoPullRole, Description: "cross-account pull from account A", TrustPolicy: trustA,
				MaxSessionDuration: 43200, Policies: []string{"acr-pull"}},
		},
		Instances: []*Instance{{
			ID: DemoInstanceBHangzhou, Name: "ferry-b", Region: "cn-hangzhou",
			InternetEndpoint: Endpoint{Enable: true}, VPCEndpoint: Endpoint{Enable: true},
			Namespaces:   []*Namespace{{Name: "shared", AutoCreateRepo: true, DefaultRepoType: RepoTypePrivate}},
			Repositories: []*Repository{{Namespace: "shared", Name: "hello"}},
			Images:       []string{"shared/hello:v1"},
		}},
	}
	w := &World{
		TokenTTL: Duration(o.TokenTTL),
		ECSRole:  &ECSRole{Account: "A", Role: DemoWorkerRole},
		Accounts: []*Account{a, b},
	}
	if err := w.Finalize(); err != nil {
		return nil, fmt.Errorf("demo world: %w", err)
	}
	return w, nil
}
