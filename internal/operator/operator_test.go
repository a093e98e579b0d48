package operator

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) (*Logging, *Listeners, error) {
	t.Helper()
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	l := &Logging{}
	ls := &Listeners{MetricsAddr: ":8080"}
	l.AddFlags(fs)
	l.AddDeprecatedLevelFlag(fs)
	ls.AddFlags(fs, WithHealthProbe(":8081"), WithMetricsAlias("metrics-addr"))
	err := fs.Parse(args)
	if err == nil {
		err = l.Validate()
	}
	return l, ls, err
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name            string
		args            []string
		format          string
		level           slog.Level
		metrics, health string
		wantErr         string
	}{
		{name: "defaults", format: "json", level: slog.LevelInfo, metrics: ":8080", health: ":8081"},
		{name: "text and debug", args: []string{"--log-format=text", "-v", "1"}, format: "text", level: slog.LevelDebug, metrics: ":8080", health: ":8081"},
		{name: "--v spelling", args: []string{"--v=2"}, format: "json", level: slog.LevelDebug, metrics: ":8080", health: ":8081"},
		{name: "high verbosity", args: []string{"-v=6"}, format: "json", level: -6, metrics: ":8080", health: ":8081"},
		{name: "quieter", args: []string{"-v=-4"}, format: "json", level: slog.LevelWarn, metrics: ":8080", health: ":8081"},
		{name: "deprecated log-level debug", args: []string{"--log-level=debug"}, format: "json", level: slog.LevelDebug, metrics: ":8080", health: ":8081"},
		{name: "deprecated log-level error", args: []string{"--log-level", "error"}, format: "json", level: slog.LevelError, metrics: ":8080", health: ":8081"},
		{name: "listeners", args: []string{"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:9"}, format: "json", level: slog.LevelInfo, metrics: "0", health: "127.0.0.1:9"},
		{name: "deprecated metrics alias", args: []string{"--metrics-addr=127.0.0.1:9464"}, format: "json", level: slog.LevelInfo, metrics: "127.0.0.1:9464", health: ":8081"},
		{name: "bad format", args: []string{"--log-format=xml"}, wantErr: `--log-format "xml": must be json or text`},
		{name: "bad level", args: []string{"--log-level=loud"}, wantErr: "want debug, info, warn or error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ls, err := parse(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Format != tt.format || l.Level() != tt.level || ls.MetricsAddr != tt.metrics || ls.HealthAddr != tt.health {
				t.Fatalf("format %q level %v metrics %q health %q, want %q %v %q %q", l.Format, l.Level(), ls.MetricsAddr, ls.HealthAddr,
					tt.format, tt.level, tt.metrics, tt.health)
			}
		})
	}
}

// TestLoggerRedactsAndFiltersLevels: the handler every binary uses drops secrets (by attribute
// name, in URLs and registered literals) and honours -v, also through logr (controller-runtime).
func TestLoggerRedactsAndFiltersLevels(t *testing.T) {
	var buf bytes.Buffer
	l := &Logging{Format: FormatJSON, Verbosity: 1}
	lg := l.Logger(&buf, "literal-secret-value")
	lg.Info("calling https://user:hunter2@example.com/x", "password", "p4ssw0rd", "note", "has literal-secret-value inside")
	logr.FromSlogHandler(lg.Handler()).V(1).Info("debug via logr", "token", "tok-123")
	logr.FromSlogHandler(lg.Handler()).V(5).Info("too verbose")
	out := buf.String()
	for _, secret := range []string{"hunter2", "p4ssw0rd", "literal-secret-value", "tok-123"} {
		if strings.Contains(out, secret) {
			t.Errorf("log output contains %q:\n%s", secret, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (info, V(1)), got:\n%s", out)
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
	}

	buf.Reset()
	(&Logging{Format: FormatText}).Logger(&buf).Debug("hidden")
	(&Logging{Format: FormatText}).Logger(&buf).Info("shown")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "msg=shown") {
		t.Fatalf("text logger at -v 0: %q", got)
	}
}

func TestCommand(t *testing.T) {
	var out, errb bytes.Buffer
	ran := false
	cmd := Command("x", "short", "long", Streams{Out: &out, Err: &errb}, []string{"extra"}, func(*cobra.Command) error { ran = true; return nil })
	if err := cmd.Execute(); err == nil || ran {
		t.Fatalf("positional argument accepted (err %v, ran %v)", err, ran)
	}
	cmd = Command("x", "short", "long", Streams{Out: &out, Err: &errb}, []string{"--help"}, func(*cobra.Command) error { ran = true; return nil })
	if err := cmd.Execute(); err != nil || ran || !strings.Contains(out.String(), "long") {
		t.Fatalf("--help: err %v ran %v out %q", err, ran, out.String())
	}
	if !Enabled(":8080") || Enabled("0") || Enabled("") {
		t.Fatal("Enabled")
	}
}
