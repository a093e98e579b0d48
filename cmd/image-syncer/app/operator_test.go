package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorFlags: image-syncer shares the operator surface of every ferry binary and keeps
// upstream's flags: --metrics-addr still works (deprecated alias of --metrics-bind-address) and
// --log-format json turns upstream's lines into JSON objects with the same messages.
func TestOperatorFlags(t *testing.T) {
	help := runCmd(t, "--help")
	for _, f := range []string{"--config", "--auth", "--images", "--log", "--proc", "--retries", "--os", "--arch", "--force",
		"--output-success-images", "--output-images-format", "--metrics-bind-address", "--log-format", "-v, --v"} {
		if !strings.Contains(help.stderr, f) {
			t.Errorf("--help lacks %s", f)
		}
	}
	if strings.Contains(help.stderr, "--metrics-addr") {
		t.Errorf("deprecated --metrics-addr should be hidden from --help")
	}

	images := filepath.Join(t.TempDir(), "images.yaml")
	if err := os.WriteFile(images, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, "--images", images, "--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--progress", "none")
	if r.err != nil {
		t.Fatalf("run: %v\n%s", r.err, r.stderr)
	}
	var finished bool
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(line, "Flag --metrics-addr has been deprecated") {
			continue
		}
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json wrote a non-JSON line %q", line)
		}
		finished = finished || strings.HasPrefix(rec.Msg, "Synchronization finished, 0 tasks failed")
	}
	if !finished || !strings.Contains(r.stderr, "serving metrics on http://127.0.0.1:") {
		t.Fatalf("no summary line or metrics line in JSON logs:\n%s", r.stderr)
	}

	if r := runCmd(t, "--images", images, "--log-format", "xml"); r.err == nil || !strings.Contains(r.err.Error(), `--log-format "xml"`) {
		t.Fatalf("--log-format xml: %v", r.err)
	}
}
