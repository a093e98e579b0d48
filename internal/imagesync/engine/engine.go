// Package engine copies images between registries byte-exactly: manifests and indexes are moved as
// their raw bytes, children before parents and blobs before manifests; unchanged images are skipped
// with one HEAD per side, or with one source HEAD alone when the state remembers the destination;
// each blob is uploaded once per destination registry per run and mounted into other repositories.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferrypull/ferry/internal/imagesync/plan"
	"github.com/ferrypull/ferry/internal/imagesync/state"
	"github.com/ferrypull/ferry/internal/registry"
)

// Status of one task.
type Status string

// Task outcomes.
const (
	Copied  Status = "copied"
	Skipped Status = "skipped"
	Failed  Status = "failed"
	Planned Status = "planned" // --dry-run: would be copied
)

// Upstream's messages, kept verbatim for the compat log.
const (
	MsgExists     = "skip synchronization because destination image exists"
	MsgNoPlatform = "skip synchronization because no manifest fits platform filters"
)

// Result of one task.
type Result struct {
	Task      plan.Task
	Status    Status
	Digest    string // source digest of the top-level manifest
	DstDigest string // destination digest (differs from Digest only when a rewrite filter applied)
	Bytes     int64  // blob bytes streamed to the destination (dry run: bytes that would be checked)
	Message   string
	Err       error
	Duration  time.Duration
	// FromState: skipped because the state remembered the destination (it was not asked).
	FromState bool
}

// BlobEvent reports one blob handled for a task.
type BlobEvent struct {
	Task   plan.Task
	Digest string
	Size   int64
	How    string // BlobUploaded, BlobMounted, BlobDeduplicated or BlobExists
	Err    error
}

// ManifestEvent reports one manifest written.
type ManifestEvent struct {
	Task      plan.Task
	Ref       string // destination reference written
	MediaType string
	Err       error
}

// Observer receives progress events; methods must be safe for concurrent use.
type Observer interface {
	Blob(BlobEvent)
	Manifest(ManifestEvent)
}

type nopObserver struct{}

func (nopObserver) Blob(BlobEvent)         {}
func (nopObserver) Manifest(ManifestEvent) {}

// Options configure an Engine.
type Options struct {
	// Transport is the base transport (default: registry.NewHostTransport(Hosts) behind
	// registry.NewGuard and registry.NewRetry). It is the only retry layer:
	// go-containerregistry's own retries are turned off so attempts do not multiply.
	Transport http.RoundTripper
	Keychain  authn.Keychain
	Hosts     registry.Hosts
	// BlobJobs bounds concurrent blob copies per image (default 4).
	BlobJobs int
	Filter   PlatformFilter
	Force    bool
	DryRun   bool
	Observer Observer
	// Referrers also copies OCI referrers and cosign .sig/.att/.sbom tags of every image
	// (copied or unchanged), at the cost of a few extra requests per image.
	Referrers bool
	// RealmPolicy decides which token realms may receive a registry's credentials (nil:
	// registry.SameSite).
	RealmPolicy registry.RealmPolicy
	// State, if set, remembers what each destination holds across runs: a source tag whose digest
	// is unchanged since it was copied or confirmed is skipped without asking the destination
	// (after one spot check per destination registry per Engine). Ignored with Force; read-only
	// with DryRun.
	State *state.Store
}

// Engine copies images. It is safe for concurrent use; one Engine per run shares tokens,
// connections and the blob tracker across all tasks.
type Engine struct {
	o      Options
	ropts  []remote.Option
	puller *remote.Puller
	pusher *remote.Pusher
	blobs  blobTracker
	push   pushClients

	planMu  sync.Mutex
	planned map[string]bool // dry run: registry + digest already counted

	srcMu    sync.Mutex
	srcHeads map[string]*headEntry

	variant string         // the platform filter, as recorded in the state
	bg      sync.WaitGroup // SpotCheck's goroutines; Run joins them
	trustMu sync.Mutex
	trust   map[string]*trustGate // destination registry → spot-check verdict
}

// trustGate is the verdict of the one spot check per destination registry.
type trustGate struct {
	done chan struct{}
	ok   bool
}

