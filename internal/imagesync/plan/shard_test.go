package plan

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferrypull/ferry/internal/imagesync/config"
)

func TestParseShard(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		v    string
		env  map[string]string
		want Shard
		err  string
	}{
		{v: "", want: Shard{}},
		{v: "0/3", want: Shard{0, 3}},
		{v: "2/3", want: Shard{2, 3}},
		{v: "0/1", want: Shard{0, 1}},
		{v: "3/3", err: `--shard "3/3": want i/n with 0 <= i < n`},
		{v: "-1/3", err: "want i/n"},
		{v: "1/0", err: "want i/n"},
		{v: "a/b", err: "want i/n"},
		{v: "1", err: "want i/n"},
		{v: "auto", env: map[string]string{EnvCompletionIndex: "1", EnvCompletions: "3"}, want: Shard{1, 3}},
		{v: "auto", env: map[string]string{EnvCompletionIndex: "1"}, err: `JOB_COMPLETIONS=""`},
		{v: "auto", env: map[string]string{EnvCompletionIndex: "5", EnvCompletions: "3"}, err: `--shard auto (JOB_COMPLETION_INDEX="5"`},
	} {
		t.Run(tc.v+fmt.Sprint(tc.env), func(t *testing.T) {
			got, err := ParseShard(tc.v, env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestShardPartition: every repository is in exactly one of n shards, stably, and no shard is left
// empty by 100 repositories.
func TestShardPartition(t *testing.T) {
	for _, n := range []int{2, 3, 7} {
		sizes := make([]int, n)
		for r := range 100 {
			repo := fmt.Sprintf("harbor.example.com/proj/app-%d", r)
			var in []int
			for i := range n {
				if (Shard{i, n}).Has(repo) {
					in = append(in, i)
				}
			}
			if len(in) != 1 {
				t.Fatalf("%s is in shards %v of %d, want exactly one", repo, in, n)
			}
			sizes[in[0]]++
			if !(Shard{in[0], n}).Has(repo) {
				t.Fatal("not stable")
			}
		}
		if slices.Contains(sizes, 0) {
			t.Errorf("n=%d: shard sizes %v", n, sizes)
		}
	}
	if !(Shard{}).Has("anything") || !(Shard{0, 1}).Has("anything") {
		t.Error("no sharding must select everything")
	}
}

// countingLister counts tag listings per repository.
type countingLister struct {
	staticLister
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingLister) Tags(ctx context.Context, repo string) ([]string, error) {
	c.mu.Lock()
	c.calls[repo]++
	c.mu.Unlock()
	return c.staticLister.Tags(ctx, repo)
}

// TestExpandShard: the shards' tasks are disjoint and together the unsharded plan; each shard
// lists the tags of its own repositories only; the rules' repositories never split.
func TestExpandShard(t *testing.T) {
	tags := map[string][]string{}
	var catalog []string
	for r := range 12 {
		repo := fmt.Sprintf("lib/app-%d", r)
		catalog = append(catalog, repo)
		tags["h.io/"+repo] = []string{"v1", "v2"}
	}
	base := staticLister{tags: tags, catalog: map[string][]string{"h.io": catalog}}
	rule, err := config.ParseRule(config.Entry{Source: "h.io/lib/*", Destination: "d.io/mirror"}, config.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	all := Expand(t.Context(), []config.Rule{rule}, base, 4)
	var union []string
	repoShard := map[string]int{}
	for i := range 3 {
		l := &countingLister{staticLister: base, calls: map[string]int{}}
		res := ExpandShard(t.Context(), []config.Rule{rule}, l, 4, Shard{i, 3})
		if len(res.Failed) > 0 || len(res.Empty) > 0 {
			t.Fatalf("shard %d: failed %v empty %v", i, res.Failed, res.Empty)
		}
		for _, tk := range res.Tasks {
			union = append(union, tk.Source+">"+tk.Dest)
			if s, ok := repoShard[tk.SrcRepo]; ok && s != i {
				t.Errorf("%s split over shards %d and %d", tk.SrcRepo, s, i)
			}
			repoShard[tk.SrcRepo] = i
		}
		for repo, n := range l.calls {
			if !(Shard{i, 3}).Has(repo) || n != 1 {
				t.Errorf("shard %d listed tags of %s %d times", i, repo, n)
			}
		}
	}
	var want []string
	for _, tk := range all.Tasks {
		want = append(want, tk.Source+">"+tk.Dest)
	}
	slices.Sort(union)
	slices.Sort(want)
	if !slices.Equal(union, want) {
		t.Errorf("shards together: %v\nunsharded: %v", union, want)
	}
}
