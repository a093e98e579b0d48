package acrconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const akSecret = "AKsecret-DoNotLeak-7Qz"

func TestInstanceFields(t *testing.T) {
	tests := []struct {
		name    string
		info    string
		rrsa    string
		want    []Instance
		warns   []string
		wantErr []string
	}{
		{
			name: "EE same region",
			info: `- instanceId: "cri-aaa"`,
			want: []Instance{{InstanceID: "cri-aaa", RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
		},
		{
			name: "missing instanceId is Personal Edition",
			info: "- regionId: cn-beijing",
			want: []Instance{{RegionID: "cn-beijing", ExpireDuration: time.Hour}},
		},
		{
			name: "null instanceId is Personal Edition",
			info: "- instanceId:\n  regionId: cn-beijing",
			want: []Instance{{RegionID: "cn-beijing", ExpireDuration: time.Hour}},
		},
		{
			name: "domains as comma string with schemes and spaces",
			info: `- instanceId: cri-a
  domains: "https://A-registry.cn-hangzhou.cr.aliyuncs.com/, a-registry-vpc.cn-hangzhou.cr.aliyuncs.com,,127.0.0.1:5000"`,
			want: []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour,
				Domains: []string{"a-registry.cn-hangzhou.cr.aliyuncs.com", "a-registry-vpc.cn-hangzhou.cr.aliyuncs.com", "127.0.0.1:5000"}}},
		},
		{
			name: "domains as list, deduplicated",
			info: "- instanceId: cri-a\n  domains: [x.example.com, X.example.com, 'localhost:8443']",
			want: []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour, Domains: []string{"x.example.com", "localhost:8443"}}},
		},
		{
			name: "expireDuration int and quoted",
			info: `- instanceId: cri-a
  assumeRoleARN: acs:ram::2222222222222222:role/acr-pull
  expireDuration: 43200
- instanceId: cri-b
  assumeRoleARN: acs:ram::2222222222222222:role/acr-pull
  expireDuration: "7200"`,
			want: []Instance{
				{InstanceID: "cri-a", RegionID: "cn-hangzhou", AssumeRoleARN: "acs:ram::2222222222222222:role/acr-pull", ExpireDuration: 12 * time.Hour},
				{InstanceID: "cri-b", RegionID: "cn-hangzhou", AssumeRoleARN: "acs:ram::2222222222222222:role/acr-pull", ExpireDuration: 2 * time.Hour},
			},
		},
		{
			name:  "expireDuration without assumeRoleARN warns",
			info:  "- instanceId: cri-a\n  expireDuration: 3600",
			want:  []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
			warns: []string{"acr-registry-info[0].expireDuration"},
		},
		{
			name:  "case-insensitive field names, unknown field warns",
			info:  "- InstanceId: cri-a\n  RegionId: cn-shanghai\n  color: blue",
			want:  []Instance{{InstanceID: "cri-a", RegionID: "cn-shanghai", ExpireDuration: time.Hour}},
			warns: []string{"acr-registry-info[0].color"},
		},
		{
			name:  "single mapping accepted with a warning",
			info:  "instanceId: cri-a",
			want:  []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
			warns: []string{"acr-registry-info"},
		},
		{
			name: "rrsa fields",
			rrsa: "enable: true",
			info: `- instanceId: cri-a
  rrsaRoleARN: acs:ram::1111111111111111:role/ack-acr-helper
  rrsaOIDCProviderRoleARN: acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123`,
			want: []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour,
				RRSARoleARN: "acs:ram::1111111111111111:role/ack-acr-helper", RRSAOIDCProviderARN: "acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123"}},
		},
		{
			name: "rrsa fields without rrsa.enable warn",
			info: `- instanceId: cri-a
  rrsaRoleARN: acs:ram::1111111111111111:role/ack-acr-helper
  rrsaOIDCProviderRoleARN: acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123`,
			want: []Instance{{InstanceID: "cri-a", RegionID: "cn-hangzhou", ExpireDuration: time.Hour,
				RRSARoleARN: "acs:ram::1111111111111111:role/ack-acr-helper", RRSAOIDCProviderARN: "acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123"}},
			warns: []string{"acr-registry-info[0].rrsaRoleARN"},
		},
		{
			name:  "custom access key",
			info:  "- instanceId: \"\"\n  customAccessKey: LTAI5tB\n  customAccessKeySecret: " + akSecret,
			want:  []Instance{{RegionID: "cn-hangzhou", ExpireDuration: time.Hour, CustomAccessKeyID: "LTAI5tB", CustomAccessKeySecret: akSecret}},
			warns: []string{"acr-registry-info[0].customAccessKey"},
		},
		{
			name:  "new Personal Edition host warns",
			info:  "- instanceId: ''\n  domains: crpi-abc.cn-hangzhou.personal.cr.aliyuncs.com",
			want:  []Instance{{RegionID: "cn-hangzhou", ExpireDuration: time.Hour, Domains: []string{"crpi-abc.cn-hangzhou.personal.cr.aliyuncs.com"}}},
			warns: []string{"acr-registry-info[0].domains"},
		},
		{name: "not a list", info: `"cri-a"`, wantErr: []string{`acr-registry-info: "cri-a" must be a YAML or JSON list`}},
		{name: "entry not a mapping", info: `- cri-a`, wantErr: []string{`acr-registry-info[0]: "cri-a" must be a mapping`}},
		{name: "bad yaml indentation", info: "- instanceId: cri-a\n regionId: cn-beijing", wantErr: []string{"acr-registry-info: is not valid YAML or JSON: yaml: line 1: did not find expected '-' indicator"}},
		{name: "instanceId number", info: "- instanceId: 123", wantErr: []string{"acr-registry-info[0].instanceId: 123 must be a string"}},
		{name: "instanceId with spaces", info: `- instanceId: "cri a"`, wantErr: []string{`acr-registry-info[0].instanceId: "cri a" is not an instance id`}},
		{name: "bad region", info: "- instanceId: cri-a\n  regionId: Hangzhou", wantErr: []string{`acr-registry-info[0].regionId: "Hangzhou" is not a region id`}},
		{name: "bad domain", info: "- instanceId: cri-a\n  domains: 'good.example.com,bad domain'", wantErr: []string{`acr-registry-info[0].domains: "bad domain" is not a hostname`}},
		{name: "bad domain port", info: "- instanceId: cri-a\n  domains: 'h:99999'", wantErr: []string{`acr-registry-info[0].domains: "h:99999" is not a hostname`}},
		{name: "domains wrong type", info: "- instanceId: cri-a\n  domains: {a: b}", wantErr: []string{"acr-registry-info[0].domains: a mapping must be"}},
		{name: "domain list element wrong type", info: "- instanceId: cri-a\n  domains: [1]", wantErr: []string{"acr-registry-info[0].domains[0]: 1 must be a string"}},
		{name: "expireDuration too small", info: "- instanceId: cri-a\n  assumeRoleARN: acs:ram::2:role/r\n- instanceId: cri-b\n  assumeRoleARN: acs:ram::2:role/r\n  expireDuration: 99",
			wantErr: []string{"acr-registry-info[1].expireDuration: 99 is outside 3600..43200"}},
		{name: "expireDuration too large", info: "- instanceId: cri-a\n  expireDuration: \"43201\"", wantErr: []string{`acr-registry-info[0].expireDuration: "43201" is outside 3600..43200`}},
		{name: "expireDuration not int", info: "- instanceId: cri-a\n  expireDuration: 1h", wantErr: []string{`acr-registry-info[0].expireDuration: "1h" is not an integer number of seconds`}},
		{name: "bad role arn", info: "- instanceId: cri-a\n  assumeRoleARN: arn:aws:iam::1:role/x", wantErr: []string{`acr-registry-info[0].assumeRoleARN: "arn:aws:iam::1:role/x" is not a RAM role ARN`}},
		{name: "rrsa provider given a role", info: "- instanceId: cri-a\n  rrsaRoleARN: acs:ram::1:role/a\n  rrsaOIDCProviderRoleARN: acs:ram::1:role/b",
			wantErr: []string{"takes the OIDC provider ARN"}},
		{name: "rrsa role without provider", info: "- instanceId: cri-a\n  rrsaRoleARN: acs:ram::1:role/a", wantErr: []string{"acr-registry-info[0].rrsaOIDCProviderRoleARN: is required with rrsaRoleARN"}},
		{name: "rrsa provider without role", info: "- instanceId: cri-a\n  rrsaOIDCProviderRoleARN: acs:ram::1:oidc-provider/p", wantErr: []string{"acr-registry-info[0].rrsaRoleARN: is required with rrsaOIDCProviderRoleARN"}},
		{name: "secret without key", info: "- instanceId: cri-a\n  customAccessKeySecret: " + akSecret, wantErr: []string{"acr-registry-info[0].customAccessKey: is required with customAccessKeySecret"}},
		{name: "key without secret", info: "- instanceId: cri-a\n  customAccessKey: LTAI", wantErr: []string{"acr-registry-info[0].customAccessKeySecret: is required with customAccessKey"}},
		{name: "secret wrong type", info: "- instanceId: cri-a\n  customAccessKey: LTAI\n  customAccessKeySecret: [" + akSecret + "]", wantErr: []string{"acr-registry-info[0].customAccessKeySecret: must be a string"}},
		{name: "duplicate field differing in case", info: "- instanceId: cri-a\n  InstanceID: cri-b", wantErr: []string{"is set twice"}},
		{name: "duplicate instance", info: "- instanceId: cri-a\n- instanceId: cri-a\n  regionId: cn-hangzhou", wantErr: []string{"acr-registry-info[1]: duplicates acr-registry-info[0] (cn-hangzhou/cri-a)"}},
		{name: "duplicate personal", info: "- instanceId: ''\n- regionId: cn-hangzhou", wantErr: []string{"duplicates acr-registry-info[0] (cn-hangzhou/personal)"}},
		{name: "several errors at once", info: "- instanceId: cri-a\n  regionId: X\n- instanceId: cri-b\n  expireDuration: 1",
			wantErr: []string{"acr-registry-info[0].regionId", "acr-registry-info[1].expireDuration: 1 is outside"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := map[string]string{KeyACRRegistryInfo: tt.info}
			if tt.rrsa != "" {
				data[KeyRRSA] = tt.rrsa
			}
			cfg, warns, err := Parse(data, hz)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Parse() = %+v, want errors %q", cfg, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				var list ErrorList
				if !errors.As(err, &list) || len(list) < len(tt.wantErr) {
					t.Errorf("want an ErrorList with %d entries, got %#v", len(tt.wantErr), err)
				}
				if strings.Contains(err.Error(), akSecret) {
					t.Errorf("error echoes customAccessKeySecret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", cfg.Instances) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("instances:\n got %+v\nwant %+v", cfg.Instances, tt.want)
			}
			if got := warningFields(warns); !slices.Equal(got, tt.warns) {
				t.Errorf("warnings = %v, want fields %v", warns, tt.warns)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", warns, cfg, cfg), akSecret) {
				t.Error("config or warnings print the AccessKey secret")
			}
		})
	}
}