type headEntry struct {
	done  chan struct{}
	d     v1.Descriptor
	found bool
	err   error
}

// headSource HEADs a source reference once per run, however many destinations it has; failures
// are not remembered so a retry round asks again.
func (e *Engine) headSource(ctx context.Context, ref name.Reference) (v1.Descriptor, bool, error) {
	key := ref.String()
	e.srcMu.Lock()
	if h, ok := e.srcHeads[key]; ok {
		e.srcMu.Unlock()
		select {
		case <-h.done:
		case <-ctx.Done():
			return v1.Descriptor{}, false, ctx.Err()
		}
		if h.err == nil {
			return h.d, h.found, nil
		}
		return e.headDesc(ctx, ref)
	}
	h := &headEntry{done: make(chan struct{})}
	e.srcHeads[key] = h
	e.srcMu.Unlock()
	h.d, h.found, h.err = e.headDesc(ctx, ref)
	if h.err != nil {
		e.srcMu.Lock()
		delete(e.srcHeads, key)
		e.srcMu.Unlock()
	}
	close(h.done)
	return h.d, h.found, h.err
}

// New builds an Engine.
func New(o Options) (*Engine, error) {
	if o.BlobJobs <= 0 {
		o.BlobJobs = 4
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		ht, err := registry.NewHostTransport(o.Hosts)
		if err != nil {
			return nil, err
		}
		o.Transport = registry.NewRetry(registry.NewGuard(ht, registry.Limits{}), registry.DefaultRetryPolicy)
	}
	o.Transport = registry.NewConditional(registry.NewRealmGuard(registry.NewPingCache(o.Transport), o.RealmPolicy))
	ropts := []remote.Option{
		remote.WithTransport(o.Transport),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithJobs(64),
		remote.WithUserAgent("ferry-image-syncer"),
		// one retry layer only (Options.Transport): ggcr's per-request and per-upload retries would
		// multiply its attempts (5 × 5 per request before, times the --retries rounds)
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
	p, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}
	pu, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	return &Engine{o: o, ropts: ropts, puller: p, pusher: pu, blobs: blobTracker{m: map[string]*blobState{}}, push: pushClients{m: map[string]*pushClient{}},
		planned: map[string]bool{}, srcHeads: map[string]*headEntry{}, variant: o.Filter.String(), trust: map[string]*trustGate{}}, nil
}

func (e *Engine) nameOpts(host string) []name.Option {
	return e.o.Hosts.NameOptions(host)
}

func (e *Engine) repo(s string) (name.Repository, error) {
	reg, _, _ := strings.Cut(s, "/")
	return name.NewRepository(s, e.nameOpts(reg)...)
}

