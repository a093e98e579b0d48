package openapi

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapiv2 "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	sts "github.com/alibabacloud-go/sts-20150401/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/testjwt"
)

var (
	stsExpirationRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	bPullRole       = "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	rrsaRole        = "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoRRSARole
	rrsaProvider    = "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID
)

func (e *env) sts(t *testing.T, ak, secret string, o clientOpts) *sts.Client {
	t.Helper()
	c, err := sts.NewClient(e.config(ak, secret, o))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSTSAssumeRole(t *testing.T) {
	e := newEnv(t, envOptions{world: world.DefaultOptions{TokenTTL: time.Hour}})
	deployer := e.sts(t, "LTAI5tFerryADeploy01", e.secret(t, "LTAI5tFerryADeploy01"), clientOpts{})
	res, err := deployer.AssumeRole(&sts.AssumeRoleRequest{
		RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("ferry-test"), DurationSeconds: tea.Int64(900),
		SourceIdentity: tea.String("ci"),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Body.Credentials
	e.remember(tea.StringValue(c.AccessKeySecret), tea.StringValue(c.SecurityToken))
	if !strings.HasPrefix(tea.StringValue(c.AccessKeyId), "STS.") || !stsExpirationRE.MatchString(tea.StringValue(c.Expiration)) ||
		tea.StringValue(res.Body.AssumedRoleUser.Arn) != bPullRole+"/ferry-test" || tea.StringValue(res.Body.SourceIdentity) != "ci" {
		t.Fatalf("AssumeRole = %s", res.Body)
	}
	exp, _ := time.Parse(time.RFC3339, tea.StringValue(c.Expiration))

	// The STS credentials mint a token for account B's instance, capped at the session end.
	for _, alg := range []string{"", "v2"} {
		crc := e.cr(t, tea.StringValue(c.AccessKeyId), tea.StringValue(c.AccessKeySecret), clientOpts{token: tea.StringValue(c.SecurityToken), algorithm: alg})
		tok, err := crc.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceBHangzhou)})
		if err != nil {
			t.Fatalf("alg %q: %v", alg, err)
		}
		e.remember(tea.StringValue(tok.Body.AuthorizationToken))
		if got := time.UnixMilli(tea.Int64Value(tok.Body.ExpireTime)); !got.Equal(exp) {
			t.Errorf("token expiry %v, want the session end %v", got, exp)
		}
	}
	id, err := e.sts(t, tea.StringValue(c.AccessKeyId), tea.StringValue(c.AccessKeySecret), clientOpts{token: tea.StringValue(c.SecurityToken)}).GetCallerIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if tea.StringValue(id.Body.IdentityType) != "AssumedRoleUser" || tea.StringValue(id.Body.AccountId) != world.DemoAccountB || tea.StringValue(id.Body.Arn) != bPullRole+"/ferry-test" {
		t.Errorf("GetCallerIdentity = %s", id.Body)
	}

	t.Run("expired STS token", func(t *testing.T) {
		e.clock.Advance(901 * time.Second)
		defer e.clock.Advance(-901 * time.Second)
		crc := e.cr(t, tea.StringValue(c.AccessKeyId), tea.StringValue(c.AccessKeySecret), clientOpts{token: tea.StringValue(c.SecurityToken)})
		_, err := crc.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceBHangzhou)})
		if code, status := errCode(err); code != "InvalidSecurityToken.Expired" || status != 400 {
			t.Fatalf("expired: %v", err)
		}
	})
	t.Run("STS AK without token", func(t *testing.T) {
		crc := e.cr(t, tea.StringValue(c.AccessKeyId), tea.StringValue(c.AccessKeySecret), clientOpts{})
		_, err := crc.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceBHangzhou)})
		if code, _ := errCode(err); code != "MissingSecurityToken" {
			t.Fatalf("no token: %v", err)
		}
	})

	for _, tc := range []struct {
		name, ak string
		req      *sts.AssumeRoleRequest
		code     string
		status   int
	}{
		{"root account", "LTAI5tFerryARoot0001", &sts.AssumeRoleRequest{RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("x1")}, "NoPermission", 403},
		{"no sts:AssumeRole", "LTAI5tFerryAPuller01", &sts.AssumeRoleRequest{RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("x1")}, "NoPermission", 403},
		{"not trusted", "LTAI5tFerryBAdmin001", &sts.AssumeRoleRequest{RoleArn: tea.String(rrsaRole), RoleSessionName: tea.String("x1")}, "NoPermission", 403},
		{"too long", "LTAI5tFerryADeploy01", &sts.AssumeRoleRequest{RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("x1"), DurationSeconds: tea.Int64(50000)}, "InvalidParameter.DurationSeconds", 400},
		{"bad policy", "LTAI5tFerryADeploy01", &sts.AssumeRoleRequest{RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("x1"), Policy: tea.String("{")}, "InvalidParameter.PolicyGrammar", 400},
		{"bad session name", "LTAI5tFerryADeploy01", &sts.AssumeRoleRequest{RoleArn: tea.String(bPullRole), RoleSessionName: tea.String("a b")}, "InvalidParameter.RoleSessionName", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.sts(t, tc.ak, e.secret(t, tc.ak), clientOpts{}).AssumeRole(tc.req)
			if code, status := errCode(err); code != tc.code || status != tc.status {
				t.Fatalf("AssumeRole = %v, want %s/%d", err, tc.code, tc.status)
			}
		})
	}
}

