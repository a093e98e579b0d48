package state

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// hosts are the registries the tests' keys live on.
var hosts = []string{"reg", "reg:5000", "other", "other:5000", "reg:50001"}

func open(t *testing.T, dir string, ttl time.Duration, clk *fakeclock.Clock) *Store {
	t.Helper()
	s, err := Open(dir, hosts, ttl, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLookupTrustsAnEntryForHalfToAllOfTheTTL(t *testing.T) {
	clk := fakeclock.New(t0)
	s := open(t, "", time.Hour, clk)
	keys := []string{"reg:5000/a:v1", "reg:5000/a:v2", "reg:5000/b:v1", "other/x@" + dA}
	for _, k := range keys {
		s.Put(k, Entry{Src: dA, Dst: dA})
	}
	tests := []struct {
		after    time.Duration
		minFresh int
		maxFresh int
	}{
		{0, 4, 4},
		{29 * time.Minute, 4, 4}, // every entry is trusted for at least ttl/2
		{45 * time.Minute, 0, 4},
		{time.Hour, 0, 0}, // and never longer than ttl
		{48 * time.Hour, 0, 0},
	}
	for _, tt := range tests {
		clk := fakeclock.New(t0.Add(tt.after))
		s.now = clk.Now
		n := 0
		for _, k := range keys {
			if e, ok := s.Lookup(k); ok {
				n++
				if e.Src != dA {
					t.Errorf("%s: entry %+v", k, e)
				}
			}
		}
		if n < tt.minFresh || n > tt.maxFresh {
			t.Errorf("after %v: %d fresh entries, want %d..%d", tt.after, n, tt.minFresh, tt.maxFresh)
		}
	}
}

func TestJitterSpreadsExpiry(t *testing.T) {
	s := open(t, "", time.Hour, fakeclock.New(t0))
	seen := map[time.Duration]bool{}
	for i := range 50 {
		d := s.trustedFor("reg/app:v"+string(rune('a'+i%26))+string(rune('a'+i/26)), Entry{At: t0})
		if d < 30*time.Minute || d >= time.Hour {
			t.Fatalf("trusted for %v, want [30m, 1h)", d)
		}
		seen[d.Truncate(time.Minute)] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 keys expire in only %d distinct minutes", len(seen))
	}
}

func TestUntrustedEntries(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		at   time.Time
	}{
		{"ttl zero trusts nothing", 0, t0},
		{"negative ttl", -time.Hour, t0},
		{"entry from the future (clock skew)", time.Hour, t0.Add(10 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, "", tt.ttl, fakeclock.New(t0))
			s.Put("reg/a:v1", Entry{Src: dA, Dst: dA, At: tt.at})
			if _, ok := s.Lookup("reg/a:v1"); ok {
				t.Error("entry trusted")
			}
		})
	}
}

func TestSaveAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub", "state")
	path := File(dir, "reg:5000")
	clk := fakeclock.New(t0)
	s := open(t, dir, time.Hour, clk)
	s.Put("reg:5000/a:v1", Entry{Src: dA, Dst: dB, Variant: "os=linux"})
	s.Put("other:5000/a:v1", Entry{Src: dA, Dst: dA})
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "reg_5000.json" {
		t.Errorf("state file %s", path)
	}
	if only, err := Open(dir, []string{"other:5000"}, time.Hour, clk.Now); err != nil || only.Len() != 1 {
		t.Errorf("one registry's file holds %d entries (%v), want 1", only.Len(), err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	r := open(t, dir, time.Hour, clk)
	if e, ok := r.Lookup("reg:5000/a:v1"); !ok || e.Src != dA || e.Dst != dB || e.Variant != "os=linux" || !e.At.Equal(t0) {
		t.Errorf("reopened entry %+v %v", e, ok)
	}
	if n := r.DropHost("reg:5000"); n != 1 {
		t.Errorf("DropHost = %d, want 1", n)
	}
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	r2 := open(t, dir, time.Hour, clk)
	if _, ok := r2.Lookup("reg:5000/a:v1"); ok {
		t.Error("dropped entry came back")
	}
	if _, ok := r2.Lookup("other:5000/a:v1"); !ok {
		t.Error("other registry's entry lost")
	}
}

func TestSaveMergesConcurrentRunsAndPrunes(t *testing.T) {
	dir := t.TempDir()
	path := File(dir, "reg")
	clk := fakeclock.New(t0)
	old := open(t, dir, time.Hour, clk)
	old.Put("reg/stale:v1", Entry{Src: dA, Dst: dA, At: t0.Add(-2 * time.Hour)})
	old.Put("reg/x:v1", Entry{Src: dA, Dst: dA, At: t0.Add(-time.Minute)})
	// bypass pruning to leave an expired entry on disk
	data, _ := encode(old.entries)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := open(t, dir, time.Hour, clk)
	b := open(t, dir, time.Hour, clk)
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Put("reg/run"+string(rune('a'+i))+":v1", Entry{Src: dA, Dst: dA})
			if i == 1 {
				s.Put("reg/x:v1", Entry{Src: dB, Dst: dB}) // newer than a's view
			}
			if err := s.Save(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := read(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"reg/runa:v1", "reg/runb:v1", "reg/x:v1"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s lost in the merge: %v", k, got)
		}
	}
	if got["reg/x:v1"].Src != dB {
		t.Errorf("reg/x:v1 = %+v, want the newer observation", got["reg/x:v1"])
	}
	if _, ok := got["reg/stale:v1"]; ok {
		t.Error("expired entry not pruned")
	}
}

func TestBadFilesStartEmpty(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
		keep    int
	}{
		{"garbage", "not json", "not a state file", 0},
		{"other version", `{"version": 9}`, "version 9", 0},
		{"bad line", `{"version": 1}` + "\n" + `{"k": "reg/a:v1", "s": "` + dA + `", "d": "` + dA + `", "a": 1764000000000}` + "\n[1, 2", "entry 2", 0},
		{"bad entries dropped", `{"version": 1}
			{"k": "reg/a:v1", "s": "` + dA + `", "d": "` + dA + `", "a": 1764071940000}
			{"k": "nohost", "s": "` + dA + `", "d": "` + dA + `", "a": 1764071940000}
			{"k": "reg/b:v1", "s": "sha256:XYZ", "d": "` + dA + `", "a": 1764071940000}
			{"k": "reg/c:v1", "s": "` + dA + `", "d": "` + dA + `"}`, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := File(dir, "reg")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, hosts, time.Hour, fakeclock.New(t0).Now)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path)) {
				t.Errorf("err = %v, want %q naming the file", err, tt.wantErr)
			}
			if s == nil || s.Len() != tt.keep {
				t.Fatalf("store %v, want %d entries", s, tt.keep)
			}
			s.Put("reg/new:v1", Entry{Src: dA, Dst: dA})
			if err := s.Save(); err != nil {
				t.Errorf("save over a bad file: %v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version": 1}` + "\n" + `{"k": "reg/a:v1", "s": "` + dA + `", "t": "application/vnd.oci.image.manifest.v1+json", "z": 12, "d": "` + dB + `", "v": "os=linux", "a": 1764071940000}` + "\n"))
	f.Add([]byte(`{"version": 1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data)
		if err != nil {
			return
		}
		for k, e := range entries {
			if !strings.Contains(k, "/") || !validDigest(e.Src) || !validDigest(e.Dst) || e.At.UnixMilli() <= 0 {
				t.Fatalf("invalid entry kept: %q %+v", k, e)
			}
		}
		// what is kept survives a round trip unchanged
		data2, err := encode(entries)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(data2)
		if err != nil || len(again) != len(entries) {
			t.Fatalf("round trip: %d → %d entries, %v", len(entries), len(again), err)
		}
		for k, e := range entries {
			if a := again[k]; a.Src != e.Src || a.Dst != e.Dst || a.SrcType != e.SrcType || a.SrcSize != e.SrcSize || a.Variant != e.Variant || !a.At.Equal(e.At) {
				t.Fatalf("round trip changed %q: %+v → %+v", k, e, a)
			}
		}
	})
}

func TestNewestUnderPrefixes(t *testing.T) {
	clk := fakeclock.New(t0)
	s := open(t, "", time.Hour, clk)
	s.Put("reg:5000/team/app:v1", Entry{Src: dA, Dst: dA, At: t0.Add(-3 * time.Minute)})
	s.Put("reg:5000/team/app:v2", Entry{Src: dA, Dst: dA, At: t0.Add(-2 * time.Minute)})
	s.Put("reg:5000/other/x@"+dB, Entry{Src: dB, Dst: dB, At: t0.Add(-time.Minute)})
	s.Put("reg:50001/team/app:v9", Entry{Src: dA, Dst: dA, At: t0})
	s.Put("reg:5000/team/application:v3", Entry{Src: dA, Dst: dA, At: t0})
	tests := []struct {
		prefixes []string
		want     string
	}{
		{[]string{"reg:5000"}, "reg:5000/team/application:v3"},
		{[]string{"reg:5000/team/app"}, "reg:5000/team/app:v2"},
		{[]string{"reg:5000/team/app", "reg:5000/other/x"}, "reg:5000/other/x@" + dB},
		{[]string{"reg:5000/other"}, "reg:5000/other/x@" + dB}, // a namespace
		{[]string{"reg:500"}, ""},
		{[]string{"reg:5000/team/ap"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		got, _, ok := s.Newest(tt.prefixes...)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Newest(%q) = %q %v, want %q", tt.prefixes, got, ok, tt.want)
		}
	}
}

// BenchmarkOpen10k measures reading one registry's file of 10,000 remembered tags: the bytes it
// allocates and the live heap it keeps per tag (reported as live-B/tag).
func BenchmarkOpen10k(b *testing.B) {
	dir := b.TempDir()
	clk := fakeclock.New(t0)
	s, _ := Open(dir, []string{"reg:5000"}, time.Hour, clk.Now)
	for i := range 10000 {
		s.Put(fmt.Sprintf("reg:5000/team/app%03d:v%d", i/100, i%100), Entry{Src: dA, SrcType: "application/vnd.oci.image.manifest.v1+json", SrcSize: 1234, Dst: dB})
	}
	if err := s.Save(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var before, after runtime.MemStats
	var keep *Store
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		keep, _ = Open(dir, []string{"reg:5000"}, time.Hour, clk.Now)
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	if keep.Len() != 10000 {
		b.Fatalf("%d entries", keep.Len())
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10000, "live-B/tag")
}
