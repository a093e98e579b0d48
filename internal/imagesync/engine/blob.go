package engine

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// How a blob reached its destination repository.
const (
	BlobUploaded     = "uploaded"     // streamed from the source
	BlobMounted      = "mounted"      // cross-repository mount (or already present)
	BlobDeduplicated = "deduplicated" // another image of this run already put it in this repository
	BlobExists       = "exists"       // already in the destination repository
)

// blobLayer is a v1.Layer described by its descriptor whose bytes stream from the source on demand
// (ggcr verifies the digest while reading). Bytes read are added to counter.
type blobLayer struct {
	desc    v1.Descriptor
	open    func() (io.ReadCloser, error)
	counter *atomic.Int64
	opened  atomic.Bool
}

func (l *blobLayer) Digest() (v1.Hash, error) { return l.desc.Digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error) {
	return v1.Hash{}, errors.New("diffid not needed for copy")
}
func (l *blobLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("uncompressed not needed for copy")
}

func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	l.opened.Store(true)
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, n: l.counter}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// blobTracker remembers, for this run, which repositories of each destination registry hold a
// blob, and makes concurrent requests for one blob on one registry wait for a single upload.
type blobTracker struct {
	mu sync.Mutex
	m  map[string]*blobState // key: registry + "\x00" + digest
}

type blobState struct {
	done  chan struct{}
	err   error
	repos map[string]bool // repositories (registry/repo) known to hold the blob
}

// ensure puts blob d into dst, uploading it at most once per destination registry per run and
// mounting it from a repository that already holds it otherwise.
func (e *Engine) ensureBlob(ctx context.Context, src, dst name.Repository, d v1.Descriptor, counter *atomic.Int64) (string, error) {
	key := dst.RegistryStr() + "\x00" + d.Digest.String()
	layer := &blobLayer{desc: d, counter: counter, open: func() (io.ReadCloser, error) {
		l, err := e.puller.Layer(ctx, src.Digest(d.Digest.String()))
		if err != nil {
			return nil, err
		}
		return l.Compressed()
	}}
	for {
		e.blobs.mu.Lock()
		st, ok := e.blobs.m[key]
		if !ok {
			st = &blobState{done: make(chan struct{}), repos: map[string]bool{}}
			e.blobs.m[key] = st
			e.blobs.mu.Unlock()
			err := e.pusher.Upload(ctx, dst, layer)
			e.blobs.mu.Lock()
			if err == nil {
				st.repos[dst.String()] = true
			} else {
				st.err = err
				delete(e.blobs.m, key)
			}
			e.blobs.mu.Unlock()
			close(st.done)
			if err != nil {
				return "", err
			}
			if layer.opened.Load() {
				return BlobUploaded, nil
			}
			return BlobExists, nil
		}
		select {
		case <-st.done:
		default:
			e.blobs.mu.Unlock()
			select {
			case <-st.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			continue
		}
		if st.err != nil { // the owner failed and removed it; try again as the owner
			e.blobs.mu.Unlock()
			continue
		}
		if st.repos[dst.String()] {
			e.blobs.mu.Unlock()
			return BlobDeduplicated, nil
		}
		var from string
		for r := range st.repos {
			from = r
			break
		}
		e.blobs.mu.Unlock()
		fromRepo, err := name.NewRepository(from, e.nameOpts(dst.RegistryStr())...)
		if err != nil {
			return "", err
		}
		err = e.pusher.Upload(ctx, dst, &remote.MountableLayer{Layer: layer, Reference: fromRepo.Digest(d.Digest.String())})
		if err != nil {
			return "", err
		}
		e.blobs.mu.Lock()
		st.repos[dst.String()] = true
		e.blobs.mu.Unlock()
		if layer.opened.Load() {
			return BlobUploaded, nil
		}
		return BlobMounted, nil
	}
}
