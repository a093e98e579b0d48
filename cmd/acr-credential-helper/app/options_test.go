package app

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/pullsecret"
)

func TestEveryFlagDocumented(t *testing.T) {
	cmd := NewCommand(func(context.Context, *Options, operator.Streams) error { return nil }, operator.Streams{Out: io.Discard, Err: io.Discard}, nil)
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if len(strings.TrimSpace(f.Usage)) < 15 {
			t.Errorf("--%s has no real documentation: %q", f.Name, f.Usage)
		}
	})
	for _, want := range []string{"leader-elect", "metrics-bind-address", "health-probe-bind-address", "webhook-port", "webhook-cert-dir",
		"region", "token-mode", "vpc", "cr-endpoint", "sts-endpoint", "metadata-endpoint", "ca-file", "rrsa-token-file", "cert-manager", "managed-role-arn"} {
		if cmd.Flags().Lookup(want) == nil {
			t.Errorf("flag --%s missing", want)
		}
	}
}

func TestValidateNamesFlagAndValue(t *testing.T) {
	tests := []struct {
		args []string
		want string // substring of the error; "" = valid
	}{
		{args: nil},
		{args: []string{"--region", "cn-hangzhou", "--token-mode", "workerRole", "--vpc"}},
		{args: []string{"--token-mode", "rootRole"}, want: `--token-mode "rootRole"`},
		{args: []string{"--region", "Hangzhou!"}, want: "--region"},
		{args: []string{"--log-format", "xml"}, want: `--log-format "xml"`},
		{args: []string{"--webhook-url", "http://127.0.0.1:9443"}, want: "--webhook-url"},
		{args: []string{"--cert-manager", "justname", "--webhook-cert-dir", "/x"}, want: `--cert-manager "justname"`},
		{args: []string{"--cert-manager", "ns/cert"}, want: "--webhook-cert-dir"},
		{args: []string{"--workers", "0"}, want: "--workers 0"},
		{args: []string{"--token-mode", "managedRole", "--managed-role-arn", "acs:ram::1234567890123456:role/AliyunCSManagedAcrRole"}},
		{args: []string{"--managed-role-arn", "arn:aws:iam::1:role/x"}, want: "--managed-role-arn"},
		{args: []string{"--managed-role-arn", "acs:ram::1:role/a,acs:ram::1:role/b"}, want: "want one role ARN"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ran := false
			cmd := NewCommand(func(context.Context, *Options, operator.Streams) error { ran = true; return nil }, operator.Streams{Out: io.Discard, Err: io.Discard}, tt.args)
			err := cmd.ExecuteContext(t.Context())
			if tt.want == "" {
				if err != nil || !ran {
					t.Fatalf("err=%v ran=%v", err, ran)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestManagedRoleARNReachesTheTokenSource: --managed-role-arn is the role tokenMode managedRole
// assumes on top of the worker role (and what auto picks when it is set); without the flag,
// managedRole has no role to assume.
func TestManagedRoleARNReachesTheTokenSource(t *testing.T) {
	const arn = "acs:ram::1234567890123456:role/AliyunCSManagedAcrRole"
	for _, tc := range []struct {
		flag, mode, want string
	}{
		{arn, "managedRole", "managedRole:" + arn},
		{arn, "auto", "managedRole:" + arn},
		{"", "managedRole", "no credential source"},
		{"", "auto", "workerRole"},
	} {
		t.Run(tc.mode+" "+tc.flag, func(t *testing.T) {
			o := DefaultOptions()
			o.Region, o.ManagedRoleARN, o.TokenMode, o.AddonSecret = "cn-hangzhou", tc.flag, tc.mode, "" // no cluster to read the add-on Secret from
			ct, err := newCloudTokens(t.Context(), o, nil, &pullsecret.Store{})
			if err != nil {
				t.Fatal(err)
			}
			req, err := ct.ClusterRequest(t.Context(), annotations.InstanceRef{RegionID: "cn-hangzhou", InstanceID: "cri-x"})
			if err != nil {
				t.Fatal(err)
			}
			id, err := ct.Resolver.Resolve(t.Context(), req)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = id.Key()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("identity %q, want %q", got, tc.want)
			}
		})
	}
}
