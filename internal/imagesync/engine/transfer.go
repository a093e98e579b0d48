package engine

// The transfer of one task: checks against source, destination and state, then the manifest tree and its blobs.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferrypull/ferry/internal/imagesync/plan"
)

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