// TestCredentialsRamRoleArnCrossAccount: credentials-go ram_role_arn (always https to STS,
// business parameters in a form body) assumes account B's acr-pull with A's user, then the CR
// SDK uses those credentials for B's instance.
func TestCredentialsRamRoleArnCrossAccount(t *testing.T) {
	e := newEnv(t, envOptions{})
	cred, err := credentials.NewCredential(&credentials.Config{
		Type:            tea.String("ram_role_arn"),
		AccessKeyId:     tea.String("LTAI5tFerryADeploy01"),
		AccessKeySecret: tea.String(e.secret(t, "LTAI5tFerryADeploy01")),
		RoleArn:         tea.String(bPullRole), RoleSessionName: tea.String("acr-helper"),
		RoleSessionExpiration: tea.Int(3600),
		STSEndpoint:           tea.String(hostOf(e.tls)),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cred.GetCredential()
	if err != nil {
		t.Fatal(err)
	}
	e.remember(tea.StringValue(got.AccessKeySecret), tea.StringValue(got.SecurityToken))
	if !strings.HasPrefix(tea.StringValue(got.AccessKeyId), "STS.") {
		t.Fatalf("credential = %s", tea.StringValue(got.AccessKeyId))
	}
	crc := e.crWith(t, cred)
	tok := e.registryToken(t, crc, world.DemoInstanceBHangzhou)
	p, inst, err := e.svc.LookupRegistryToken(tea.StringValue(tok.TempUsername), tea.StringValue(tok.AuthorizationToken))
	if err != nil || inst.ID != world.DemoInstanceBHangzhou || p.Chain[0] != "acs:ram::"+world.DemoAccountA+":user/deployer" {
		t.Fatalf("token principal = %v %v", p, err)
	}
	// B's role is not allowed on A's instance.
	_, err = crc.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(world.DemoInstanceAHangzhou)})
	if code, _ := errCode(err); code != "NoPrivilege" {
		t.Errorf("B's role on A's instance: %v", err)
	}
}

const testIssuer = "https://kubernetes.default.svc.cluster.local"

