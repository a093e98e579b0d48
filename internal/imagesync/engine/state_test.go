package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrypull/ferry/internal/imagesync/state"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
)

// stateRun runs pairs with a fresh Engine (as a new invocation would) on the state file at path
// and returns the results and the request counter; the state is saved afterwards.
func stateRun(t *testing.T, dir string, clk *fakeclock.Clock, o Options, pairs ...[2]string) ([]Result, *counter) {
	t.Helper()
	var dsts []string
	for _, p := range pairs {
		dsts = append(dsts, p[1]) // host:port/repository, as the command passes rule destinations
	}
	st, err := state.Open(dir, RegistryHosts(dsts), time.Hour, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	o.State = st
	e, c := newEngine(t, nil, o)
	tasks := rules(t, e, pairs...)
	c.reset()
	// as the command does: verify each destination registry while the tasks are prepared
	e.SpotCheck(t.Context(), dsts)
	res := e.Run(t.Context(), tasks, RunOptions{Jobs: 3})
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	return res, c
}

func statuses(rs []Result) map[Status]int {
	m := map[Status]int{}
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}

// TestStateRerunIsOneSourceHeadPerTag: with the state of the previous run, an unchanged tag costs one
// HEAD at the source and nothing at the destination but one spot check per destination registry;
// a changed source tag is copied; a wiped destination registry at the same address is noticed by
// the spot check and refilled; expired entries are checked on both sides again.
func TestStateRerunIsOneSourceHeadPerTag(t *testing.T) {
	f := corpus(t)
	S, D := f.src.Addr, f.dst.Addr
	pairs := f.rerunPairs()
	const n = 6         // tags
	path := t.TempDir() // the state directory
	clk := fakeclock.New(time.Now())

	first, _ := stateRun(t, path, clk, Options{}, pairs...)
	if s := statuses(first); s[Copied] != n {
		t.Fatalf("first run: %v", s)
	}

	second, c := stateRun(t, path, clk, Options{}, pairs...)
	for _, r := range second {
		if r.Status != Skipped || r.Bytes != 0 || r.Message != MsgExists || r.DstDigest != digestOf(t, r.Task.Dest) {
			t.Errorf("re-run %s: %s bytes=%d digest=%s %v", r.Task.Source, r.Status, r.Bytes, r.Digest, r.Err)
		}
	}
	if got := c.count(S, "HEAD", "manifest"); got != n {
		t.Errorf("source manifest HEADs = %d, want %d (one per tag)", got, n)
	}
	if got := c.notMod.Load(); got != n {
		t.Errorf("304 Not Modified answers = %d, want %d (every source HEAD conditional)", got, n)
	}
	if got := c.count(D, "HEAD", "manifest"); got != 1 {
		t.Errorf("destination manifest HEADs = %d, want 1 (the spot check)", got)
	}
	if got := c.count(D, "", "") - c.count(D, "GET", "other"); got != 1 {
		t.Errorf("destination requests besides the ping = %d, want 1", got)
	}
	for _, k := range []string{"blob", "upload"} {
		if got := c.count("", "", k); got != 0 {
			t.Errorf("%s requests on re-run = %d, want 0", k, got)
		}
	}

	// A new image behind a source tag is copied; the others stay skipped.
	base, err := random.Layer(1024, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	newDigest := push(t, S+"/proj/app:v2", testimage.Image(t, base, 999, types.DockerManifestSchema2, v1.Platform{OS: "linux", Architecture: "amd64"}))
	third, _ := stateRun(t, path, clk, Options{}, pairs...)
	if s := statuses(third); s[Copied] != 1 || s[Skipped] != n-1 {
		t.Errorf("after a source change: %v, want 1 copied", s)
	}
	if got := digestOf(t, D+"/all/app:v2"); got != newDigest.String() {
		t.Errorf("changed tag at destination = %s, want %s", got, newDigest)
	}

	// Wipe the destination registry (same address, empty storage): the spot check misses, the
	// registry's entries are dropped and every image is copied again.
	if err := os.RemoveAll(filepath.Join(f.dst.Dir, "data", "docker", "registry", "v2", "repositories")); err != nil {
		t.Fatal(err)
	}
	// SpotCheck alone: one HEAD of the newest remembered tag, a negative verdict for the engine,
	// and the registry's entries dropped.
	st, err := state.Open(path, []string{D}, time.Hour, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e, c := newEngine(t, nil, Options{State: st})
	e.SpotCheck(t.Context(), []string{D, D})
	if e.dstTrusted(t.Context(), D, func() (bool, bool) { t.Error("a second spot check ran"); return true, true }) {
		t.Error("wiped destination trusted")
	}
	if got := c.count(D, "HEAD", "manifest"); got != 1 {
		t.Errorf("spot check HEADs = %d, want 1", got)
	}
	if _, _, ok := st.Newest(D); ok {
		t.Error("entries of the wiped registry kept")
	}
	var fourth []Result
	fourth, c = stateRun(t, path, clk, Options{}, pairs...)
	if s := statuses(fourth); s[Copied] != n {
		t.Errorf("after wiping the destination: %v, want all %d copied", s, n)
	}
	if got := c.count(D, "HEAD", "manifest"); got < n {
		t.Errorf("destination HEADs after a failed spot check = %d, want ≥ %d", got, n)
	}
	if got := c.count(S, "HEAD", "manifest"); got != 0 {
		t.Errorf("source HEADs after a failed spot check = %d, want 0 (the manifests are fetched)", got)
	}
	for _, p := range []string{"proj/list:1", "proj/oci:1", "proj/raw:1"} {
		dst := map[string]string{"proj/list:1": "/m/list:1", "proj/oci:1": "/m/oci:1", "proj/raw:1": "/m/raw:1"}[p]
		if got := digestOf(t, D+dst); got != f.digests[p].String() {
			t.Errorf("%s refilled as %s, want %s", dst, got, f.digests[p])
		}
	}

	// A run with another platform filter does not trust entries written without it.
	filter, err := ParsePlatformFilter([]string{"linux"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	_, c = stateRun(t, path, clk, Options{Filter: filter}, pairs...)
	if got := c.count(D, "HEAD", "manifest"); got != n+1 {
		t.Errorf("destination HEADs with another filter = %d, want %d (+1: the spot check)", got, n+1)
	}

	// After the TTL every entry is checked on both sides again.
	clk.Advance(time.Hour)
	_, c = stateRun(t, path, clk, Options{}, pairs...)
	if got := c.count(D, "HEAD", "manifest"); got != n {
		t.Errorf("destination HEADs after the TTL = %d, want %d", got, n)
	}

	// A dry run reads the state but writes nothing; --force ignores it.
	before, _ := os.ReadFile(state.File(path, D))
	dry, c := stateRun(t, path, clk, Options{DryRun: true}, pairs...)
	if s := statuses(dry); s[Skipped] != n {
		t.Errorf("dry run: %v", s)
	}
	if got := c.count(D, "HEAD", "manifest"); got != 1 {
		t.Errorf("dry run destination HEADs = %d, want 1", got)
	}
	forced, c := stateRun(t, path, clk, Options{Force: true}, pairs...)
	if s := statuses(forced); s[Copied] != n {
		t.Errorf("forced: %v", s)
	}
	if got := c.count(S, "HEAD", "manifest"); got != 0 {
		t.Errorf("forced run source HEADs = %d, want 0 (manifests are fetched)", got)
	}
	if after, _ := os.ReadFile(state.File(path, D)); len(before) == 0 || string(after) != string(before) {
		t.Errorf("dry run changed the state file:\n%s\n---\n%s", before, after)
	}
}

// TestRunJoinsSpotChecks: a spot check SpotCheck starts in the background is over when Run returns
// (here with nothing to copy, so Run itself takes no time): no goroutine outlives the run, and the
// verdict (and a dropped state) is in place before the caller saves the state.
func TestRunJoinsSpotChecks(t *testing.T) {
	f := corpus(t)
	dir := t.TempDir()
	clk := fakeclock.New(time.Now())
	pairs := f.rerunPairs()
	stateRun(t, dir, clk, Options{}, pairs...) // remembers the destination
	var dsts []string
	for _, p := range pairs {
		dsts = append(dsts, p[1])
	}
	st, err := state.Open(dir, RegistryHosts(dsts), time.Hour, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	e, c := newEngine(t, nil, Options{State: st})
	e.SpotCheck(t.Context(), dsts)
	e.Run(t.Context(), nil, RunOptions{Jobs: 1})
	e.trustMu.Lock()
	defer e.trustMu.Unlock()
	if len(e.trust) == 0 {
		t.Fatal("no spot check started")
	}
	for host, g := range e.trust {
		select {
		case <-g.done:
		default:
			t.Errorf("spot check of %s still running after Run returned", host)
		}
	}
	if n := c.count(f.dst.Addr, "HEAD", ""); n != 1 {
		t.Errorf("%d spot-check HEADs at the destination, want 1", n)
	}
}