// Copy runs one task. It never panics: a panic is recovered and reported as a failed result.
func (e *Engine) Copy(ctx context.Context, t plan.Task) Result {
	res := Result{Task: t}
	var counter atomic.Int64
	e.stage(&res, &counter, time.Now(), func() error { return e.copy(ctx, t, &res, &counter) })
	return res
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// head returns the digest of ref with one HEAD, falling back to a GET when the registry does not
// send Docker-Content-Digest. found is false on 404.
func (e *Engine) head(ctx context.Context, ref name.Reference) (d v1.Hash, found bool, err error) {
	desc, found, err := e.headDesc(ctx, ref)
	return desc.Digest, found, err
}

// headDesc is head returning the whole descriptor (digest, media type, size).
func (e *Engine) headDesc(ctx context.Context, ref name.Reference) (d v1.Descriptor, found bool, err error) {
	desc, err := e.puller.Head(ctx, ref)
	if err == nil {
		return *desc, true, nil
	}
	if isNotFound(err) {
		return v1.Descriptor{}, false, nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return v1.Descriptor{}, false, err
	}
	g, gerr := e.puller.Get(ctx, ref)
	if gerr != nil {
		if isNotFound(gerr) {
			return v1.Descriptor{}, false, nil
		}
		return v1.Descriptor{}, false, gerr
	}
	return g.Descriptor, true, nil
}

func (e *Engine) refs(t plan.Task) (src, dst name.Reference, srcRepo, dstRepo name.Repository, err error) {
	if srcRepo, err = e.repo(t.SrcRepo); err != nil {
		return nil, nil, srcRepo, dstRepo, fmt.Errorf("source %s: %w", t.SrcRepo, err)
	}
	if dstRepo, err = e.repo(t.DstRepo); err != nil {
		return nil, nil, srcRepo, dstRepo, fmt.Errorf("destination %s: %w", t.DstRepo, err)
	}
	mk := func(r name.Repository, id string) (name.Reference, error) {
		if strings.Contains(id, ":") {
			if _, err := v1.NewHash(id); err != nil {
				return nil, err
			}
			return r.Digest(id), nil
		}
		if _, err := name.NewTag(r.String()+":"+id, e.nameOpts(r.RegistryStr())...); err != nil {
			return nil, err
		}
		return r.Tag(id), nil
	}
	if src, err = mk(srcRepo, t.SrcID); err != nil {
		return nil, nil, srcRepo, dstRepo, fmt.Errorf("source %s: %w", t.Source, err)
	}
	if dst, err = mk(dstRepo, t.DstID); err != nil {
		return nil, nil, srcRepo, dstRepo, fmt.Errorf("destination %s: %w", t.Dest, err)
	}
	return src, dst, srcRepo, dstRepo, nil
}

// checked is what the check stage learned about a task.
type checked struct {
	done             bool // skipped: nothing more to do
	src, dst         name.Reference
	srcRepo, dstRepo name.Repository
	dstDigest        v1.Hash
	dstFound         bool
	srcDesc          v1.Descriptor // the source manifest, when it was asked (HEAD or GET)
}

func (e *Engine) copy(ctx context.Context, t plan.Task, res *Result, counter *atomic.Int64) error {
	st, err := e.check(ctx, t, res)
	if err != nil {
		return err
	}
	if st.done {
		if e.o.Referrers && res.Digest != "" {
			return e.copyReferrers(ctx, t, st.srcRepo, st.dstRepo, res.Digest, counter)
		}
		return nil
	}
	return e.transfer(ctx, t, st, res, counter)
}

// check resolves the references and, unless --force, decides whether the destination already
// holds the source image: from the state with one source HEAD, or with one HEAD per side.
func (e *Engine) check(ctx context.Context, t plan.Task, res *Result) (*checked, error) {
	src, dst, srcRepo, dstRepo, err := e.refs(t)
	if err != nil {
		return nil, err
	}
	st := &checked{src: src, dst: dst, srcRepo: srcRepo, dstRepo: dstRepo}
	if e.o.Force {
		return st, nil
	}
	if done, err := e.checkState(ctx, t, st, res); done || err != nil {
		return st, err
	}
	// The no-op path: one HEAD per side, digest compare, no blob traffic. The destination is asked
	// first: when it lacks the tag, the source HEAD would be wasted (its manifest GET follows).
	st.dstDigest, st.dstFound, err = e.head(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("head destination %s: %w", t.Dest, err)
	}
	if st.dstFound && !e.o.Filter.Active() {
		srcDigest, err := e.sourceDigest(ctx, t, st)
		if err != nil {
			return nil, err
		}
		if srcDigest == st.dstDigest {
			e.skipped(st, res, srcDigest.String(), st.dstDigest.String())
			e.remember(st, res)
		}
	}
	return st, nil
}

// sourceDigest is the digest the task's source points at: its own for a digest reference, else
// one HEAD (shared by every destination of the source), whose descriptor is kept in st.
func (e *Engine) sourceDigest(ctx context.Context, t plan.Task, st *checked) (v1.Hash, error) {
	if t.ByDigest {
		return v1.NewHash(t.SrcID)
	}
	d, found, err := e.headSource(ctx, st.src)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("head source %s: %w", t.Source, err)
	}
	if !found {
		return v1.Hash{}, fmt.Errorf("source %s: manifest unknown", t.Source)
	}
	st.srcDesc = d
	return d.Digest, nil
}

