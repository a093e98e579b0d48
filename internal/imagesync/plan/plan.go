// Package plan expands parsed image rules into concrete copy tasks (one per source tag or digest and
// destination), listing tags and catalog repositories through a Lister.
package plan

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ferrypull/ferry/internal/imagesync/config"
)

// NamespaceLister is optionally implemented by a Lister that can list a namespace's repositories
// when the catalog is refused (Harbor's project API); expand uses it for namespace rules.
type NamespaceLister interface {
	Repositories(ctx context.Context, registry, namespace string) ([]string, error)
}

// Lister reads tag lists and the catalog of source registries.
type Lister interface {
	Tags(ctx context.Context, repo string) ([]string, error)        // repo = registry/repository
	Catalog(ctx context.Context, registry string) ([]string, error) // repository paths
}

// Task is one image to copy: a source tag or digest to a destination tag or digest.
type Task struct {
	Rule     int    // index into the rules given to Expand
	Source   string // registry/repo:tag or registry/repo@digest
	Dest     string
	SrcRepo  string
	DstRepo  string
	SrcID    string // tag or digest
	DstID    string
	ByDigest bool // the source is addressed by digest
}

// RuleError is a rule that could not be expanded (bad repository, listing failed).
type RuleError struct {
	Rule        int
	Source      string
	Destination string
	Err         error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("analyzing image rule for %s -> %s: %v", e.Source, e.Destination, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Conflict is a destination that two or more different sources would write: whichever finished
// last would win, so none of them is copied.
type Conflict struct {
	Dest    string
	Sources []string // sorted
	Tasks   []Task   // the refused tasks, in rule order
}

func (c *Conflict) Error() string {
	return fmt.Sprintf("destination %s is written by %d sources (%s): refused, map each source to its own destination", c.Dest, len(c.Sources), strings.Join(c.Sources, ", "))
}

// Result of Expand: tasks in rule order, the rules that failed, and the destinations claimed by
// more than one source (their tasks are not in Tasks).
type Result struct {
	Tasks     []Task
	Failed    []*RuleError
	Conflicts []*Conflict
	// Skipped counts (rule, destination) entries that produced no task (no tag matched).
	Empty []int
}

func ref(repo, id string) string {
	if strings.Contains(id, ":") {
		return repo + "@" + id
	}
	return repo + ":" + id
}

// Expand turns rules into tasks, listing tags (and catalogs for namespace rules) with up to
// parallel concurrent calls. A destination reached twice is kept once.
func Expand(ctx context.Context, rules []config.Rule, l Lister, parallel int) Result {
	return ExpandShard(ctx, rules, l, parallel, Shard{})
}

// ExpandShard is Expand for one shard: only the source repositories the shard has are expanded
// (their tags listed); a namespace rule's catalog is listed by every shard. Conflicts (two sources,
// one destination tag) are found among this shard's tasks; across shards the merged report finds
// them (report.Merge).
func ExpandShard(ctx context.Context, rules []config.Rule, l Lister, parallel int, shard Shard) Result {
	if parallel < 1 {
		parallel = 1
	}
	per := make([][]Task, len(rules))
	mine := make([]bool, len(rules)) // the rule has a repository in this shard
	errs := make([]*RuleError, len(rules))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range rules {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = &RuleError{Rule: i, Source: rules[i].Source, Destination: rules[i].Destination, Err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = &RuleError{Rule: i, Source: rules[i].Source, Destination: rules[i].Destination, Err: fmt.Errorf("internal error: %v", p)}
				}
			}()
			ts, has, err := expandOne(ctx, i, rules[i], l, shard)
			mine[i] = has
			if err != nil {
				errs[i] = &RuleError{Rule: i, Source: rules[i].Source, Destination: rules[i].Destination, Err: err}
				return
			}
			per[i] = ts
		}(i)
	}
	wg.Wait()
	var res Result
	seen := map[string]bool{}
	for i := range rules {
		if errs[i] != nil {
			res.Failed = append(res.Failed, errs[i])
			continue
		}
		if len(per[i]) == 0 && mine[i] {
			res.Empty = append(res.Empty, i)
		}
		for _, t := range per[i] {
			key := t.Source + "\x00" + t.Dest
			if seen[key] {
				continue
			}
			seen[key] = true
			res.Tasks = append(res.Tasks, t)
		}
	}
	res.Tasks, res.Conflicts = conflicts(res.Tasks)
	return res
}

// conflicts moves the tasks of every destination claimed by different sources out of tasks.
func conflicts(tasks []Task) ([]Task, []*Conflict) {
	sources := map[string][]string{}
	for _, t := range tasks {
		if !slices.Contains(sources[t.Dest], t.Source) {
			sources[t.Dest] = append(sources[t.Dest], t.Source)
		}
	}
	var kept []Task
	byDest := map[string]*Conflict{}
	var out []*Conflict
	for _, t := range tasks {
		if len(sources[t.Dest]) < 2 {
			kept = append(kept, t)
			continue
		}
		c, ok := byDest[t.Dest]
		if !ok {
			c = &Conflict{Dest: t.Dest, Sources: slices.Sorted(slices.Values(sources[t.Dest]))}
			byDest[t.Dest] = c
			out = append(out, c)
		}
		c.Tasks = append(c.Tasks, t)
	}
	return kept, out
}

func expandOne(ctx context.Context, i int, r config.Rule, l Lister, shard Shard) (_ []Task, has bool, _ error) {
	rules := []config.Rule{r}
	if r.Src.Namespace {
		var repos []string
		var err error
		if nl, ok := l.(NamespaceLister); ok {
			repos, err = nl.Repositories(ctx, r.Src.Registry, r.Src.Repository)
		} else {
			repos, err = l.Catalog(ctx, r.Src.Registry)
		}
		if err != nil {
			return nil, true, fmt.Errorf("list catalog of %s: %w", r.Src.Registry, err)
		}
		sort.Strings(repos)
		rules = rules[:0]
		for _, repo := range repos {
			if err := config.CheckRepositoryPath(repo); err != nil {
				return nil, true, fmt.Errorf("the catalog of %s lists %q: %w", r.Src.Registry, repo, err)
			}
			if nr, ok := r.ForRepository(repo); ok {
				rules = append(rules, nr)
			}
		}
	}
	var out []Task
	for _, rr := range rules {
		if !shard.Has(rr.Src.Name()) {
			continue
		}
		has = true
		var tags []string
		if rr.NeedsTagList() {
			all, err := l.Tags(ctx, rr.Src.Name())
			if err != nil {
				return nil, true, fmt.Errorf("list tags of %s: %w", rr.Src.Name(), err)
			}
			tags = rr.SelectTags(all)
		}
		for _, p := range rr.Pairs(tags) {
			out = append(out, Task{
				Rule: i, Source: ref(p.SrcRepo, p.SrcID), Dest: ref(p.DstRepo, p.DstID),
				SrcRepo: p.SrcRepo, DstRepo: p.DstRepo, SrcID: p.SrcID, DstID: p.DstID,
				ByDigest: strings.Contains(p.SrcID, ":"),
			})
		}
	}
	if len(rules) == 0 { // an empty catalog: reported once, by shard 0
		has = shard.Count <= 1 || shard.Index == 0
	}
	return out, has, nil
}
