package engine

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/redact"
)

// Listing limits: a registry that links a page back to itself, or invents next pages without
// end, is stopped instead of growing memory without bound (each page's size is capped by the
// transport, registry.Limits.MaxListBytes).
const (
	MaxListPages   = 10_000
	MaxListEntries = 1_000_000
)

// pager is what go-containerregistry's Lister and Catalogger have in common.
type pager[P any] interface {
	HasNext() bool
	Next(ctx context.Context) (P, error)
}

// collect reads every page, refusing a next link already followed and lists beyond the limits.
func collect[P any](ctx context.Context, what string, p pager[P], entries func(P) []string, next func(P) string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for pages := 1; p.HasNext(); pages++ {
		page, err := p.Next(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, entries(page)...)
		if len(out) > MaxListEntries {
			return nil, fmt.Errorf("%s has more than %d entries; refusing to read further", what, MaxListEntries)
		}
		n := next(page)
		if n == "" {
			continue
		}
		if seen[n] {
			return nil, fmt.Errorf("%s: the registry links page %d back to a page already read (%s)", what, pages, redact.URL(n))
		}
		seen[n] = true
		if pages >= MaxListPages {
			return nil, fmt.Errorf("%s has more than %d pages; refusing to read further", what, MaxListPages)
		}
	}
	return out, nil
}

// Tags lists the tags of registry/repository (following pagination, within the listing limits).
func (e *Engine) Tags(ctx context.Context, repo string) ([]string, error) {
	r, err := e.repo(repo)
	if err != nil {
		return nil, err
	}
	l, err := e.puller.Lister(ctx, r)
	if err != nil {
		return nil, err
	}
	return collect(ctx, "the tags list of "+r.String(), l,
		func(p *remote.Tags) []string { return p.Tags }, func(p *remote.Tags) string { return p.Next })
}

// Catalog lists the repositories of a registry (within the listing limits).
func (e *Engine) Catalog(ctx context.Context, reg string) ([]string, error) {
	r, err := name.NewRegistry(reg, e.nameOpts(reg)...)
	if err != nil {
		return nil, err
	}
	c, err := e.puller.Catalogger(ctx, r)
	if err != nil {
		return nil, err
	}
	return collect(ctx, "the catalog of "+r.String(), c,
		func(p *remote.Catalogs) []string { return p.Repos }, func(p *remote.Catalogs) string { return p.Next })
}
