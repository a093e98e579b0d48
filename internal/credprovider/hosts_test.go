package credprovider

import "testing"

func TestParseRegistry(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
		want Registry
	}{
		{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com", true, Registry{Edition: EditionEnterprise, Name: "ferry-a", Region: "cn-hangzhou"}},
		{"ferry-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com", true, Registry{Edition: EditionEnterprise, Name: "ferry-a", Region: "cn-hangzhou", VPC: true}},
		{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443", true, Registry{Edition: EditionEnterprise, Name: "ferry-a", Region: "cn-hangzhou"}},
		{"Ferry-A-Registry.CN-Hangzhou.cr.aliyuncs.com", true, Registry{Edition: EditionEnterprise, Name: "ferry-a", Region: "cn-hangzhou"}},
		{"my-registry-registry-vpc.ap-southeast-1.cr.aliyuncs.com", true, Registry{Edition: EditionEnterprise, Name: "my-registry", Region: "ap-southeast-1", VPC: true}},
		{"registry.cn-beijing.aliyuncs.com", true, Registry{Edition: EditionPersonal, Region: "cn-beijing"}},
		{"registry-vpc.cn-beijing.aliyuncs.com", true, Registry{Edition: EditionPersonal, Region: "cn-beijing", VPC: true}},
		{"registry-intl.ap-southeast-1.aliyuncs.com", true, Registry{Edition: EditionPersonal, Region: "ap-southeast-1"}},
		{"registry.cn-hangzhou.aliyuncs.com:41443", true, Registry{Edition: EditionPersonal, Region: "cn-hangzhou"}},
		{"crpi-abc123.cn-hangzhou.personal.cr.aliyuncs.com", true, Registry{Edition: EditionPersonalInstance, Region: "cn-hangzhou"}},
		{"crpi-abc123-vpc.cn-hangzhou.personal.cr.aliyuncs.com", true, Registry{Edition: EditionPersonalInstance, Region: "cn-hangzhou", VPC: true}},
		{"cr.cn-hangzhou.aliyuncs.com", false, Registry{}},
		{"registry.example.com", false, Registry{}},
		{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com.evil.example", false, Registry{}},
		{"evil.example/ferry-a-registry.cn-hangzhou.cr.aliyuncs.com", false, Registry{}},
		{"-registry.cn-hangzhou.cr.aliyuncs.com", false, Registry{}},
		{"127.0.0.1:41443", false, Registry{}},
		{"docker.io", false, Registry{}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := ParseRegistry(tt.host)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, got)
			}
			if !ok {
				return
			}
			if got.Edition != tt.want.Edition || got.Name != tt.want.Name || got.Region != tt.want.Region || got.VPC != tt.want.VPC {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestImageHost(t *testing.T) {
	tests := []struct{ image, want string }{
		{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com/apps/hello:v1", "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com"},
		{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443/apps/hello@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:41443"},
		{"127.0.0.1:5000/apps/hello", "127.0.0.1:5000"},
		{"localhost/x", "localhost"},
		{"nginx", "docker.io"},
		{"library/nginx:1", "docker.io"},
	}
	for _, tt := range tests {
		if got, err := ImageHost(tt.image); err != nil || got != tt.want {
			t.Errorf("ImageHost(%q) = %q, %v; want %q", tt.image, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "Upper/x:tag:tag", "a b/c", "https://a.b/c", "a.b/c:"} {
		if got, err := ImageHost(bad); err == nil {
			t.Errorf("ImageHost(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHostMatches(t *testing.T) {
	tests := []struct {
		image, domain string
		want          bool
	}{
		{"registry.example.com", "registry.example.com", true},
		{"Registry.Example.com", "registry.example.com", true},
		{"registry.example.com:5000", "registry.example.com", true},
		{"registry.example.com:5000", "registry.example.com:5000", true},
		{"registry.example.com:5000", "registry.example.com:5001", false},
		{"registry.example.com", "registry.example.com:443", false},
		{"registry.example.com.evil", "registry.example.com", false},
		{"127.0.0.1:41443", "127.0.0.1:41443", true},
	}
	for _, tt := range tests {
		if got := hostMatches(tt.image, tt.domain); got != tt.want {
			t.Errorf("hostMatches(%q, %q) = %v", tt.image, tt.domain, got)
		}
	}
}
