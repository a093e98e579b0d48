package acrconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var hz = Options{ClusterRegion: "cn-hangzhou"}

func mustParse(t *testing.T, data map[string]string, opts Options) (*Config, []Warning) {
	t.Helper()
	cfg, warns, err := Parse(data, opts)
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	return cfg, warns
}

func warningFields(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Field)
	}
	return out
}

func TestDefaults(t *testing.T) {
	cfg, warns := mustParse(t, map[string]string{}, hz)
	if len(warns) != 0 {
		t.Errorf("warnings = %v", warns)
	}
	want := Config{
		ServiceAccounts:   Selector{Names: []string{"default"}},
		WatchNamespaces:   Selector{Names: []string{"default"}},
		ExpiringThreshold: 15 * time.Minute,
		Instances:         []Instance{{RegionID: "cn-hangzhou", ExpireDuration: time.Hour}},
		Webhook:           Webhook{FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: 10},
		ClusterRegion:     "cn-hangzhou",
		TokenMode:         TokenModeAuto,
	}
	if fmt.Sprintf("%+v", *cfg) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *cfg, want)
	}
	if !cfg.Instances[0].Personal() || cfg.Instances[0].Key() != "cn-hangzhou/personal" {
		t.Errorf("default instance = %+v", cfg.Instances[0])
	}
	if _, _, err := Parse(map[string]string{}, Options{}); err == nil || !strings.Contains(err.Error(), "no cluster region") {
		t.Errorf("empty config without region: err = %v", err)
	}
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		key, value string
		want       Selector
		warn       bool
		wantErr    string
	}{
		{KeyServiceAccount, "default", Selector{Names: []string{"default"}}, false, ""},
		{KeyServiceAccount, " default , builder,default", Selector{Names: []string{"default", "builder"}}, false, ""},
		{KeyServiceAccount, "*", Selector{All: true}, false, ""},
		{KeyServiceAccount, "*,builder", Selector{All: true}, true, ""},
		{KeyServiceAccount, "", Selector{Names: []string{"default"}}, true, ""},
		{KeyServiceAccount, "Bad_Name", Selector{}, false, `service-account: "Bad_Name" is not a valid Kubernetes name`},
		{KeyWatchNamespace, "default", Selector{Names: []string{"default"}}, false, ""},
		{KeyWatchNamespace, "all", Selector{All: true}, false, ""},
		{KeyWatchNamespace, "ALL", Selector{All: true}, false, ""},
		{KeyWatchNamespace, "app-a,app-b", Selector{Names: []string{"app-a", "app-b"}}, false, ""},
		{KeyWatchNamespace, "app-a,all", Selector{All: true}, true, ""},
		{KeyWatchNamespace, "app.a", Selector{}, false, `watch-namespace: "app.a" is not a valid Kubernetes name`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			cfg, warns, err := Parse(map[string]string{tt.key: tt.value}, hz)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.ServiceAccounts
			if tt.key == KeyWatchNamespace {
				got = cfg.WatchNamespaces
			}
			if got.All != tt.want.All || !slices.Equal(got.Names, tt.want.Names) {
				t.Errorf("selector = %+v, want %+v", got, tt.want)
			}
			if (len(warns) > 0) != tt.warn {
				t.Errorf("warnings = %v, want warning: %v", warns, tt.warn)
			}
		})
	}
	s := Selector{Names: []string{"a", "b"}}
	if !s.Matches("b") || s.Matches("c") || !(Selector{All: true}).Matches("x") || s.String() != "a,b" || (Selector{All: true}).String() != "*" {
		t.Error("Selector methods")
	}
}

