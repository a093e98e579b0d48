package credprovider

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kubeletcp "k8s.io/kubelet/pkg/apis/credentialprovider"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
)

const testToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2VjcmV0LXNpZ25hdHVyZQ"

func TestDecodeRequest(t *testing.T) {
	const v1 = `"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"`
	tests := []struct {
		name, in string
		want     string // error substring; "" = valid
	}{
		{"minimal", `{` + v1 + `,"image":"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com/apps/hello:v1"}`, ""},
		{"token and annotations", `{` + v1 + `,"image":"registry.cn-hangzhou.aliyuncs.com/ns/app@sha256:` + strings.Repeat("a", 64) + `","serviceAccountToken":"` + testToken + `","serviceAccountAnnotations":{"pod-identity.alibabacloud.com/role-name":"team-a"}}`, ""},
		{"port in the host", `{` + v1 + `,"image":"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443/apps/hello"}`, ""},
		{"v1beta1 is not served", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderRequest","image":"a.b/c"}`, `apiVersion "credentialprovider.kubelet.k8s.io/v1beta1" is not supported`},
		{"v1alpha1 is not served", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","kind":"CredentialProviderRequest","image":"a.b/c"}`, `is not supported: want credentialprovider.kubelet.k8s.io/v1`},
		{"no apiVersion", `{"kind":"CredentialProviderRequest","image":"a.b/c"}`, `apiVersion "" is not supported`},
		{"another group", `{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c"}`, `is not supported`},
		{"wrong kind", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","image":"a.b/c"}`, `kind "CredentialProviderResponse": want CredentialProviderRequest`},
		{"no kind", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a.b/c"}`, `kind "": want CredentialProviderRequest`},
		{"unknown field", `{` + v1 + `,"image":"a.b/c","imagePullSecret":"x"}`, `unknown field "imagePullSecret"`},
		{"duplicate field", `{` + v1 + `,"image":"a.b/c","image":"evil.example/c"}`, `duplicate field "image"`},
		{"wrong case", `{` + v1 + `,"Image":"a.b/c"}`, `unknown field "Image"`},
		{"wrong type", `{` + v1 + `,"image":42}`, `decode CredentialProviderRequest`},
		{"annotations not a map", `{` + v1 + `,"image":"a.b/c","serviceAccountAnnotations":["x"]}`, `decode CredentialProviderRequest`},
		{"empty", ``, `empty request`},
		{"not JSON", `image: a.b/c`, `not a JSON object`},
		{"JSON array", `[1,2]`, `not a JSON object`},
		{"truncated", `{` + v1 + `,"image":"a.b/c"`, `unexpected end of JSON input`},
		{"empty image", `{` + v1 + `,"image":""}`, `image: must not be empty`},
		{"no image", `{` + v1 + `}`, `image: must not be empty`},
		{"bad image", `{` + v1 + `,"image":"UPPER/Case::x"}`, `image: "UPPER/Case::x" is not an image reference`},
		{"image too long", `{` + v1 + `,"image":"a.b/` + strings.Repeat("c", MaxImageLength) + `"}`, `image: longer than 4096`},
		{"too large", `{` + v1 + `,"image":"a.b/c","serviceAccountToken":"` + strings.Repeat("x", MaxRequestSize) + `"}`, `larger than 1048576 bytes`},
		{"token in a malformed request", `{` + v1 + `,"image":"a.b/c","serviceAccountToken":"` + testToken + `","extra":"` + testToken + `"}`, `unknown field "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest(strings.NewReader(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if req.Image == "" {
					t.Fatal("no image")
				}
				return
			}
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", req, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			if ExitCode(err) != ExitBadRequest {
				t.Fatalf("exit code %d, want %d", ExitCode(err), ExitBadRequest)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("the error contains the ServiceAccount token")
			}
		})
	}
}

// TestResponseDecodesLikeTheKubelet decodes the response with the kubelet's own decoder
// (internal types through the install package, as pkg/credentialprovider/plugin does).
func TestResponseDecodesLikeTheKubelet(t *testing.T) {
	var buf bytes.Buffer
	err := EncodeResponse(&buf, &credentialproviderv1.CredentialProviderResponse{
		CacheKeyType:  credentialproviderv1.RegistryPluginCacheKeyType,
		CacheDuration: &metav1.Duration{Duration: 45 * time.Minute},
		Auth:          map[string]credentialproviderv1.AuthConfig{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443": {Username: "cr_temp_user", Password: "pw"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := runtime.NewScheme()
	install.Install(s)
	obj, gvk, err := serializer.NewCodecFactory(s).UniversalDecoder().Decode(buf.Bytes(), nil, nil)
	if err != nil {
		t.Fatalf("kubelet decoder: %v\n%s", err, buf.String())
	}
	resp, ok := obj.(*kubeletcp.CredentialProviderResponse)
	if !ok || gvk.Kind != "CredentialProviderResponse" || gvk.Version != "v1" {
		t.Fatalf("decoded %T %v", obj, gvk)
	}
	if resp.CacheKeyType != kubeletcp.RegistryPluginCacheKeyType || resp.CacheDuration.Duration != 45*time.Minute ||
		resp.Auth["ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443"].Password != "pw" {
		t.Fatalf("response %+v", resp)
	}
	if err := EncodeResponse(&buf, nil); err == nil {
		t.Fatal("nil response encoded")
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != ExitOK || ExitCode(errors.New("x")) != ExitConfig {
		t.Fatal("nil or plain error")
	}
	wrapped := errors.Join(errors.New("context"), withCode(ExitTokenAPI, errors.New("503")))
	if ExitCode(wrapped) != ExitTokenAPI {
		t.Fatalf("wrapped: %d", ExitCode(wrapped))
	}
	if ExitCode(withCode(ExitIdentity, withCode(ExitTokenAPI, errors.New("inner")))) != ExitTokenAPI {
		t.Fatal("withCode must keep the innermost code")
	}
}
