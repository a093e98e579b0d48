package ram

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"cr:get*", "cr:getauthorizationtoken", true},
		{"cr:*", "ecs:describe", false},
		{"acs:cr:*:*:repository/cri-x/ns/*", "acs:cr:cn-hangzhou:1:repository/cri-x/ns/app", true},
		{"acs:cr:*:*:repository/cri-x/ns/*", "acs:cr:cn-hangzhou:1:repository/cri-x/ns", false},
		{"acs:cr:*:*:repository/cri-x/ns/*", "acs:cr:cn-hangzhou:1:repository/cri-x/other/app", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxc", false},
		{"abc", "abcd", false},
	} {
		if got := Glob(tc.p, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func doc(t *testing.T, s string) *world.PolicyDocument {
	t.Helper()
	d, err := world.ParsePolicyDocument([]byte(s), false)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEvaluate(t *testing.T) {
	ctx := NewContext(netip.MustParseAddr("10.1.2.3"), true, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name, policy, action, resource string
		want                           Decision
	}{
		{"allow wildcard case-insensitive", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"CR:Get*","Resource":"*"}]}`, "cr:GetAuthorizationToken", "*", Allow},
		{"implicit deny", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:List*","Resource":"*"}]}`, "cr:PushRepository", "x", ImplicitDeny},
		{"explicit deny wins", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*"},{"Effect":"Deny","Action":"cr:PushRepository","Resource":"*"}]}`, "cr:PushRepository", "x", ExplicitDeny},
		{"not action", `{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"cr:Push*","Resource":"*"}]}`, "cr:PullRepository", "x", Allow},
		{"not action excluded", `{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"cr:Push*","Resource":"*"}]}`, "cr:PushRepository", "x", ImplicitDeny},
		{"not resource", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","NotResource":"acs:cr:*:*:repository/cri-1/secret/*"}]}`, "cr:PullRepository", "acs:cr:r:1:repository/cri-1/secret/x", ImplicitDeny},
		{"resource ns", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":["acs:cr:*:*:repository/cri-1/ns/*"]}]}`, "cr:PushRepository", "acs:cr:cn-hangzhou:1:repository/cri-1/ns/app", Allow},
		{"ip condition", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8"]}}}]}`, "cr:PullRepository", "x", Allow},
		{"ip condition miss", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"}}}]}`, "cr:PullRepository", "x", ImplicitDeny},
		{"not ip deny", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*"},{"Effect":"Deny","Action":"cr:*","Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}]}`, "cr:PullRepository", "x", Allow},
		{"bool", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":true}}}]}`, "cr:PullRepository", "x", Allow},
		{"string like and equals ANDed", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"StringLike":{"acs:SourceIp":"10.*"},"StringEquals":{"acs:SecureTransport":"false"}}}]}`, "cr:PullRepository", "x", ImplicitDeny},
		{"missing key", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"StringEquals":{"acs:SourceVpc":"vpc-1"}}}]}`, "cr:PullRepository", "x", ImplicitDeny},
		{"missing key IfExists", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"StringEqualsIfExists":{"acs:SourceVpc":"vpc-1"}}}]}`, "cr:PullRepository", "x", Allow},
		{"numeric", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"NumericLessThan":{"n":10}}}]}`, "cr:PullRepository", "x", Allow},
		{"date", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2025-01-01T00:00:00Z"}}}]}`, "cr:PullRepository", "x", ImplicitDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Context{}
			for k, v := range ctx {
				c[k] = v
			}
			c.Set("n", "3")
			if got := Evaluate([]*world.PolicyDocument{doc(t, tc.policy)}, tc.action, tc.resource, c); got != tc.want {
				t.Errorf("Evaluate = %v, want %v", got, tc.want)
			}
		})
	}
}

type fixture struct {
	w   *world.World
	svc *Service
	now time.Time
}

func newFixture(t *testing.T, ttl time.Duration) *fixture {
	t.Helper()
	w, err := world.Default(world.DefaultOptions{TokenTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{w: w, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.svc = New(w, WithClock(func() time.Time { return f.now }))
	return f
}

func (f *fixture) principal(t *testing.T, ak string) *Principal {
	t.Helper()
	_, p, err := f.svc.ResolveAccessKey(ak, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorizeRepository(t *testing.T) {
	f := newFixture(t, 0)
	hzA, _ := f.w.InstanceByID(world.DemoInstanceAHangzhou)
	hzB, _ := f.w.InstanceByID(world.DemoInstanceBHangzhou)
	puller := f.principal(t, "LTAI5tFerryAPuller01")
	syncer := f.principal(t, "LTAI5tFerryASyncer01")
	root := f.principal(t, "LTAI5tFerryARoot0001")
	ctx := Context{}
	for _, tc := range []struct {
		name      string
		p         *Principal
		inst      *world.Instance
		ns, repo  string
		action    string
		wantAllow bool
	}{
		{"puller pulls", puller, hzA, "apps", "hello", ActionPull, true},
		{"puller cannot push", puller, hzA, "apps", "hello", ActionPush, false},
		{"syncer pushes its namespace", syncer, hzA, "image-syncer", "x", ActionPush, true},
		{"syncer creates in its namespace", syncer, hzA, "image-syncer", "x", ActionCreate, true},
		{"syncer cannot push apps", syncer, hzA, "apps", "hello", ActionPush, false},
		{"root pushes own", root, hzA, "apps", "hello", ActionPush, true},
		{"root cannot pull other account", root, hzB, "shared", "hello", ActionPull, false},
		{"puller cannot pull other account", puller, hzB, "shared", "hello", ActionPull, false},
		{"anonymous pulls public", nil, hzA, "public", "hello", ActionPull, true},
		{"anonymous pulls public auto-create", nil, hzA, "public", "not-yet", ActionPull, true},
		{"anonymous cannot pull private", nil, hzA, "apps", "hello", ActionPull, false},
		{"anonymous cannot push public", nil, hzA, "public", "hello", ActionPush, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.svc.AuthorizeRepository(tc.p, tc.inst, tc.ns, tc.repo, tc.action, ctx)
			if (err == nil) != tc.wantAllow {
				t.Fatalf("AuthorizeRepository = %v, want allow=%v", err, tc.wantAllow)
			}
			if err != nil && !errors.Is(err, ErrDenied) {
				t.Errorf("error %v is not ErrDenied", err)
			}
		})
	}
}

func TestResolveAccessKey(t *testing.T) {
	f := newFixture(t, 0)
	if _, _, err := f.svc.ResolveAccessKey("LTAI5tNope", ""); !errors.Is(err, ErrAccessKeyNotFound) {
		t.Errorf("unknown AK: %v", err)
	}
	deployer := f.principal(t, "LTAI5tFerryADeploy01")
	creds, sess, err := f.svc.AssumeRole(deployer, AssumeRoleInput{
		RoleArn: "acs:ram::" + world.DemoAccountB + ":role/acr-pull", RoleSessionName: "s1", DurationSeconds: 900,
	}, Context{})
	if err != nil {
		t.Fatal(err)
	}
	if sess.ARN() != "acs:ram::"+world.DemoAccountB+":role/acr-pull/s1" || sess.Chain[0] != deployer.ARN() {
		t.Errorf("session %s chain %v", sess.ARN(), sess.Chain)
	}
	for _, tc := range []struct {
		name, id, token string
		advance         time.Duration
		want            error
	}{
		{"ok", creds.AccessKeyID, creds.SecurityToken, 0, nil},
		{"missing token", creds.AccessKeyID, "", 0, ErrMissingToken},
		{"wrong token", creds.AccessKeyID, "CAISwrong", 0, ErrTokenMismatch},
		{"unknown STS", "STS.unknown", "x", 0, ErrAccessKeyNotFound},
		{"expired", creds.AccessKeyID, creds.SecurityToken, 900 * time.Second, ErrTokenExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(tc.advance)
			secret, p, err := f.svc.ResolveAccessKey(tc.id, tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && (secret != creds.AccessKeySecret || p != sess) {
				t.Error("wrong secret or principal")
			}
		})
	}
}

func TestAssumeRole(t *testing.T) {
	f := newFixture(t, 0)
	bRole := "acs:ram::" + world.DemoAccountB + ":role/acr-pull"
	deployer := f.principal(t, "LTAI5tFerryADeploy01")
	puller := f.principal(t, "LTAI5tFerryAPuller01")
	root := f.principal(t, "LTAI5tFerryARoot0001")
	bAdmin := f.principal(t, "LTAI5tFerryBAdmin001")
	worker, _ := f.w.ECSRoleRole()
	_, workerSess, err := f.svc.AssumeRoleForService(worker, "ecs.aliyuncs.com", "i-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		caller *Principal
		in     AssumeRoleInput
		want   error
	}{
		{"user cross-account", deployer, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok"}, nil},
		{"worker session chains", workerSess, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok"}, nil},
		{"root refused", root, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok"}, ErrRootCannotAssume},
		{"no sts permission", puller, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok"}, ErrNotAuthorizedByRAM},
		{"not trusted", bAdmin, AssumeRoleInput{RoleArn: "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoWorkerRole, RoleSessionName: "ok"}, ErrNotTrusted},
		{"no such role", deployer, AssumeRoleInput{RoleArn: "acs:ram::" + world.DemoAccountB + ":role/nope", RoleSessionName: "ok"}, ErrRoleNotExist},
		{"bad session name", deployer, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "a b"}, ErrSessionName},
		{"duration too long", deployer, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok", DurationSeconds: 43201}, ErrDuration},
		{"duration too short", deployer, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok", DurationSeconds: 899}, ErrDuration},
		{"bad policy", deployer, AssumeRoleInput{RoleArn: bRole, RoleSessionName: "ok", Policy: "{"}, ErrPolicyGrammar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.AssumeRole(tc.caller, tc.in, Context{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("AssumeRole = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestExternalIDAndSessionPolicy(t *testing.T) {
	f := newFixture(t, 0)
	b, _ := f.w.AccountByUID(world.DemoAccountB)
	b.Roles = append(b.Roles, &world.Role{Name: "ext", TrustPolicy: world.PolicyDocument{Version: "1", Statement: []world.Statement{{
		Effect: "Allow", Action: world.StringList{"sts:AssumeRole"},
		Principal: &world.PolicyPrincipal{RAM: world.StringList{"acs:ram::" + world.DemoAccountA + ":user/deployer"}},
		Condition: map[string]map[string]world.StringList{"StringEquals": {"sts:ExternalId": {"abcd1234"}}},
	}}}, Policies: []string{"AliyunContainerRegistryFullAccess"}})
	if err := f.w.Finalize(); err != nil {
		t.Fatal(err)
	}
	deployer := f.principal(t, "LTAI5tFerryADeploy01")
	arn := "acs:ram::" + world.DemoAccountB + ":role/ext"
	if _, _, err := f.svc.AssumeRole(deployer, AssumeRoleInput{RoleArn: arn, RoleSessionName: "xy", ExternalID: "wrong"}, Context{}); !errors.Is(err, ErrNotTrusted) {
		t.Fatalf("wrong ExternalId: %v", err)
	}
	_, sess, err := f.svc.AssumeRole(deployer, AssumeRoleInput{RoleArn: arn, RoleSessionName: "xy", ExternalID: "abcd1234",
		Policy: `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":"*"}]}`}, Context{})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := f.w.InstanceByID(world.DemoInstanceBHangzhou)
	if err := f.svc.AuthorizeRepository(sess, inst, "shared", "hello", ActionPull, Context{}); err != nil {
		t.Errorf("pull within session policy: %v", err)
	}
	if err := f.svc.AuthorizeRepository(sess, inst, "shared", "hello", ActionPush, Context{}); !errors.Is(err, ErrDenied) {
		t.Errorf("push outside session policy: %v", err)
	}
}

func TestAssumeRoleWithOIDC(t *testing.T) {
	f := newFixture(t, 0)
	a, _ := f.w.AccountByUID(world.DemoAccountA)
	prov := a.OIDCProviders[0]
	roleARN := "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoRRSARole
	good := OIDCIdentity{Issuer: prov.IssuerURL, Audience: []string{"sts.aliyuncs.com"}, Subject: world.DemoRRSASA}
	for _, tc := range []struct {
		name string
		id   OIDCIdentity
		role string
		want error
	}{
		{"trusted", good, roleARN, nil},
		{"other subject", OIDCIdentity{Issuer: good.Issuer, Audience: good.Audience, Subject: "system:serviceaccount:default:x"}, roleARN, ErrOIDCNotTrusted},
		{"other audience", OIDCIdentity{Issuer: good.Issuer, Audience: []string{"x"}, Subject: good.Subject}, roleARN, ErrOIDCNotTrusted},
		{"role without federated trust", good, "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoWorkerRole, ErrOIDCNotTrusted},
		{"role in other account", good, "acs:ram::" + world.DemoAccountB + ":role/acr-pull", ErrOIDCNotTrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p, err := f.svc.AssumeRoleWithOIDC(prov, tc.id, AssumeRoleInput{RoleArn: tc.role, RoleSessionName: "rrsa"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && p.Chain[0] != prov.ARN() {
				t.Errorf("chain = %v", p.Chain)
			}
		})
	}
}

func TestRegistryTokens(t *testing.T) {
	f := newFixture(t, time.Hour)
	start := f.now
	hzA, _ := f.w.InstanceByID(world.DemoInstanceAHangzhou)
	bjA, _ := f.w.InstanceByID(world.DemoInstanceABeijing)
	puller := f.principal(t, "LTAI5tFerryAPuller01")
	user, tok, exp := f.svc.IssueRegistryToken(puller, hzA)
	if user != TempUsername || len(tok) < 32 || !exp.Equal(start.Add(time.Hour)) {
		t.Fatalf("IssueRegistryToken = %s, len %d, %v", user, len(tok), exp)
	}
	// STS session shorter than the TTL caps the token.
	worker, _ := f.w.ECSRoleRole()
	_, sess, err := f.svc.AssumeRoleForService(worker, "ecs.aliyuncs.com", "i-1", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, stok, sexp := f.svc.IssueRegistryToken(sess, hzA)
	if !sexp.Equal(start.Add(15 * time.Minute)) {
		t.Errorf("STS-capped expiry = %v", sexp)
	}
	if p, inst, err := f.svc.LookupRegistryToken(user, tok); err != nil || p != puller || inst != hzA {
		t.Errorf("Lookup = %v %v %v", p, inst, err)
	}
	if _, _, err := f.svc.LookupRegistryToken("someone", tok); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong user: %v", err)
	}
	if _, err := f.svc.AuthenticateRegistry(user, tok, bjA); !errors.Is(err, ErrWrongInstance) {
		t.Errorf("other instance: %v", err)
	}
	f.now = start.Add(15 * time.Minute)
	if _, _, err := f.svc.LookupRegistryToken(user, stok); !errors.Is(err, ErrRegistryTokenExpired) {
		t.Errorf("STS token after session end: %v", err)
	}
	if _, err := f.svc.AuthenticateRegistry(user, tok, hzA); err != nil {
		t.Errorf("AK token still valid: %v", err)
	}
	f.now = start.Add(time.Hour)
	if _, err := f.svc.AuthenticateRegistry(user, tok, hzA); !errors.Is(err, ErrRegistryTokenExpired) {
		t.Errorf("expired: %v", err)
	}
}

func TestAuthenticateRegistryPassword(t *testing.T) {
	f := newFixture(t, 0)
	hzA, _ := f.w.InstanceByID(world.DemoInstanceAHangzhou)
	a, _ := f.w.AccountByUID(world.DemoAccountA)
	u, _ := a.User("acr-puller")
	for _, tc := range []struct {
		name, user, pass string
		want             error
	}{
		{"short name", "acr-puller", u.Password, nil},
		{"with uid", "acr-puller@" + world.DemoAccountA, u.Password, nil},
		{"wrong password", "acr-puller", "nope", ErrBadCredentials},
		{"user without password", "deployer", "", ErrBadCredentials},
		{"unknown account", "acr-puller@9999999999999999", u.Password, ErrBadCredentials},
		{"unknown token", TempUsername, "nope", ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.svc.AuthenticateRegistry(tc.user, tc.pass, hzA)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && p.User != u {
				t.Errorf("principal = %s", p.ARN())
			}
		})
	}
}

func TestAuthorizeAnonymous(t *testing.T) {
	f := newFixture(t, 0)
	if err := f.svc.Authorize(nil, ActionPull, "*", Context{}); !errors.Is(err, ErrDenied) {
		t.Errorf("Authorize(nil) = %v", err)
	}
}
