package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// TestMerge: the shards' reports give one report with every image once, summed counts, the
// earliest start and latest finish, errors kept; a destination two sources wrote is named.
func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	shard := func(start, end time.Duration, add func(b *Builder)) *Report {
		b := NewBuilder(t0.Add(start), false)
		add(b)
		return b.Done(t0.Add(end))
	}
	a := shard(0, 10*time.Second, func(b *Builder) {
		b.Add("h.io/p/a:1", "sha256:a", Destination{Ref: "d.io/m/a:1", Status: "copied", Bytes: 100}, nil)
		b.Add("h.io/p/a:2", "sha256:b", Destination{Ref: "d.io/m/a:2", Status: "skipped"}, nil)
	})
	b := shard(time.Second, 20*time.Second, func(b *Builder) {
		b.Add("h.io/p/b:1", "sha256:c", Destination{Ref: "d.io/m/b:1", Status: "failed"}, errors.New("push denied"))
		b.Add("h.io/q/a:1", "sha256:d", Destination{Ref: "d.io/m/a:1", Status: "copied", Bytes: 5}, nil) // same destination as a's
	})
	m, conflicts := Merge([]*Report{a, b})
	s := m.Summary
	if s.Tasks != 4 || s.Copied != 2 || s.Skipped != 1 || s.Failed != 1 || s.Bytes != 105 {
		t.Errorf("summary %+v", s)
	}
	if !s.Started.Equal(t0) || !s.Finished.Equal(t0.Add(20*time.Second)) || s.Seconds != 20 {
		t.Errorf("times %v %v %v", s.Started, s.Finished, s.Seconds)
	}
	var srcs []string
	for _, img := range m.Images {
		srcs = append(srcs, img.Source)
		if img.Source == "h.io/p/b:1" && (img.Error != "push denied" || img.Destinations[0].Error != "push denied") {
			t.Errorf("error lost: %+v", img)
		}
	}
	if want := []string{"h.io/p/a:1", "h.io/p/a:2", "h.io/p/b:1", "h.io/q/a:1"}; !slices.Equal(srcs, want) {
		t.Errorf("images %v, want each once: %v", srcs, want)
	}
	if len(conflicts) != 1 || !strings.Contains(conflicts[0], "d.io/m/a:1 is written by 2 sources (h.io/p/a:1, h.io/q/a:1)") {
		t.Errorf("conflicts %v", conflicts)
	}
	// the same image reported by two shards (a re-run shard) is listed once with both destinations
	again, _ := Merge([]*Report{a, a})
	if len(again.Images) != 2 || len(again.Images[0].Destinations) != 2 {
		t.Errorf("re-reported image: %+v", again.Images)
	}
}