func (e *Engine) skipped(st *checked, res *Result, srcDigest, dstDigest string) {
	res.Status, res.Message = Skipped, MsgExists
	res.Digest, res.DstDigest = srcDigest, dstDigest
	st.done = true
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

// transfer fetches the source manifest and copies the tree.
func (e *Engine) transfer(ctx context.Context, t plan.Task, st *checked, res *Result, counter *atomic.Int64) error {
	src, dst, srcRepo, dstRepo := st.src, st.dst, st.srcRepo, st.dstRepo
	dstDigest, dstFound := st.dstDigest, st.dstFound
	desc, err := e.puller.Get(ctx, src)
	if err != nil {
		return fmt.Errorf("get source manifest %s: %w", t.Source, err)
	}
	res.Digest = desc.Digest.String()
	st.srcDesc = desc.Descriptor
	raw, mt := desc.Manifest, desc.MediaType
	var children []v1.Descriptor // nil: all children of an index
	if e.o.Filter.Active() {
		switch {
		case mt.IsIndex():
			kept, ignored, out, err := e.o.Filter.filterIndex(raw)
			if err != nil {
				return fmt.Errorf("source %s: %w", t.Source, err)
			}
			if len(kept) == 0 {
				res.Status, res.Message = Skipped, MsgNoPlatform
				return nil
			}
			if len(ignored) > 0 {
				ds := make([]string, len(ignored))
				for i, d := range ignored {
					ds[i] = d.Digest.String()
				}
				res.Message = fmt.Sprintf("%d sub manifests in the list are ignored: %s", len(ignored), strings.Join(ds, ", "))
			}
			children, raw = kept, out
		case mt.IsImage():
			ok, err := e.imageMatches(ctx, srcRepo, raw)
			if err != nil {
				return fmt.Errorf("source %s: %w", t.Source, err)
			}
			if !ok {
				res.Status, res.Message = Skipped, MsgNoPlatform
				return nil
			}
		}
	}
	topDigest, _, err := v1.SHA256(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	res.DstDigest = topDigest.String()
	if !e.o.Force && dstFound && dstDigest == topDigest {
		res.Status, res.Message = Skipped, MsgExists
		e.remember(st, res)
		return nil
	}
	if strings.Contains(t.DstID, ":") && topDigest.String() != t.DstID {
		// a filtered (rewritten) index cannot be pushed under the original digest
		return fmt.Errorf("source %s: a platform filter changed the index digest to %s; name a destination tag", t.Source, topDigest)
	}
	if e.o.DryRun {
		n, err := e.planBytes(ctx, srcRepo, dstRepo.RegistryStr(), raw, mt, children)
		res.Status = Planned
		counter.Add(n)
		return err
	}
	if err := e.copyTree(ctx, t, srcRepo, dstRepo, raw, mt, children, dst, counter); err != nil {
		return err
	}
	res.Status = Copied
	e.remember(st, res)
	if e.o.Referrers {
		return e.copyReferrers(ctx, t, srcRepo, dstRepo, res.Digest, counter)
	}
	return nil
}

// safeGo runs f in g, turning a panic into an error so no task is lost to it.
func safeGo(g *errgroup.Group, f func() error) {
	g.Go(func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
			}
		}()
		return f()
	})
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// manifestDeps lists what a manifest points at: child manifests (index) or blobs (image).
func manifestDeps(raw []byte, mt types.MediaType) (children, blobs []v1.Descriptor, err error) {
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
		if err != nil {
			return nil, nil, fmt.Errorf("parse index: %w", err)
		}
		return idx.Manifests, nil, nil
	case mt.IsSchema1():
		var s1 struct {
			FSLayers []struct {
				BlobSum v1.Hash `json:"blobSum"`
			} `json:"fsLayers"`
		}
		if err := json.Unmarshal(raw, &s1); err != nil {
			return nil, nil, fmt.Errorf("parse schema1 manifest: %w", err)
		}
		seen := map[v1.Hash]bool{}
		for _, l := range s1.FSLayers {
			if !seen[l.BlobSum] {
				seen[l.BlobSum] = true
				blobs = append(blobs, v1.Descriptor{Digest: l.BlobSum, Size: -1, MediaType: types.DockerLayer})
			}
		}
		return nil, blobs, nil
	default: // Docker schema2, OCI manifests and artifacts
		m, err := v1.ParseManifest(strings.NewReader(string(raw)))
		if err != nil {
			return nil, nil, fmt.Errorf("parse manifest (%s): %w", mt, err)
		}
		seen := map[v1.Hash]bool{}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if d.Digest.Hex == "" || seen[d.Digest] || len(d.URLs) > 0 && !d.MediaType.IsDistributable() {
				continue
			}
			seen[d.Digest] = true
			blobs = append(blobs, d)
		}
		return nil, blobs, nil
	}
}

