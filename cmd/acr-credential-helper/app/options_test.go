package app

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/operator"
)

func TestEveryFlagDocumented(t *testing.T) {
	cmd := NewCommand(func(context.Context, *Options, operator.Streams) error { return nil }, operator.Streams{Out: io.Discard, Err: io.Discard}, nil)
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if len(strings.TrimSpace(f.Usage)) < 15 {
			t.Errorf("--%s has no real documentation: %q", f.Name, f.Usage)
		}
	})
	for _, want := range []string{"leader-elect", "metrics-bind-address", "health-probe-bind-address", "webhook-port", "webhook-cert-dir",
		"region", "token-mode", "vpc", "cr-endpoint", "sts-endpoint", "metadata-endpoint", "ca-file", "rrsa-token-file", "cert-manager"} {
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