func TestScalarKeys(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string]string
		check   func(*Config) bool
		warn    string
		wantErr string
	}{
		{"threshold 15m", map[string]string{KeyExpiringThreshold: "15m"}, func(c *Config) bool { return c.ExpiringThreshold == 15*time.Minute }, "", ""},
		{"threshold 45s", map[string]string{KeyExpiringThreshold: " 45s "}, func(c *Config) bool { return c.ExpiringThreshold == 45*time.Second }, "", ""},
		{"threshold empty keeps default", map[string]string{KeyExpiringThreshold: ""}, func(c *Config) bool { return c.ExpiringThreshold == DefaultExpiringThreshold }, "", ""},
		{"threshold without unit", map[string]string{KeyExpiringThreshold: "900"}, nil, "", `expiring-threshold: "900" is not a duration`},
		{"threshold zero", map[string]string{KeyExpiringThreshold: "0s"}, nil, "", `expiring-threshold: "0s" must be greater than 0`},
		{"threshold negative", map[string]string{KeyExpiringThreshold: "-5m"}, nil, "", "must be greater than 0"},
		{"threshold over token life", map[string]string{KeyExpiringThreshold: "2h"}, func(c *Config) bool { return c.ExpiringThreshold == 2*time.Hour }, KeyExpiringThreshold, ""},
		{"notify-email accepted", map[string]string{KeyNotifyEmail: "ops@example.com"}, func(c *Config) bool { return c.NotifyEmail == "ops@example.com" }, "", ""},
		{"notify-email odd", map[string]string{KeyNotifyEmail: "nobody"}, func(c *Config) bool { return c.NotifyEmail == "nobody" }, KeyNotifyEmail, ""},
		{"api version", map[string]string{KeyACRAPIVersion: "2018-12-01"}, func(c *Config) bool { return c.APIVersion == "2018-12-01" }, "", ""},
		{"api version other", map[string]string{KeyACRAPIVersion: "2016-06-07"}, func(c *Config) bool { return c.APIVersion == "2016-06-07" }, KeyACRAPIVersion, ""},
		{"unknown key", map[string]string{"watchNamespace": "x"}, func(c *Config) bool { return true }, "watchNamespace", ""},
		{"rrsa enable", map[string]string{KeyRRSA: "enable: true\n"}, func(c *Config) bool { return c.RRSA.Enable }, "rrsa.enable", ""},
		{"rrsa quoted", map[string]string{KeyRRSA: `enable: "false"`}, func(c *Config) bool { return !c.RRSA.Enable }, "", ""},
		{"rrsa json", map[string]string{KeyRRSA: `{"enable": false}`}, func(c *Config) bool { return !c.RRSA.Enable }, "", ""},
		{"rrsa empty", map[string]string{KeyRRSA: ""}, func(c *Config) bool { return !c.RRSA.Enable }, "", ""},
		{"rrsa unknown field", map[string]string{KeyRRSA: "enable: false\nfoo: 1"}, func(c *Config) bool { return true }, "rrsa.foo", ""},
		{"rrsa bad bool", map[string]string{KeyRRSA: "enable: maybe"}, nil, "", `rrsa.enable: "maybe" must be true or false`},
		{"rrsa not mapping", map[string]string{KeyRRSA: "true"}, nil, "", "rrsa: true must be a YAML mapping"},
		{"webhook full", map[string]string{KeyWebhook: "enable: true\nfailure-policy: Fail\ntimeout-seconds: 5\n"},
			func(c *Config) bool {
				return c.Webhook == Webhook{Enable: true, FailurePolicy: FailurePolicyFail, TimeoutSeconds: 5}
			}, "", ""},
		{"webhook defaults", map[string]string{KeyWebhook: "enable: true"},
			func(c *Config) bool {
				return c.Webhook == Webhook{Enable: true, FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: 10}
			}, "", ""},
		{"webhook lower-case policy and quoted timeout", map[string]string{KeyWebhook: "failure-policy: ignore\ntimeout-seconds: \"30\""},
			func(c *Config) bool {
				return c.Webhook == Webhook{FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: 30}
			}, "", ""},
		{"webhook bad policy", map[string]string{KeyWebhook: "failure-policy: Maybe"}, nil, "", `webhook-configuration.failure-policy: "Maybe" must be Ignore or Fail`},
		{"webhook timeout 0", map[string]string{KeyWebhook: "timeout-seconds: 0"}, nil, "", "webhook-configuration.timeout-seconds: 0 is outside 1..30"},
		{"webhook timeout 31", map[string]string{KeyWebhook: "timeout-seconds: 31"}, nil, "", "webhook-configuration.timeout-seconds: 31 is outside 1..30"},
		{"webhook timeout text", map[string]string{KeyWebhook: "timeout-seconds: ten"}, nil, "", `timeout-seconds: "ten" is not an integer`},
		{"webhook bad yaml", map[string]string{KeyWebhook: "enable: [true"}, nil, "", "webhook-configuration: is not valid YAML or JSON"},
		{"webhook duplicate keys", map[string]string{KeyWebhook: "enable: true\nenable: false"}, nil, "", "webhook-configuration: is not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := Parse(tt.data, hz)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if cfg != nil {
					t.Error("a config was returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected config %+v", cfg)
			}
			fields := warningFields(warns)
			if tt.warn == "" && len(fields) > 0 || tt.warn != "" && !slices.Contains(fields, tt.warn) {
				t.Errorf("warnings = %v, want %q", warns, tt.warn)
			}
		})
	}
}

func TestTokenModeAndOptions(t *testing.T) {
	for in, want := range map[string]TokenMode{"": TokenModeAuto, "auto": TokenModeAuto, "managedRole": TokenModeManagedRole,
		"WORKERROLE": TokenModeWorkerRole, " workerRole ": TokenModeWorkerRole} {
		got, err := ParseTokenMode(in)
		if err != nil || got != want {
			t.Errorf("ParseTokenMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseTokenMode("root"); err == nil || !strings.Contains(err.Error(), `tokenMode: "root" must be auto`) {
		t.Errorf("bad token mode: %v", err)
	}
	cfg, _ := mustParse(t, nil, Options{ClusterRegion: "cn-beijing", TokenMode: TokenModeWorkerRole})
	if cfg.TokenMode != TokenModeWorkerRole || cfg.Instances[0].RegionID != "cn-beijing" {
		t.Errorf("options not applied: %+v", cfg)
	}
	_, _, err := Parse(nil, Options{ClusterRegion: "Hangzhou", TokenMode: "x"})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("want 2 option errors, got %v", err)
	}
}

func TestWarningsNote(t *testing.T) {
	ws := []string{"a: one", "b: two"}
	if got := WarningsNote(ws); got != "2 warnings: a: one; b: two" {
		t.Errorf("note %q", got)
	}
	if got := WarningsNote(ws[:1]); got != "1 warning: a: one" {
		t.Errorf("note %q", got)
	}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("acr-registry-info[%d].domains: %s", i, strings.Repeat("x", 40)))
	}
	got := WarningsNote(many)
	if len(got) > NoteLimit || !strings.HasPrefix(got, "40 warnings: acr-registry-info[0].domains") || !strings.Contains(got, " more (see the log)") {
		t.Errorf("long note (%d bytes): %s", len(got), got)
	}
}
