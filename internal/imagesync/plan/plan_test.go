package plan

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/imagesync/config"
)

type staticLister struct {
	tags    map[string][]string
	catalog map[string][]string
}

func (s staticLister) Tags(_ context.Context, repo string) ([]string, error) {
	t, ok := s.tags[repo]
	if !ok {
		return nil, errors.New("NAME_UNKNOWN")
	}
	return t, nil
}

func (s staticLister) Catalog(_ context.Context, reg string) ([]string, error) {
	return s.catalog[reg], nil
}

func TestExpand(t *testing.T) {
	l := staticLister{
		tags: map[string][]string{
			"h.io/lib/app":      {"v1", "v2", "dev"},
			"h.io/lib/team/web": {"1.0"},
			"h.io/lib/empty":    {},
		},
		catalog: map[string][]string{"h.io": {"lib/app", "lib/team/web", "other/x", "lib/empty"}},
	}
	entries := []config.Entry{
		{Source: "h.io/lib/app", Destination: "d.io/m/app"},
		{Source: "h.io/lib/app:/^v/", Destination: "d.io/m/re"},
		{Source: "h.io/lib/*", Destination: "d.io/mirror"},
		{Source: "h.io/lib/missing", Destination: "d.io/m/missing"},
		{Source: "h.io/lib/app:v1", Destination: "d.io/m/app"}, // duplicate of the first rule's v1
	}
	var rules []config.Rule
	for _, e := range entries {
		r, err := config.ParseRule(e, config.Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	res := Expand(t.Context(), rules, l, 2)
	var got []string
	for _, tk := range res.Tasks {
		got = append(got, tk.Source+">"+tk.Dest)
	}
	want := []string{
		"h.io/lib/app:dev>d.io/m/app:dev", "h.io/lib/app:v1>d.io/m/app:v1", "h.io/lib/app:v2>d.io/m/app:v2",
		"h.io/lib/app:v1>d.io/m/re:v1", "h.io/lib/app:v2>d.io/m/re:v2",
		"h.io/lib/app:dev>d.io/mirror/app:dev", "h.io/lib/app:v1>d.io/mirror/app:v1", "h.io/lib/app:v2>d.io/mirror/app:v2",
		"h.io/lib/team/web:1.0>d.io/mirror/team/web:1.0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tasks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Failed) != 1 || res.Failed[0].Source != "h.io/lib/missing" || !strings.Contains(res.Failed[0].Error(), "NAME_UNKNOWN") {
		t.Errorf("failed = %v", res.Failed)
	}
}

// TestConflictingSources: two different sources writing one destination tag would both be
// "copied", the last one winning; both are refused, naming the destination and the sources.
func TestConflictingSources(t *testing.T) {
	l := staticLister{tags: map[string][]string{"a.io/p/x": {"v1", "v2"}, "b.io/p/x": {"v1"}}}
	var rules []config.Rule
	for _, e := range []config.Entry{
		{Source: "a.io/p/x", Destination: "d.io/m/x"},
		{Source: "b.io/p/x", Destination: "d.io/m/x"},
		{Source: "a.io/p/x:v2", Destination: "d.io/m/x"}, // the same source again: no conflict
	} {
		r, err := config.ParseRule(e, config.Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	res := Expand(t.Context(), rules, l, 2)
	if len(res.Tasks) != 1 || res.Tasks[0].Dest != "d.io/m/x:v2" {
		t.Errorf("tasks = %+v", res.Tasks)
	}
	if len(res.Conflicts) != 1 || len(res.Conflicts[0].Tasks) != 2 {
		t.Fatalf("conflicts = %+v", res.Conflicts)
	}
	if got, want := res.Conflicts[0].Error(), "destination d.io/m/x:v1 is written by 2 sources (a.io/p/x:v1, b.io/p/x:v1)"; !strings.Contains(got, want) {
		t.Errorf("error %q, want %q", got, want)
	}
}

// TestCatalogEntryWithDotDot: a hostile catalog listing "lib/../../x" fails the rule instead of
// writing outside the destination namespace.
func TestCatalogEntryWithDotDot(t *testing.T) {
	l := staticLister{catalog: map[string][]string{"h.io": {"lib/../../x"}}, tags: map[string][]string{}}
	r, err := config.ParseRule(config.Entry{Source: "h.io/lib/*", Destination: "d.io/m"}, config.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	res := Expand(t.Context(), []config.Rule{r}, l, 1)
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Error(), `the catalog of h.io lists "lib/../../x"`) {
		t.Errorf("failed = %v", res.Failed)
	}
}
