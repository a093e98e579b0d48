package cloudcred

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/ferrypull/ferry/internal/acrconfig"
)

func TestPrecedenceAndKeys(t *testing.T) {
	r, err := NewResolver(Options{Region: "cn-hangzhou", ManagedRoleARN: "acs:ram::1:role/AliyunCSManagedAcrRole"})
	if err != nil {
		t.Fatal(err)
	}
	addon := &AccessKey{ID: "LTAIaddon", Secret: "addon-secret-value"}
	custom := &AccessKey{ID: "LTAIcustom", Secret: "custom-secret-value"}
	tests := []struct {
		name string
		req  Request
		kind Kind
		key  string
	}{
		{"a ServiceAccount token wins over everything", Request{ServiceAccountToken: "header.sa-token-secret-value.sig", RRSARoleARN: "acs:ram::1:role/r",
			RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p", CustomAccessKey: custom, AddonAccessKey: addon},
			KindServiceAccountToken, "serviceAccountToken:acs:ram::1:oidc-provider/p:acs:ram::1:role/r:" + hashSecret("header.sa-token-secret-value.sig")},
		{"custom wins over everything", Request{CustomAccessKey: custom, RRSAEnabled: true, RRSARoleARN: "acs:ram::1:role/r", RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p", AddonAccessKey: addon},
			KindCustomAccessKey, "customAccessKey:LTAIcustom"},
		{"rrsa over add-on secret", Request{RRSAEnabled: true, RRSARoleARN: "acs:ram::1:role/r", RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p", AddonAccessKey: addon},
			KindRRSA, "rrsa:acs:ram::1:oidc-provider/p:acs:ram::1:role/r"},
		{"rrsa disabled", Request{RRSARoleARN: "acs:ram::1:role/r", RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p", AddonAccessKey: addon},
			KindAddonSecret, "addonSecret:LTAIaddon"},
		{"add-on secret over token mode", Request{AddonAccessKey: addon, TokenMode: acrconfig.TokenModeWorkerRole}, KindAddonSecret, "addonSecret:LTAIaddon"},
		{"half a custom key is ignored", Request{CustomAccessKey: &AccessKey{ID: "x"}, AddonAccessKey: addon}, KindAddonSecret, "addonSecret:LTAIaddon"},
		{"workerRole", Request{TokenMode: acrconfig.TokenModeWorkerRole}, KindWorkerRole, "workerRole"},
		{"auto picks managedRole when configured", Request{}, KindManagedRole, "workerRole>managedRole:acs:ram::1:role/AliyunCSManagedAcrRole"},
		{"chain", Request{AddonAccessKey: addon, AssumeRoleARN: "acs:ram::2:role/pull", ExpireDuration: 3 * time.Hour},
			KindAddonSecret, "addonSecret:LTAIaddon>assumeRole:acs:ram::2:role/pull:10800s"},
		{"chain default duration", Request{TokenMode: acrconfig.TokenModeWorkerRole, AssumeRoleARN: "acs:ram::2:role/pull"},
			KindWorkerRole, "workerRole>assumeRole:acs:ram::2:role/pull:3600s"},
		{"two-hop chain: AssumeRoleARN then AssumeRoleChain", Request{AddonAccessKey: addon, AssumeRoleARN: "acs:ram::1:role/svc", AssumeRoleChain: []string{"acs:ram::2:role/pull"}},
			KindAddonSecret, "addonSecret:LTAIaddon>assumeRole:acs:ram::1:role/svc:3600s>assumeRole:acs:ram::2:role/pull:3600s"},
		{"AssumeRoleChain alone", Request{TokenMode: acrconfig.TokenModeWorkerRole, AssumeRoleChain: []string{"acs:ram::1:role/svc", "acs:ram::2:role/pull"}},
			KindWorkerRole, "workerRole>assumeRole:acs:ram::1:role/svc:3600s>assumeRole:acs:ram::2:role/pull:3600s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := r.Resolve(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if id.Kind() != tt.kind || id.Key() != tt.key || id.String() != tt.key {
				t.Fatalf("got %s (%s), want %s (%s)", id.Key(), id.Kind(), tt.key, tt.kind)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %s", id, id.Chain(), id.LogValue()), "secret-value") {
				t.Fatal("identity prints a secret")
			}
		})
	}
	// a rotated secret behind the same AccessKey ID gets a new identity (same public key)
	a, _ := r.Resolve(t.Context(), Request{AddonAccessKey: addon})
	b, _ := r.Resolve(t.Context(), Request{AddonAccessKey: &AccessKey{ID: "LTAIaddon", Secret: "rotated-secret"}})
	if a == b || a.Key() != b.Key() {
		t.Error("rotated secret must give a new identity with the same key")
	}
	if _, err := r.Resolve(t.Context(), Request{AddonAccessKey: addon, AssumeRoleChain: []string{""}}); !errors.Is(err, ErrNoSource) {
		t.Errorf("empty ARN in the chain: %v", err)
	}
	// two ServiceAccount tokens for the same role never share an identity (nor its cache key)
	sa1, _ := r.Resolve(t.Context(), Request{ServiceAccountToken: "jwt-one", RRSARoleARN: "acs:ram::1:role/r", RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p"})
	sa2, _ := r.Resolve(t.Context(), Request{ServiceAccountToken: "jwt-two", RRSARoleARN: "acs:ram::1:role/r", RRSAOIDCProviderARN: "acs:ram::1:oidc-provider/p"})
	if sa1 == sa2 || sa1.Key() == sa2.Key() {
		t.Errorf("two ServiceAccount tokens share identity %s", sa1.Key())
	}
	if _, err := r.Resolve(t.Context(), Request{ServiceAccountToken: "jwt", RRSARoleARN: "acs:ram::1:role/r"}); !errors.Is(err, ErrNoSource) {
		t.Errorf("ServiceAccount token without a provider ARN: %v", err)
	}
	noManaged, _ := NewResolver(Options{})
	if _, err := noManaged.Resolve(t.Context(), Request{TokenMode: acrconfig.TokenModeManagedRole}); !errors.Is(err, ErrNoSource) {
		t.Errorf("managedRole without ARN: %v", err)
	}
	if id, _ := noManaged.Resolve(t.Context(), Request{}); id.Kind() != KindWorkerRole {
		t.Errorf("auto without a managed role = %s", id.Kind())
	}
}

func TestRequestFor(t *testing.T) {
	cfg, _, err := acrconfig.Parse(map[string]string{
		"rrsa": "enable: true",
		"acr-registry-info": `- instanceId: cri-a
  customAccessKey: LTAIx
  customAccessKeySecret: sec
  assumeRoleARN: acs:ram::2:role/p
  expireDuration: 7200
  rrsaRoleARN: acs:ram::1:role/r
  rrsaOIDCProviderRoleARN: acs:ram::1:oidc-provider/p`,
	}, acrconfig.Options{ClusterRegion: "cn-hangzhou", TokenMode: acrconfig.TokenModeWorkerRole})
	if err != nil {
		t.Fatal(err)
	}
	req := RequestFor(cfg, cfg.Instances[0], &AccessKey{ID: "a", Secret: "b"})
	if req.CustomAccessKey == nil || req.CustomAccessKey.Secret.Reveal() != "sec" || !req.RRSAEnabled || req.AssumeRoleARN != "acs:ram::2:role/p" ||
		req.ExpireDuration != 2*time.Hour || req.TokenMode != acrconfig.TokenModeWorkerRole || req.AddonAccessKey.ID != "a" {
		t.Fatalf("request = %+v", req)
	}
}

func TestEndpointsAndOptions(t *testing.T) {
	for _, tt := range []struct {
		region string
		vpc    bool
		want   string
	}{{"", false, "sts.aliyuncs.com"}, {"cn-beijing", false, "sts.cn-beijing.aliyuncs.com"}, {"cn-beijing", true, "sts-vpc.cn-beijing.aliyuncs.com"}} {
		if got := STSEndpoint(tt.region, tt.vpc); got != tt.want {
			t.Errorf("STSEndpoint(%q,%v) = %s", tt.region, tt.vpc, got)
		}
	}
	if _, err := NewResolver(Options{STSProtocol: "ftp"}); err == nil {
		t.Error("bad protocol accepted")
	}
	for _, tt := range []struct{ in, host, scheme, err string }{
		{"sts.cn-hangzhou.aliyuncs.com", "sts.cn-hangzhou.aliyuncs.com", "", ""},
		{"127.0.0.1:8443", "127.0.0.1:8443", "", ""},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", "http", ""},
		{"HTTPS://sts.local/", "sts.local", "https", ""},
		{"", "", "", ""},
		{"ftp://x", "", "", "scheme must be http or https"},
		{"https://u:pw-secret@x", "", "", "no path, query or credentials"},
		{"https://x/path", "", "", "no path"},
		{"x/path", "", "", "is not host[:port]"},
	} {
		host, scheme, err := SplitEndpoint(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("SplitEndpoint(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || host != tt.host || scheme != tt.scheme {
			t.Errorf("SplitEndpoint(%q) = %q %q %v", tt.in, host, scheme, err)
		}
	}
	if _, err := NewResolver(Options{STSEndpoint: "https://sts.local", STSProtocol: "http"}); err == nil {
		t.Error("conflicting scheme and protocol accepted")
	}
	if r, err := NewResolver(Options{STSEndpoint: "http://127.0.0.1:1"}); err != nil || r.opts.STSProtocol != "http" || r.opts.STSEndpoint != "127.0.0.1:1" {
		t.Errorf("URL endpoint: %v", err)
	}
	if _, err := NewHTTPClient("/nonexistent/ca.pem"); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestRefreshingProvider(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	var fail atomic.Bool
	p := &refreshing{name: "test", now: func() time.Time { return now }, fetch: func(ctx context.Context) (*session, error) {
		n := calls.Add(1)
		if fail.Load() {
			return nil, errors.New("sts down")
		}
		return &session{AccessKeyID: fmt.Sprintf("STS.%d", n), AccessKeySecret: "s", SecurityToken: "t", Expiration: now.Add(time.Hour)}, nil
	}}
	get := func() string {
		c, err := p.GetCredentials()
		if err != nil {
			t.Fatal(err)
		}
		return c.AccessKeyId
	}
	first, second := get(), get()
	if first != "STS.1" || second != "STS.1" {
		t.Fatal("not cached")
	}
	now = now.Add(29 * time.Minute)
	if get() != "STS.1" {
		t.Fatal("renewed before half its life")
	}
	now = now.Add(2 * time.Minute)
	if get() != "STS.2" {
		t.Fatal("not renewed after half its life")
	}
	// STS fails: the old session (29 min left) keeps being used
	fail.Store(true)
	now = now.Add(31 * time.Minute)
	if get() != "STS.2" {
		t.Fatal("old session not kept during an STS failure")
	}
	now = now.Add(29 * time.Minute) // 30 s left: no longer usable
	if _, err := p.GetCredentials(); err == nil {
		t.Fatal("want an error once the old session is about to expire")
	}
	if p.GetProviderName() != "test" {
		t.Error("provider name")
	}
}

func TestAsAPIError(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		status    int
		code      string
		reqID     string
		temporary bool
		missing   string
	}{
		{"client error permission", &openapi.ClientError{StatusCode: dara.Int(403), Code: dara.String("NoPermission"), Message: dara.String("code: 403, You are not authorized request id: R-1"), RequestId: dara.String("R-1")},
			403, "NoPermission", "R-1", false, "sts:AssumeRole"},
		{"server error", &openapi.ServerError{StatusCode: dara.Int(503), Code: dara.String("ServiceUnavailable"), RequestId: dara.String("R-2")}, 503, "ServiceUnavailable", "R-2", true, ""},
		{"throttling", &openapi.ThrottlingError{StatusCode: dara.Int(400), Code: dara.String("Throttling.User")}, 400, "Throttling.User", "", true, ""},
		{"dara sdk error", &dara.SDKError{StatusCode: dara.Int(404), Code: dara.String("USER_NOT_EXIST"), Data: dara.String(`{"requestId":"R-3"}`)}, 404, "USER_NOT_EXIST", "R-3", false, ""},
		{"transport", fmt.Errorf("dial tcp: %w", errors.New("connection refused")), 0, "", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AsAPIError("sts", "AssumeRole", tt.err)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("not an APIError: %v", err)
			}
			if ae.HTTPStatus != tt.status || ae.Code != tt.code || ae.RequestID != tt.reqID || ae.Temporary() != tt.temporary || ae.MissingAction() != tt.missing {
				t.Fatalf("got %+v temporary=%v missing=%q", ae, ae.Temporary(), ae.MissingAction())
			}
			if !errors.Is(err, tt.err) {
				t.Error("the SDK error is not wrapped")
			}
			if strings.Contains(ae.Message, "request id:") {
				t.Errorf("message keeps the SDK suffix: %q", ae.Message)
			}
		})
	}
	if AsAPIError("cr", "X", nil) != nil {
		t.Error("nil")
	}
	inner := &APIError{Service: "sts", Action: "AssumeRole", HTTPStatus: 403, Code: "NoPermission"}
	if got := AsAPIError("cr", "GetAuthorizationToken", fmt.Errorf("cred: %w", inner)); !errors.Is(got, inner) || MissingAction(got) != "sts:AssumeRole" {
		t.Errorf("an inner STS error must be kept: %v", got)
	}
	e := &APIError{Service: "cr", Action: "GetAuthorizationToken", HTTPStatus: http.StatusForbidden, Code: "NoPrivilege", Message: "Access denied", RequestID: "R"}
	if got := e.Error(); got != "cr GetAuthorizationToken failed (HTTP 403): NoPrivilege: Access denied (request id R); grant the RAM action cr:GetAuthorizationToken" {
		t.Errorf("Error() = %q", got)
	}
}

func TestAccessKeyFromSecretData(t *testing.T) {
	const sec = "very-secret-value"
	tests := []struct {
		data    map[string][]byte
		wantErr string
	}{
		{map[string][]byte{"access-key-id": []byte("LTAIx\n"), "access-key-secret": []byte(sec + "\n")}, ""},
		{map[string][]byte{}, "neither"},
		{map[string][]byte{"access-key-secret": []byte(sec)}, "no access-key-id"},
		{map[string][]byte{"access-key-id": []byte("LTAIx")}, "no access-key-secret"},
		{map[string][]byte{"access-key-id": []byte("LTAI x"), "access-key-secret": []byte(sec)}, "whitespace"},
	}
	for _, tt := range tests {
		ak, err := AccessKeyFromSecretData(tt.data)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), sec) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			continue
		}
		if err != nil || ak.ID != "LTAIx" || ak.Secret.Reveal() != sec || strings.Contains(fmt.Sprintf("%+v", ak), sec) {
			t.Errorf("ak = %+v, %v", ak, err)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	tests := []struct {
		name, endpoint, protocol string
		host, proto, err         string
	}{
		{name: "host only defaults to https", endpoint: "sts.local", host: "sts.local", proto: "https"},
		{name: "empty endpoint keeps the protocol", protocol: "HTTP", proto: "http"},
		{name: "scheme sets the protocol", endpoint: "http://127.0.0.1:1", host: "127.0.0.1:1", proto: "http"},
		{name: "scheme and protocol agree", endpoint: "HTTPS://sts.local", protocol: "https", host: "sts.local", proto: "https"},
		{name: "scheme and protocol conflict", endpoint: "https://sts.local", protocol: "http", err: `endpoint "https://sts.local" conflicts with protocol "http"`},
		{name: "bad protocol", endpoint: "sts.local", protocol: "FTP", err: `protocol "ftp" must be http or https`},
		{name: "bad endpoint", endpoint: "https://u:pw-secret@x", err: "endpoint: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, proto, err := ResolveEndpoint(tt.endpoint, tt.protocol)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "pw-secret") {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || proto != tt.proto {
				t.Fatalf("= %q %q %v, want %q %q", host, proto, err, tt.host, tt.proto)
			}
		})
	}
}
