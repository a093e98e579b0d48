package app

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/imagesync/report"
)

// TestShardsCopyEachRepositoryOnce runs a namespace rule as three shards (--shard i/3), as the
// three Pods of an Indexed Job would: every repository is copied by exactly one shard (from the
// shards' reports), every destination digest equals its source, and `report merge` lists every
// image once and exits zero; a failed shard report makes it exit non-zero.
func TestShardsCopyEachRepositoryOnce(t *testing.T) {
	h := startHarbor(t)
	S, D := h.src.Addr, h.dst.Addr
	auth := h.write(t, "auth.yaml", fmt.Sprintf("%s: {username: %q, password: %q, insecure: true}\n%s: {username: %s, password: %q, insecure: true}\n", S, robotUser, robotPass, D, dstUser, dstPass))
	images := h.write(t, "images.yaml", fmt.Sprintf("%q: %s/mirror\n", S+"/library/*", D))
	var reports []string
	byRepo := map[string][]int{}
	for i := range 3 {
		rp := filepath.Join(h.dir, fmt.Sprintf("shard-%d.json", i))
		r := runCmd(t, "--auth", auth, "--images", images, "--shard", fmt.Sprintf("%d/3", i), "--report", rp, "--state-dir", "")
		if r.err != nil {
			t.Fatalf("shard %d: %v\n%s", i, r.err, r.stderr)
		}
		noSecrets(t, r.stderr)
		rep, err := report.Read(rp)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range rep.Images {
			repo := img.Source
			if at := strings.LastIndex(repo, ":"); at > strings.LastIndex(repo, "/") {
				repo = repo[:at] // host:port/repository:tag
			}
			if !slices.Contains(byRepo[repo], i) {
				byRepo[repo] = append(byRepo[repo], i)
			}
		}
		reports = append(reports, rp)
	}
	for _, repo := range []string{"library/app", "library/list", "library/oci"} {
		if got := byRepo[S+"/"+repo]; len(got) != 1 {
			t.Errorf("%s copied by shards %v, want exactly one", repo, got)
		}
	}
	for src, d := range h.digests {
		if got := h.dstDigest(t, "mirror/"+strings.TrimPrefix(src, "library/")); got != d.String() {
			t.Errorf("mirror of %s: %s, want %s", src, got, d)
		}
	}
	merged := filepath.Join(h.dir, "merged.json")
	r := runCmd(t, append([]string{"report", "merge", "-o", merged}, reports...)...)
	if r.err != nil {
		t.Fatalf("merge: %v\n%s", r.err, r.stderr)
	}
	m, err := report.Read(merged)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for _, img := range m.Images {
		srcs = append(srcs, img.Source)
	}
	if len(srcs) != len(h.digests) || len(slices.Compact(slices.Clone(srcs))) != len(srcs) || m.Summary.Copied != len(h.digests) {
		t.Errorf("merged report: %v (summary %+v), want the %d images once each", srcs, m.Summary, len(h.digests))
	}

	// a shard whose run failed: the merge says so and exits non-zero
	bad := h.write(t, "bad.json", `{"summary":{"tasks":1,"failed":1},"images":[{"source":"x/y:1","status":"failed","destinations":[{"ref":"d/y:1","status":"failed","error":"boom"}]}]}`)
	if r := runCmd(t, "report", "merge", merged, bad); r.err == nil || !strings.Contains(r.err.Error(), "1 task(s) failed") {
		t.Errorf("merge with a failed shard: err = %v", r.err)
	}
	if r := runCmd(t, "--auth", auth, "--images", images, "--shard", "3/3"); r.err == nil || !strings.Contains(r.err.Error(), `--shard "3/3"`) {
		t.Errorf("--shard 3/3: err = %v", r.err)
	}
}
