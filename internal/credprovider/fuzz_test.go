package credprovider

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzDecodeRequest: whatever the kubelet (or anyone) writes on stdin, decoding never panics,
// fails with ExitBadRequest, never echoes the token, and a request it accepts re-validates.
func FuzzDecodeRequest(f *testing.F) {
	const v1 = `"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"`
	for _, s := range []string{
		`{` + v1 + `,"image":"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com/apps/hello:v1"}`,
		`{` + v1 + `,"image":"registry-vpc.cn-beijing.aliyuncs.com/ns/app","serviceAccountToken":"` + testToken + `","serviceAccountAnnotations":{"pod-identity.alibabacloud.com/role-name":"r"}}`,
		`{` + v1 + `,"image":"a.b/c","image":"d.e/f"}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderRequest","image":"a.b/c"}`,
		`{` + v1 + `,"image":"a.b/c","serviceAccountToken":"` + testToken + `","x":1}`,
		`{` + v1 + `,"image":"` + strings.Repeat("a", 300) + `"}`,
		`null`, `{}`, `[]`, `"x"`, `{"apiVersion":1}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data))
		if err != nil {
			if ExitCode(err) != ExitBadRequest {
				t.Fatalf("exit code %d for %v", ExitCode(err), err)
			}
			if tok := tokenOf(data); len(tok) >= 8 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token: %v", err)
			}
			return
		}
		if req.Image == "" || len(req.Image) > MaxImageLength {
			t.Fatalf("accepted image %q", req.Image)
		}
		if _, err := ImageHost(req.Image); err != nil {
			t.Fatalf("accepted an image without a host: %v", err)
		}
	})
}

// FuzzParseConfig: the --config file never panics the parser, and an accepted file has only
// valid instances.
func FuzzParseConfig(f *testing.F) {
	const head = "apiVersion: ferry.dev/v1alpha1\nkind: ACRCredentialProviderConfig\n"
	for _, s := range []string{
		head,
		head + "instances:\n- {instanceId: cri-abc, region: cn-hangzhou, name: prod, domains: [a.example, '10.0.0.1:5000']}\n",
		head + "instances: [{region: cn-beijing, assumeRoleARN: 'acs:ram::2:role/x', expireDuration: 3600}]\n",
		head + "instances: [{region: x}]\ninstances: []\n",
		"{}", "[]", "a: [", "\t",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, in := range c.ConfigInstances() {
			if in.Region == "" || (in.ID != "" && !instanceIDRE.MatchString(in.ID)) {
				t.Fatalf("accepted instance %+v", in)
			}
			for _, d := range in.Domains {
				if validDomain(d) != nil {
					t.Fatalf("accepted domain %q", d)
				}
			}
		}
	})
}