// copyTree writes a manifest after everything it references: children first (each skipped when the
// destination already has it by digest), blobs before the manifest.
func (e *Engine) copyTree(ctx context.Context, t plan.Task, srcRepo, dstRepo name.Repository, raw []byte, mt types.MediaType, children []v1.Descriptor, target name.Reference, counter *atomic.Int64) error {
	all, blobs, err := manifestDeps(raw, mt)
	if err != nil {
		return err
	}
	if children == nil {
		children = all
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.BlobJobs)
	for _, c := range children {
		safeGo(g, func() error {
			cref := dstRepo.Digest(c.Digest.String())
			if d, found, err := e.head(gctx, cref); err == nil && found && d == c.Digest {
				return nil // resumed run: this child is complete
			}
			cdesc, err := e.puller.Get(gctx, srcRepo.Digest(c.Digest.String()))
			if err != nil {
				return fmt.Errorf("get child manifest %s@%s: %w", srcRepo, c.Digest, err)
			}
			return e.copyTree(gctx, t, srcRepo, dstRepo, cdesc.Manifest, cdesc.MediaType, nil, cref, counter)
		})
	}
	for _, b := range blobs {
		safeGo(g, func() error {
			if b.Size < 0 { // schema1 carries no sizes
				b.Size = -1
			}
			how, err := e.ensureBlob(gctx, srcRepo, dstRepo, b, counter)
			err = explainPush(err, dstRepo)
			e.o.Observer.Blob(BlobEvent{Task: t, Digest: b.Digest.String(), Size: b.Size, How: how, Err: err})
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	err = explainPush(e.pusher.Put(ctx, target, rawManifest{raw: raw, mt: mt}), dstRepo)
	e.o.Observer.Manifest(ManifestEvent{Task: t, Ref: target.String(), MediaType: string(mt), Err: err})
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", target, err)
	}
	return nil
}

// planBytes sums the sizes of the blobs an image references that no earlier task of this run
// already counted for the same destination registry (dry run), so the run total is the unique
// bytes to transfer at most.
func (e *Engine) planBytes(ctx context.Context, srcRepo name.Repository, dstReg string, raw []byte, mt types.MediaType, children []v1.Descriptor) (int64, error) {
	all, blobs, err := manifestDeps(raw, mt)
	if err != nil {
		return 0, err
	}
	if children == nil {
		children = all
	}
	var n int64
	e.planMu.Lock()
	for _, b := range blobs {
		if k := dstReg + "\x00" + b.Digest.String(); !e.planned[k] && b.Size > 0 {
			e.planned[k] = true
			n = satAdd(n, b.Size)
		}
	}
	e.planMu.Unlock()
	for _, c := range children {
		cdesc, err := e.puller.Get(ctx, srcRepo.Digest(c.Digest.String()))
		if err != nil {
			return n, fmt.Errorf("get child manifest %s@%s: %w", srcRepo, c.Digest, err)
		}
		m, err := e.planBytes(ctx, srcRepo, dstReg, cdesc.Manifest, cdesc.MediaType, nil)
		n = satAdd(n, m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// satAdd adds two non-negative byte counts, stopping at math.MaxInt64 instead of wrapping
// around: sizes come from manifests, which a registry may fill with anything.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// imageMatches checks a single image's config os/architecture against the filter.
func (e *Engine) imageMatches(ctx context.Context, srcRepo name.Repository, raw []byte) (bool, error) {
	m, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return false, fmt.Errorf("parse manifest: %w", err)
	}
	l, err := e.puller.Layer(ctx, srcRepo.Digest(m.Config.Digest.String()))
	if err != nil {
		return false, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return false, fmt.Errorf("get config %s: %w", m.Config.Digest, err)
	}
	defer rc.Close()
	var cfg struct {
		OS           string `json:"os"`
		OSVersion    string `json:"os.version"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	if err := json.NewDecoder(io.LimitReader(rc, 8<<20)).Decode(&cfg); err != nil {
		return false, fmt.Errorf("parse config %s: %w", m.Config.Digest, err)
	}
	return e.o.Filter.Match(&v1.Platform{OS: cfg.OS, OSVersion: cfg.OSVersion, Architecture: cfg.Architecture, Variant: cfg.Variant}), nil
}

// RunOptions configure Run.
type RunOptions struct {
	// Jobs is the number of images copied at once (upstream --proc).
	Jobs int
	// CheckJobs is the number of HEAD comparisons at once (default 4×Jobs, at least 16).
	CheckJobs int
	// Rounds is the number of extra rounds for failed tasks (upstream --retries).
	Rounds int
	// OnRound is called before each retry round (for the compat log line).
	OnRound func(round int)
	// OnResult is called for each finished task of each round.
	OnResult func(Result)
}

// stage runs f for a task with panic recovery, filling in the bookkeeping of res.
func (e *Engine) stage(res *Result, counter *atomic.Int64, start time.Time, f func() error) {
	defer func() {
		if p := recover(); p != nil {
			res.Err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
		}
		res.Bytes = counter.Load()
		res.Duration = time.Since(start)
		if res.Err != nil {
			res.Status = Failed
		}
	}()
	res.Err = f()
}

// Run copies every task, then re-runs failed tasks up to o.Rounds times, and returns the final
// result of every task in task order. Tasks flow through two stages connected by a channel: many
// cheap HEAD comparisons at once, and o.Jobs transfers at once; unchanged images never reach the
// second stage.
func (e *Engine) Run(ctx context.Context, tasks []plan.Task, o RunOptions) []Result {
	defer e.bg.Wait() // the spot checks SpotCheck started end with the run
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	if o.CheckJobs <= 0 {
		o.CheckJobs = max(4*o.Jobs, 16)
	}
	results := make([]Result, len(tasks))
	todo := make([]int, len(tasks))
	for i := range tasks {
		todo[i] = i
	}
	type pending struct {
		i       int
		st      *checked
		counter *atomic.Int64
		start   time.Time
	}
	for round := 0; round <= o.Rounds && len(todo) > 0; round++ {
		if round > 0 && o.OnRound != nil {
			o.OnRound(round)
		}
		work := make(chan int)
		transfers := make(chan pending)
		var checkers, copiers sync.WaitGroup
		finish := func(i int) {
			if o.OnResult != nil {
				o.OnResult(results[i])
			}
		}
		for range min(o.CheckJobs, len(todo)) {
			checkers.Add(1)
			go func() {
				defer checkers.Done()
				for i := range work {
					p := pending{i: i, counter: &atomic.Int64{}, start: time.Now()}
					results[i] = Result{Task: tasks[i]}
					e.stage(&results[i], p.counter, p.start, func() error {
						var err error
						p.st, err = e.check(ctx, tasks[i], &results[i])
						if err == nil && p.st.done && e.o.Referrers && results[i].Digest != "" {
							err = e.copyReferrers(ctx, tasks[i], p.st.srcRepo, p.st.dstRepo, results[i].Digest, p.counter)
						}
						return err
					})
					if results[i].Status == Failed || p.st == nil || p.st.done {
						finish(i)
						continue
					}
					transfers <- p
				}
			}()
		}
		for range min(o.Jobs, len(todo)) {
			copiers.Add(1)
			go func() {
				defer copiers.Done()
				for p := range transfers {
					e.stage(&results[p.i], p.counter, p.start, func() error {
						return e.transfer(ctx, tasks[p.i], p.st, &results[p.i], p.counter)
					})
					finish(p.i)
				}
			}()
		}
		for _, i := range todo {
			work <- i
		}
		close(work)
		checkers.Wait()
		close(transfers)
		copiers.Wait()
		var next []int
		for _, i := range todo {
			if results[i].Status == Failed && ctx.Err() == nil {
				next = append(next, i)
			}
		}
		todo = next
	}
	return results
}
