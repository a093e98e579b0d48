package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBuilder(t0, false)
	b.Add("s/app:v1", "sha256:1", Destination{Ref: "d/app:v1", Status: "copied", Bytes: 10}, nil)
	b.Add("s/app:v1", "sha256:1", Destination{Ref: "d2/app:v1", Status: "skipped"}, nil)
	b.Add("s/app:v2", "", Destination{Ref: "d/app:v2", Status: "failed"}, errors.New("denied for https://u:topsecret@x/"))
	r := b.Done(t0.Add(2 * time.Second))
	if r.Summary.Copied != 1 || r.Summary.Skipped != 1 || r.Summary.Failed != 1 || r.Summary.Bytes != 10 || r.Summary.Seconds != 2 {
		t.Errorf("summary %+v", r.Summary)
	}
	if len(b.Failed()) != 1 || b.Failed()[0].Source != "s/app:v2" {
		t.Errorf("failed = %+v", b.Failed())
	}
	dir := t.TempDir()
	if err := r.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	if strings.Contains(string(data), "topsecret") {
		t.Error("secret in report")
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || back.Images[0].Status != "copied" || len(back.Images[0].Destinations) != 2 {
		t.Errorf("round trip: %v %+v", err, back.Images)
	}
	for format, want := range map[string]string{"json": `{"s/app:v1":["d/app:v1"]}`, "yaml": "s/app:v1:\n- d/app:v1\n"} {
		p := filepath.Join(dir, "ok."+format)
		if err := r.WriteSuccessImages(p, format); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != want {
			t.Errorf("%s: %q, want %q", format, got, want)
		}
	}
}

// TestBytesDoNotWrap: byte counts come from manifests a registry may fill with anything; the
// dry-run total stops at the largest int64 instead of turning negative.
func TestBytesDoNotWrap(t *testing.T) {
	b := NewBuilder(time.Now(), true)
	for i := range 3 {
		b.Add(fmt.Sprintf("s.io/p/a:%d", i), "", Destination{Ref: "d.io/m/a", Status: "planned", Bytes: math.MaxInt64/2 + 1}, nil)
	}
	b.Add("s.io/p/a:0", "", Destination{Ref: "d.io/m/b", Status: "planned", Bytes: math.MaxInt64}, nil)
	r := b.Done(time.Now())
	if r.Summary.Bytes != math.MaxInt64 || r.Images[0].Bytes != math.MaxInt64 {
		t.Errorf("bytes %d / %d, want %d", r.Summary.Bytes, r.Images[0].Bytes, int64(math.MaxInt64))
	}
}