func TestRegionRequiredWithoutClusterRegion(t *testing.T) {
	_, _, err := Parse(map[string]string{KeyACRRegistryInfo: "- instanceId: cri-a"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "acr-registry-info[0].regionId: is required because no cluster region is configured") {
		t.Fatalf("err = %v", err)
	}
	cfg, _ := mustParse(t, map[string]string{KeyACRRegistryInfo: "- instanceId: cri-a\n  regionId: cn-beijing"}, Options{})
	if cfg.Instances[0].Key() != "cn-beijing/cri-a" {
		t.Errorf("key = %s", cfg.Instances[0].Key())
	}
}

func TestSecretNeverEchoed(t *testing.T) {
	// Every way a bad entry can carry the secret: wrong neighbours, malformed YAML around
	// it, the secret in an unexpected type.
	docs := []string{
		"- instanceId: 'bad id'\n  customAccessKey: LTAI\n  customAccessKeySecret: " + akSecret,
		"- customAccessKeySecret: " + akSecret,
		"- instanceId: cri-a\n  customAccessKey: LTAI\n  customAccessKeySecret: '" + akSecret + " x'",
		"- instanceId: cri-a\n  customAccessKeySecret: {v: " + akSecret + "}",
		"- instanceId: cri-a\n  customAccessKeySecret: \"" + akSecret + "\n bad: [",
		"- instanceId: cri-a\n  customAccessKeySecret: *" + akSecret,
		"[{\"customAccessKeySecret\": \"" + akSecret + "\", }",
		"- {customAccessKey: LTAI, customAccessKeySecret: " + akSecret + ", customaccesskeysecret: " + akSecret + "}",
		// a list item written as one string (issue 15): it used to be echoed whole
		"- \"customAccessKey: LTAIxxxx, customAccessKeySecret=" + akSecret + "\"",
		"- 'customAccessKeySecret: " + akSecret + "'",
		"- customAccessKeySecret=" + akSecret,
		"- instanceId: cri-a\n  customAccessKeySecret: !!int " + akSecret,
		"- instanceId: cri-a\n  customAccessKeySecret: &anchor " + akSecret + "\n  regionId: !!int x",
	}
	for _, d := range docs {
		_, warns, err := Parse(map[string]string{KeyACRRegistryInfo: d}, hz)
		if err == nil {
			t.Errorf("%q: expected an error", d)
			continue
		}
		if out := err.Error() + fmt.Sprint(warns); strings.Contains(out, akSecret) {
			t.Errorf("secret echoed for %q: %s", d, out)
		}
	}
}

// TestErrorsNotOverRedacted: what is not secret stays readable. A duplicate key is named (it
// read "key '…' already set"), and a YAML tag error names the tag (it read "as a [redacted]"
// because the tag after customAccessKeySecret was taken for the secret).
func TestErrorsNotOverRedacted(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"- instanceId: cri-a\n  regionId: cn-beijing\n  regionId: cn-shanghai\n", `acr-registry-info: is not valid YAML or JSON: yaml: line 3: key "regionId" is listed twice`},
		{"- instanceId: cri-a\n  customAccessKey: LTAI5tAbCdEfGhIj\n  customAccessKeySecret: !!int " + akSecret + "\n", "cannot decode !!str '…' as a !!int"},
		{"- instanceId: cri-a\n  regionId: !!int cn-beijing\n", "cannot decode !!str '…' as a !!int"},
	} {
		_, _, err := Parse(map[string]string{KeyACRRegistryInfo: tc.doc}, hz)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), akSecret) {
			t.Errorf("%q: err = %v, want %q", tc.doc, err, tc.want)
		}
	}
	// a duplicate secret key is named, its value is not shown
	_, _, err := Parse(map[string]string{KeyACRRegistryInfo: "- customAccessKeySecret: " + akSecret + "\n  customAccessKeySecret: " + akSecret + "\n"}, hz)
	if err == nil || !strings.Contains(err.Error(), `key "customAccessKeySecret" is listed twice`) || strings.Contains(err.Error(), akSecret) {
		t.Errorf("duplicate secret key: %v", err)
	}
}

