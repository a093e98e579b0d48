package openapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ferrypull/ferry/internal/emulator/oidc"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
)

// TestRRSAWithKubeAPIServer is RRSA end to end against a real kube-apiserver: the RRSA
// provider's issuer and JWKS are the apiserver's own (/.well-known/openid-configuration,
// /openid/v1/jwks), a real ServiceAccount token comes from TokenRequest with audience
// sts.aliyuncs.com, and credentials-go oidc_role_arn exchanges it for the RRSA role's
// credentials, which then mint a registry token.
func TestRRSAWithKubeAPIServer(t *testing.T) {
	kube := kubeenv.Start(t)
	httpClient, err := rest.HTTPClientFor(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Get(strings.TrimSuffix(kube.Config.Host, "/") + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disco)
	resp.Body.Close()
	if err != nil || disco.Issuer == "" {
		t.Fatalf("openid-configuration: %v %+v", err, disco)
	}
	jwksURL := strings.TrimSuffix(kube.Config.Host, "/") + "/openid/v1/jwks"
	e := newEnv(t, envOptions{
		world: world.DefaultOptions{OIDCIssuer: disco.Issuer, OIDCJWKSURL: jwksURL},
		opts:  []Option{WithOIDCVerifier(oidc.NewVerifier(oidc.WithHTTPClient(httpClient)))},
	})

	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aliyun-acr-credential-helper"}}
	if _, err := kube.Clientset.CoreV1().ServiceAccounts("kube-system").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := kube.Clientset.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.aliyuncs.com"}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(tr.Status.Token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("oidc_role_arn"), RoleArn: tea.String(rrsaRole), OIDCProviderArn: tea.String(rrsaProvider),
		OIDCTokenFilePath: tea.String(tokenFile), RoleSessionName: tea.String("acr-helper"), STSEndpoint: tea.String(hostOf(e.tls)),
	})
	if err != nil {
		t.Fatal(err)
	}
	crc := e.crWith(t, cred)
	tok := e.registryToken(t, crc, world.DemoInstanceAHangzhou)
	p, _, err := e.svc.LookupRegistryToken(tea.StringValue(tok.TempUsername), tea.StringValue(tok.AuthorizationToken))
	if err != nil || p.Role.Name != world.DemoRRSARole || p.Chain[0] != rrsaProvider {
		t.Fatalf("token principal %v %v", p, err)
	}
	got, _ := cred.GetCredential()
	e.remember(tea.StringValue(got.AccessKeySecret), tea.StringValue(got.SecurityToken))

	// A token of another ServiceAccount is refused by the role's trust policy.
	other := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "intruder"}}
	if _, err := kube.Clientset.CoreV1().ServiceAccounts("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr2, err := kube.Clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, other.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.aliyuncs.com"}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(tr2.Status.Token)
	if err := os.WriteFile(tokenFile, []byte(tr2.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	cred2, err := credentials.NewCredential(&credentials.Config{
		Type: tea.String("oidc_role_arn"), RoleArn: tea.String(rrsaRole), OIDCProviderArn: tea.String(rrsaProvider),
		OIDCTokenFilePath: tea.String(tokenFile), RoleSessionName: tea.String("intruder"), STSEndpoint: tea.String(hostOf(e.tls)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred2.GetCredential(); err == nil || !strings.Contains(err.Error(), "AuthenticationFail.NoPermission") {
		t.Fatalf("intruder token: %v", err)
	}
}
