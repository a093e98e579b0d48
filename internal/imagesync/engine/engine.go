// Package engine copies images between registries byte-exactly: manifests and indexes are moved as
// their raw bytes, children before parents and blobs before manifests; unchanged images are skipped
// with one HEAD per side, or with one source HEAD alone when the state remembers the destination;
// each blob is uploaded once per destination registry per run and mounted into other repositories.
package engine

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
	// ChunkSize: a blob larger than this is uploaded in chunks (PATCH with Content-Range) and, after
	// a reset or 5xx mid-blob, resumed from the offset the registry reports, re-reading the source
	// from there with a Range request. 0: DefaultChunkSize; negative: always one monolithic PUT.
	ChunkSize int64
	Filter    PlatformFilter
	Force     bool
	DryRun    bool
	Observer  Observer
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

// New builds an Engine.
func New(o Options) (*Engine, error) {
	if o.BlobJobs <= 0 {
		o.BlobJobs = 4
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
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
