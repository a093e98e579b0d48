package engine

// The state gates: a remembered destination is trusted after one spot check per destination registry.

import (
	"context"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrypull/ferry/internal/imagesync/plan"
	"github.com/ferrypull/ferry/internal/imagesync/state"
	"github.com/ferrypull/ferry/internal/registry"
)

// trustGate is the verdict of the one spot check per destination registry.
type trustGate struct {
	done chan struct{}
	ok   bool
}

// checkState is the remembered no-op: when the state trusts that the destination holds what the
// source pointed at when it was copied or confirmed, and the source still points there, the task
// is done after one source HEAD. The first such task per destination registry HEADs its destination
// too (the spot check): a miss there means the registry was wiped or replaced, so its entries are
// dropped and every task of that registry is checked on both sides.
func (e *Engine) checkState(ctx context.Context, t plan.Task, st *checked, res *Result) (bool, error) {
	if e.o.State == nil {
		return false, nil
	}
	ent, ok := e.o.State.Lookup(st.dst.Name())
	if !ok || ent.Variant != e.variant {
		return false, nil
	}
	// the verdict first: a wiped destination wastes no source HEAD (SpotCheck usually has it ready)
	if !e.dstTrusted(ctx, st.dstRepo.RegistryStr(), func() (bool, bool) { return e.verifyEntry(ctx, st.dst, ent) }) {
		return false, nil
	}
	if ent.SrcType != "" && ent.SrcSize > 0 {
		// the source answers "304 Not Modified" without reading the manifest when it still points there
		ctx = registry.WithKnownManifest(ctx, st.src.Context().RepositoryStr(), st.src.Identifier(),
			registry.KnownManifest{Digest: ent.Src, MediaType: ent.SrcType, Size: ent.SrcSize})
	}
	srcDigest, err := e.sourceDigest(ctx, t, st)
	if err != nil || srcDigest.String() != ent.Src {
		return false, err
	}
	e.skipped(st, res, ent.Src, ent.Dst)
	res.FromState = true
	return true, nil
}

// SpotCheck verifies the state of each destination registry in the background, with one HEAD of
// the newest remembered reference under the run's destinations (registry/repository names, or bare
// registries), so that tasks find the verdict ready instead of waiting for their own spot check.
// Choosing among this run's destinations keeps the check within what its credentials may read.
// Calling it is optional; Run waits for the checks it started before returning, so none outlives
// the run (nor races the caller's saving of the state).
func (e *Engine) SpotCheck(ctx context.Context, destinations []string) {
	if e.o.State == nil || e.o.Force {
		return
	}
	byHost := map[string][]string{} // host → normalised prefixes
	var hosts []string
	for _, d := range destinations {
		host, prefix, err := registryOf(d)
		if err != nil {
			continue
		}
		if _, ok := byHost[host]; !ok {
			hosts = append(hosts, host)
		}
		byHost[host] = append(byHost[host], prefix)
	}
	for _, host := range hosts {
		key, ent, ok := e.o.State.Newest(byHost[host]...)
		if !ok {
			continue
		}
		ref, err := name.ParseReference(key, e.nameOpts(host)...)
		if err != nil {
			continue
		}
		if g, first := e.gate(host); first {
			e.bg.Go(func() { e.settle(g, host, func() (bool, bool) { return e.verifyEntry(ctx, ref, ent) }) })
		}
	}
}

// RegistryHosts returns the registries of references or host names as the state keys them
// (docker.io becomes index.docker.io), without duplicates: the hosts to open the state for.
func RegistryHosts(names []string) []string {
	var out []string
	for _, n := range names {
		if h, _, err := registryOf(n); err == nil && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// registryOf normalises a registry or registry/repository name as state keys spell it: the
// registry host and the name itself (docker.io/x becomes index.docker.io/library/x).
func registryOf(n string) (host, normalised string, err error) {
	if !strings.Contains(n, "/") {
		reg, err := name.NewRegistry(n, name.Insecure)
		if err != nil {
			return "", "", err
		}
		return reg.RegistryStr(), reg.RegistryStr(), nil
	}
	repo, err := name.NewRepository(n, name.Insecure)
	if err != nil {
		return "", "", err
	}
	return repo.RegistryStr(), repo.Name(), nil
}

// verifyEntry HEADs a remembered destination reference: (matches, definitive).
func (e *Engine) verifyEntry(ctx context.Context, ref name.Reference, ent state.Entry) (bool, bool) {
	d, found, err := e.head(ctx, ref)
	if err != nil {
		return false, false // unknown: distrust this run, keep the entries
	}
	return found && d.String() == ent.Dst, true
}

// gate returns the spot-check gate of a destination registry; first is true for the caller that
// created it and must settle it.
func (e *Engine) gate(host string) (g *trustGate, first bool) {
	e.trustMu.Lock()
	defer e.trustMu.Unlock()
	if g, ok := e.trust[host]; ok {
		return g, false
	}
	g = &trustGate{done: make(chan struct{})}
	e.trust[host] = g
	return g, true
}

// settle runs verify, which reports (matches, definitive), and publishes the verdict; a definitive
// miss drops the registry's entries from the state.
func (e *Engine) settle(g *trustGate, host string, verify func() (bool, bool)) {
	ok, definitive := verify()
	if !ok && definitive {
		e.o.State.DropHost(host)
	}
	g.ok = ok
	close(g.done)
}

// dstTrusted returns the spot-check verdict for a destination registry, running verify if no spot
// check has started yet for it in this Engine.
func (e *Engine) dstTrusted(ctx context.Context, host string, verify func() (bool, bool)) bool {
	g, first := e.gate(host)
	if first {
		e.settle(g, host, verify)
	}
	select {
	case <-g.done:
		return g.ok
	case <-ctx.Done():
		return false
	}
}

// remember records in the state that the task's destination now holds res.DstDigest from
// res.Digest (not in a dry run, which writes nothing).
func (e *Engine) remember(st *checked, res *Result) {
	if e.o.State == nil || e.o.DryRun || res.Digest == "" || res.DstDigest == "" {
		return
	}
	ent := state.Entry{Src: res.Digest, Dst: res.DstDigest, Variant: e.variant}
	if st.srcDesc.Digest.String() == res.Digest {
		ent.SrcType, ent.SrcSize = string(st.srcDesc.MediaType), st.srcDesc.Size
	}
	e.o.State.Put(st.dst.Name(), ent)
}
