package acrconfig

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// The configurations published by Alibaba Cloud (seeds 001 and 003, the reference's
// complete example and the Terraform JSON form) must parse to what they mean.
func TestPublishedExamples(t *testing.T) {
	tests := []struct {
		name  string
		data  map[string]string
		opts  Options
		want  []Instance
		check func(t *testing.T, c *Config)
		warns []string
	}{
		{
			name: "001 scenario 1 Enterprise Edition",
			data: map[string]string{
				"acr-api-version":    "2018-12-01",
				"acr-registry-info":  "- instanceId: \"cri-xxx\"   # The default parameter in the console is #-instanceId.\n  regionId: \"cn-hangzhou\"",
				"expiring-threshold": "15m",
				"service-account":    "default",
				"watch-namespace":    "all",
			},
			want: []Instance{{InstanceID: "cri-xxx", RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
			check: func(t *testing.T, c *Config) {
				if !c.WatchNamespaces.All || !slices.Equal(c.ServiceAccounts.Names, []string{"default"}) || c.ExpiringThreshold != 15*time.Minute {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name: "001 scenario 1 Personal Edition",
			data: map[string]string{
				"acr-api-version":    "2018-12-01",
				"acr-registry-info":  "- instanceId: \"\"   # keep the default value\n  regionId: \"cn-hangzhou\"\n",
				"expiring-threshold": "15m",
				"service-account":    "default",
				"watch-namespace":    "all",
			},
			want: []Instance{{RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
		},
		{
			name: "001 scenario 1 EE and Personal together",
			data: map[string]string{
				"acr-registry-info": "- instanceId: \"cri-xxx\"\n  regionId: \"cn-hangzhou\"\n- instanceId: \"\"\n  regionId: \"cn-hangzhou\"\n",
				"watch-namespace":   "all",
			},
			want: []Instance{{InstanceID: "cri-xxx", RegionID: "cn-hangzhou", ExpireDuration: time.Hour}, {RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
		},
		{
			name: "001 scenario 2 two regions",
			data: map[string]string{
				"service-account":    "default",
				"watch-namespace":    "all",
				"expiring-threshold": "15m",
				"notify-email":       "**@aliyuncs.com",
				"acr-registry-info":  "- instanceId: \"\"\n  regionId: cn-beijing\n- instanceId: \"\"\n  regionId: cn-hangzhou\n",
			},
			opts: Options{ClusterRegion: "cn-shanghai"},
			want: []Instance{{RegionID: "cn-beijing", ExpireDuration: time.Hour}, {RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
			check: func(t *testing.T, c *Config) {
				if c.NotifyEmail != "**@aliyuncs.com" {
					t.Errorf("notify-email = %q", c.NotifyEmail)
				}
			},
		},
		{
			name: "003 RRSA cross-account",
			data: map[string]string{
				"service-account":    "default",
				"watch-namespace":    "all",
				"expiring-threshold": "15m",
				"notify-email":       "c*@example.com",
				"acr-registry-info": `- instanceId: "cri-xxx"                                   # ACR インスタンスの ID。
  regionId: "cn-hangzhou"                                 # ACR インスタンスのリージョン ID。
  domains: "xxxxx-registry.cn-hangzhou.cr.aliyuncs.com"   # ACR インスタンスのエンドポイント。
  rrsaRoleARN: "acs:ram::1280000000009011:role/acr-helper-a"
  rrsaOIDCProviderRoleARN: "acs:ram::1280000000009011:oidc-provider/ack-rrsa-c8864000000000000000099356a636"
  assumeRoleARN: "acs:ram::1990000000000002:role/acr-pull-b"
  expireDuration: 3600                                    # アカウント B の RAM ロールの最大セッション時間。             
`,
				"rrsa": "enable: true                                              # シークレットフリーコンポーネントの RRSA 機能を有効にします。\n",
			},
			want: []Instance{{InstanceID: "cri-xxx", RegionID: "cn-hangzhou", Domains: []string{"xxxxx-registry.cn-hangzhou.cr.aliyuncs.com"},
				AssumeRoleARN: "acs:ram::1990000000000002:role/acr-pull-b", ExpireDuration: time.Hour,
				RRSARoleARN:         "acs:ram::1280000000009011:role/acr-helper-a",
				RRSAOIDCProviderARN: "acs:ram::1280000000009011:oidc-provider/ack-rrsa-c8864000000000000000099356a636"}},
			check: func(t *testing.T, c *Config) {
				if !c.RRSA.Enable || !c.Instances[0].UsesRRSA(c.RRSA) {
					t.Errorf("RRSA not selected: %+v", c.RRSA)
				}
			},
		},
		{
			name: "003 worker role and assumeRoleARN",
			data: map[string]string{
				"service-account":    "default",
				"watch-namespace":    "all",
				"expiring-threshold": "15m",
				"notify-email":       "c*@example.com",
				"acr-registry-info": `  - instanceId: "cri-xxx"                                    # ACR Enterprise Edition インスタンスの ID。
    regionId: "cn-hangzhou"                                  # ACR Enterprise Edition インスタンスのリージョン ID。
    domains: "xxxxx-registry.cn-hangzhou.cr.aliyuncs.com"    # ACR Enterprise Edition インスタンスのエンドポイント。
    assumeRoleARN: "acs:ram::1990000000000002:role/acr-pull-b"
    expireDuration: 3600                                     # デフォルト値は 3600 です。
`,
			},
			opts: Options{ClusterRegion: "cn-hangzhou", TokenMode: TokenModeWorkerRole},
			want: []Instance{{InstanceID: "cri-xxx", RegionID: "cn-hangzhou", Domains: []string{"xxxxx-registry.cn-hangzhou.cr.aliyuncs.com"},
				AssumeRoleARN: "acs:ram::1990000000000002:role/acr-pull-b", ExpireDuration: time.Hour}},
			check: func(t *testing.T, c *Config) {
				if c.TokenMode != TokenModeWorkerRole {
					t.Errorf("token mode = %s", c.TokenMode)
				}
			},
		},
		{
			name: "003 customAccessKey",
			data: map[string]string{
				"service-account":    "default",
				"watch-namespace":    "all",
				"expiring-threshold": "15m",
				"notify-email":       "c*@example.com",
				"acr-registry-info": `  - instanceId: ""                        # ACR Enterprise Edition インスタンスの ID。             
    regionId: "cn-hangzhou"               # ACR Enterprise Edition インスタンスのリージョン ID。    
    customAccessKey: "xxxxx"              # アカウント B の RAM ユーザーの AccessKey ID。
    customAccessKeySecret: "xxxxxx"       # アカウント B の RAM ユーザーの AccessKey シークレット。
`,
			},
			want:  []Instance{{RegionID: "cn-hangzhou", ExpireDuration: time.Hour, CustomAccessKeyID: "xxxxx", CustomAccessKeySecret: "xxxxxx"}},
			warns: []string{"acr-registry-info[0].customAccessKey"},
		},
		{
			name: "reference 2.5 complete example",
			data: map[string]string{
				"service-account":    "default,builder",
				"watch-namespace":    "app-a,app-b",
				"expiring-threshold": "15m",
				"notify-email":       "ops@example.com",
				"acr-api-version":    "2018-12-01",
				"acr-registry-info": `- instanceId: "cri-aaa"            # EE, same region, all domains
- instanceId: "cri-bbb"            # EE in another region and another account
  regionId: "cn-beijing"
  domains: "bbb-registry.cn-beijing.cr.aliyuncs.com,bbb-registry-vpc.cn-beijing.cr.aliyuncs.com"
  rrsaRoleARN: "acs:ram::1111111111111111:role/ack-acr-helper"
  rrsaOIDCProviderRoleARN: "acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123456789"
  assumeRoleARN: "acs:ram::2222222222222222:role/acr-pull"
  expireDuration: 3600
- instanceId: ""                   # Personal Edition in the cluster region
`,
				"rrsa":                  "enable: true\n",
				"webhook-configuration": "enable: true\nfailure-policy: Ignore\ntimeout-seconds: 10\n",
			},
			want: []Instance{
				{InstanceID: "cri-aaa", RegionID: "cn-hangzhou", ExpireDuration: time.Hour},
				{InstanceID: "cri-bbb", RegionID: "cn-beijing", Domains: []string{"bbb-registry.cn-beijing.cr.aliyuncs.com", "bbb-registry-vpc.cn-beijing.cr.aliyuncs.com"},
					AssumeRoleARN: "acs:ram::2222222222222222:role/acr-pull", ExpireDuration: time.Hour,
					RRSARoleARN: "acs:ram::1111111111111111:role/ack-acr-helper", RRSAOIDCProviderARN: "acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0123456789"},
				{RegionID: "cn-hangzhou", ExpireDuration: time.Hour},
			},
			check: func(t *testing.T, c *Config) {
				if !slices.Equal(c.ServiceAccounts.Names, []string{"default", "builder"}) || !slices.Equal(c.WatchNamespaces.Names, []string{"app-a", "app-b"}) {
					t.Errorf("selectors = %+v %+v", c.ServiceAccounts, c.WatchNamespaces)
				}
				if c.Webhook != (Webhook{Enable: true, FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: 10}) || !c.RRSA.Enable {
					t.Errorf("blocks = %+v %+v", c.Webhook, c.RRSA)
				}
			},
		},
		{
			name: "Terraform JSON flow string",
			data: map[string]string{
				"acr-registry-info": "[{\"instanceId\":\"cri-abc\",\"regionId\":\"cn-wulanchabu\",\"expireDuration\":\"7200\",\"assumeRoleARN\":\"acs:ram::3:role/x\"}]",
				"watch-namespace":   "all",
			},
			want: []Instance{{InstanceID: "cri-abc", RegionID: "cn-wulanchabu", AssumeRoleARN: "acs:ram::3:role/x", ExpireDuration: 2 * time.Hour}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.ClusterRegion == "" {
				opts.ClusterRegion = "cn-hangzhou"
			}
			cfg, warns := mustParse(t, tt.data, opts)
			if fmt.Sprintf("%#v", cfg.Instances) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("instances:\n got %+v\nwant %+v", cfg.Instances, tt.want)
			}
			if got := warningFields(warns); !slices.Equal(got, tt.warns) {
				t.Errorf("warnings = %v, want %v", warns, tt.warns)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}
