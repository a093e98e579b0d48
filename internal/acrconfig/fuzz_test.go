package acrconfig

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary values for every key. Parse must not panic; an accepted config
// must satisfy its invariants; and a customAccessKeySecret is never echoed, whether written as
// a mapping key, as "key=value" or "key: value" inside a list item string, or behind a YAML tag.
func FuzzParse(f *testing.F) {
	f.Add("default,builder", "all", "15m", "- instanceId: cri-a\n  regionId: cn-beijing\n  domains: a.example.com", "enable: true", "enable: true\nfailure-policy: Fail\ntimeout-seconds: 5", "cri-b", "3600")
	f.Add("*", "app-a", "45s", `[{"instanceId":"","regionId":"cn-hangzhou"}]`, "", "", "", "\"7200\"")
	f.Add("", "", "", "instanceId: x", "{", "[", "cri-c", "99")
	f.Add("a,,b", "default", "-1s", "- {instanceId: cri-a, rrsaRoleARN: 'acs:ram::1:role/r', rrsaOIDCProviderRoleARN: 'acs:ram::1:oidc-provider/p'}", "enable: yes", "timeout-seconds: 31", "'", "1e4")
	const marker = "FuzzSecretMarker0"
	f.Fuzz(func(t *testing.T, sa, ns, thr, info, rrsa, webhook, instanceID, expire string) {
		data := map[string]string{
			KeyServiceAccount: sa, KeyWatchNamespace: ns, KeyExpiringThreshold: thr,
			KeyACRRegistryInfo: info, KeyRRSA: rrsa, KeyWebhook: webhook,
		}
		cfg, _, err := Parse(data, Options{ClusterRegion: "cn-hangzhou"})
		if err == nil {
			checkInvariants(t, cfg)
		}

		// Templated entries carrying a known secret next to fuzzed neighbours.
		if strings.Contains(instanceID+expire, marker) || strings.ContainsAny(expire, " \t\r\n\"'") {
			return
		}
		for _, entry := range []string{
			"- instanceId: " + instanceID + "\n  customAccessKey: LTAIfuzz\n  customAccessKeySecret: " + marker + "\n  expireDuration: " + expire + "\n",
			"- \"customAccessKey: LTAIfuzz, customAccessKeySecret=" + marker + ", instanceId: " + instanceID + "\"\n",
			"- 'customAccessKeySecret: " + marker + " " + instanceID + "'\n",
			"- customAccessKeySecret=" + marker + "\n- instanceId: " + instanceID + "\n",
			"- instanceId: " + instanceID + "\n  customAccessKeySecret: !" + expire + " " + marker + "\n",
			"- instanceId: " + instanceID + "\n  customAccessKeySecret: &" + expire + " " + marker + "\n",
		} {
			data[KeyACRRegistryInfo] = entry
			cfg, warns, err := Parse(data, Options{ClusterRegion: "cn-hangzhou"})
			var out strings.Builder
			for _, w := range warns {
				out.WriteString(w.String())
			}
			if err != nil {
				out.WriteString(err.Error())
			} else {
				checkInvariants(t, cfg)
			}
			if strings.Contains(out.String(), marker) {
				t.Fatalf("secret echoed for %q: %s", entry, out.String())
			}
		}
	})
}

func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.ExpiringThreshold <= 0 {
		t.Fatalf("threshold %v", cfg.ExpiringThreshold)
	}
	if len(cfg.Instances) == 0 {
		t.Fatal("no instances")
	}
	if !cfg.ServiceAccounts.All && len(cfg.ServiceAccounts.Names) == 0 || !cfg.WatchNamespaces.All && len(cfg.WatchNamespaces.Names) == 0 {
		t.Fatalf("empty selector: %+v %+v", cfg.ServiceAccounts, cfg.WatchNamespaces)
	}
	if cfg.Webhook.TimeoutSeconds < 1 || cfg.Webhook.TimeoutSeconds > 30 ||
		cfg.Webhook.FailurePolicy != FailurePolicyIgnore && cfg.Webhook.FailurePolicy != FailurePolicyFail {
		t.Fatalf("webhook %+v", cfg.Webhook)
	}
	keys := map[string]bool{}
	for _, in := range cfg.Instances {
		if in.RegionID == "" || keys[in.Key()] {
			t.Fatalf("bad instance %+v", in)
		}
		keys[in.Key()] = true
		if in.ExpireDuration < time.Duration(MinExpireDuration)*time.Second || in.ExpireDuration > time.Duration(MaxExpireDuration)*time.Second {
			t.Fatalf("expireDuration %v", in.ExpireDuration)
		}
		if (in.RRSARoleARN == "") != (in.RRSAOIDCProviderARN == "") || (in.CustomAccessKeyID == "") != in.CustomAccessKeySecret.IsZero() {
			t.Fatalf("half-set pair %+v", in)
		}
		for _, d := range in.Domains {
			if d == "" || strings.ContainsAny(d, " /,") {
				t.Fatalf("bad domain %q", d)
			}
		}
	}
}