// TestHostileDocuments: alias bombs, deep nesting and oversized values in acr-configuration are
// refused with an error naming the key, in bounded memory.
func TestHostileDocuments(t *testing.T) {
	bomb := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for _, c := range "bcdefghij" {
		bomb += fmt.Sprintf("%c: &%c [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = string(c)
	}
	for _, tc := range []struct{ key, doc, want string }{
		{KeyACRRegistryInfo, bomb, "acr-registry-info: is not valid YAML or JSON: yaml: document contains excessive aliasing"},
		{KeyWebhook, bomb, "webhook-configuration: is not valid YAML or JSON: yaml: document contains excessive aliasing"},
		{KeyACRRegistryInfo, strings.Repeat("[", 100000) + strings.Repeat("]", 100000), "acr-registry-info: is not valid YAML or JSON: yaml: exceeded max depth"},
		{KeyRRSA, strings.Repeat("- ", 50000) + "x", "rrsa: is not valid YAML or JSON: yaml: exceeded max depth"},
		{KeyACRRegistryInfo, "- instanceId: " + strings.Repeat("x", MaxValueSize), "acr-registry-info: is 1048590 bytes, more than 1048576"},
	} {
		_, _, err := Parse(map[string]string{tc.key: tc.doc}, hz)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %.300v, want %q", tc.key, err, tc.want)
		}
	}
}
