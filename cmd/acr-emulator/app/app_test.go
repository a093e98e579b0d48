package app

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/operator"
)

func TestRunWritesInfoAndStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	cmd := NewCommand(Run, operator.Streams{Out: pw, Err: &stderr},
		[]string{"--data-dir", dir, "--info-file", filepath.Join(dir, "info.json"), "--hosts-file", filepath.Join(dir, "hosts"), "--token-ttl", "2m", "--log-format", "json"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v (stderr %s)", err, stderr.String())
	}
	if !strings.HasPrefix(line, "acr-emulator ready:") {
		t.Fatalf("ready line = %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	info, err := emulator.ReadInfoFile(filepath.Join(dir, "info.json"))
	if err != nil {
		t.Fatal(err)
	}
	if info.RegistryTLSEndpoint == "" || info.OpenAPIEndpoint == "" || len(info.Instances) < 3 {
		t.Fatalf("info = %+v", info)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("command returned %v", err)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--config", "w.yaml", "--oidc-issuer", "https://x"}, "--oidc-*"},
		{[]string{"--registry-addr", "0.0.0.0:0"}, "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			cmd := NewCommand(Run, operator.Streams{Out: io.Discard, Err: io.Discard}, append(tt.args, "--data-dir", t.TempDir()))
			err := cmd.ExecuteContext(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(Run, operator.Streams{Out: &out, Err: &out}, []string{"--help"})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--config", "--data-dir", "--info-file", "--hosts-file", "--openapi-addr", "--openapi-tls-addr", "--metadata-addr",
		"--registry-addr", "--registry-tls-addr", "--token-ttl", "--bare-domains", "--default-instance", "--oidc-issuer", "--oidc-jwks-url", "--log-format"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help does not document %s", f)
		}
	}
}