func TestOIDCRoleArn(t *testing.T) {
	key := testjwt.RSA(t, "k1")
	e := newEnv(t, envOptions{world: world.DefaultOptions{OIDCIssuer: testIssuer, OIDCJWKS: testjwt.JWKS(t, key)}})
	claims := func(sub, aud string) map[string]any {
		return map[string]any{"iss": testIssuer, "sub": sub, "aud": []string{aud}, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	good := key.Sign(t, claims(world.DemoRRSASA, "sts.aliyuncs.com"))
	if err := os.WriteFile(tokenFile, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	e.remember(good)
	cred, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("oidc_role_arn"), RoleArn: tea.String(rrsaRole), OIDCProviderArn: tea.String(rrsaProvider),
		OIDCTokenFilePath: tea.String(tokenFile), RoleSessionName: tea.String("acr-helper"), RoleSessionExpiration: tea.Int(3600),
		STSEndpoint: tea.String(hostOf(e.tls)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.registryToken(t, e.crWith(t, cred), world.DemoInstanceAHangzhou)
	got, _ := cred.GetCredential()
	e.remember(tea.StringValue(got.AccessKeySecret), tea.StringValue(got.SecurityToken))

	// The STS SDK's anonymous AssumeRoleWithOIDC, with the OIDCTokenInfo block and denials.
	anon, err := sts.NewClient(&openapiv2.Config{RegionId: tea.String("cn-hangzhou"), Endpoint: tea.String(hostOf(e.plain)), Protocol: tea.String("http")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := anon.AssumeRoleWithOIDC(&sts.AssumeRoleWithOIDCRequest{RoleArn: tea.String(rrsaRole), OIDCProviderArn: tea.String(rrsaProvider), OIDCToken: tea.String(good), RoleSessionName: tea.String("rrsa")})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(tea.StringValue(res.Body.Credentials.AccessKeySecret), tea.StringValue(res.Body.Credentials.SecurityToken))
	if info := res.Body.OIDCTokenInfo; tea.StringValue(info.Subject) != world.DemoRRSASA || tea.StringValue(info.ClientIds) != "sts.aliyuncs.com" || tea.StringValue(info.Issuer) != testIssuer {
		t.Errorf("OIDCTokenInfo = %s", info)
	}
	otherKey := testjwt.RSA(t, "k1")
	expired := claims(world.DemoRRSASA, "sts.aliyuncs.com")
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	for _, tc := range []struct {
		name, token, provider string
		code                  string
	}{
		{"audience", key.Sign(t, claims(world.DemoRRSASA, "other")), rrsaProvider, "AuthenticationFail.OIDCToken.AudienceNotMatch"},
		{"subject not trusted", key.Sign(t, claims("system:serviceaccount:default:evil", "sts.aliyuncs.com")), rrsaProvider, "AuthenticationFail.NoPermission"},
		{"signature", otherKey.Sign(t, claims(world.DemoRRSASA, "sts.aliyuncs.com")), rrsaProvider, "AuthenticationFail.OIDCToken.InvalidSignature"},
		{"expired", key.Sign(t, expired), rrsaProvider, "AuthenticationFail.OIDCToken.Expired"},
		{"malformed", "a.b", rrsaProvider, "AuthenticationFail.OIDCToken.Invalid"},
		{"unknown provider", good, "acs:ram::" + world.DemoAccountA + ":oidc-provider/nope", "AuthenticationFail.NoPermission"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anon.AssumeRoleWithOIDC(&sts.AssumeRoleWithOIDCRequest{RoleArn: tea.String(rrsaRole), OIDCProviderArn: tea.String(tc.provider), OIDCToken: tea.String(tc.token), RoleSessionName: tea.String("rrsa")})
			if code, status := errCode(err); code != tc.code || status != 401 {
				t.Fatalf("AssumeRoleWithOIDC = %v, want %s/401", err, tc.code)
			}
		})
	}
	// Anonymous calls are refused for every other action.
	// (The SDK refuses to send them, so this one is a raw request.)
	q := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2015-04-01"}, "Format": {"JSON"}, "Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05Z")}}
	resp, err := http.Post(e.plain.URL+"/?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"Code":"MissingAccessKeyId"`) {
		t.Errorf("anonymous GetCallerIdentity = %d %s", resp.StatusCode, b)
	}
}

func (e *env) personalTokens(t *testing.T, ak string, alg string) (map[string]any, error) {
	t.Helper()
	c, err := openapiv2.NewClient(e.config(ak, e.secret(t, ak), clientOpts{algorithm: alg}))
	if err != nil {
		t.Fatal(err)
	}
	params := &openapiutil.Params{Action: tea.String("GetAuthorizationToken"), Version: tea.String("2016-06-07"),
		Protocol: tea.String("HTTP"), Pathname: tea.String("/tokens"), Method: tea.String("GET"), AuthType: tea.String("AK"),
		Style: tea.String("ROA"), ReqBodyType: tea.String("json"), BodyType: tea.String("json")}
	return c.CallApi(params, &openapiutil.OpenApiRequest{}, &dara.RuntimeOptions{})
}

func TestPersonalTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, alg := range []string{"", "v2"} {
		res, err := e.personalTokens(t, "LTAI5tFerryAPuller01", alg)
		if err != nil {
			t.Fatalf("alg %q: %v", alg, err)
		}
		data, _ := res["body"].(map[string]any)["data"].(map[string]any)
		tok, _ := data["authorizationToken"].(string)
		e.remember(tok)
		if data["tempUserName"] != "cr_temp_user" || tok == "" || data["expireDate"] == nil {
			t.Fatalf("alg %q: body = %v", alg, res["body"])
		}
		_, inst, err := e.svc.LookupRegistryToken("cr_temp_user", tok)
		if err != nil || inst.Edition() != world.EditionPersonal || inst.Region != "cn-hangzhou" {
			t.Errorf("token = %v %v", inst, err)
		}
	}
	_, err := e.personalTokens(t, "LTAI5tFerryADeploy01", "")
	if code, status := errCode(err); code != "USER_NOT_EXIST" || status != 404 {
		t.Errorf("user without password: %v", err)
	}
	_, err = e.personalTokens(t, "LTAI5tFerryBAdmin001", "")
	if code, _ := errCode(err); code != "USER_NOT_EXIST" {
		t.Errorf("account without Personal namespaces: %v", err)
	}
}
