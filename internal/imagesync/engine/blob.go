package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	src     *name.Repository // where the blob is read from (chunked uploads reopen it at an offset)
	open    func() (io.ReadCloser, error)
	counter *atomic.Int64
	opened  atomic.Bool
	// mismatch is set when the source's bytes did not hash to the digest.
	mismatch atomic.Pointer[DigestMismatchError]
}

// DigestMismatchError is content that does not match its digest: the source registry served
// corrupt (or substituted) bytes. Nothing is written under the image's tag.
type DigestMismatchError struct {
	Digest, Got string
	Bytes       int64
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("the source sent content that does not match its digest %s (%d bytes hash to %s); the source registry holds a corrupt blob", e.Digest, e.Bytes, e.Got)
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
	return &countingReader{ReadCloser: rc, n: l.counter, l: l, h: sha256.New()}, nil
}

// countingReader counts the bytes read, and hashes them so that a failed digest check (which
// go-containerregistry reports at the end of the body) is recognised as such.
type countingReader struct {
	io.ReadCloser
	n     *atomic.Int64
	l     *blobLayer
	h     hash.Hash
	total int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	c.h.Write(p[:n])
	c.total += int64(n)
	if err != nil && err != io.EOF && c.l.desc.Digest.Algorithm == "sha256" && c.l.desc.Size > 0 && c.total == c.l.desc.Size {
		if got := "sha256:" + hex.EncodeToString(c.h.Sum(nil)); got != c.l.desc.Digest.String() {
			m := &DigestMismatchError{Digest: c.l.desc.Digest.String(), Got: got, Bytes: c.total}
			c.l.mismatch.Store(m)
			return n, m
		}
	}
	return n, err
}

// blobTracker remembers, for this run, which repositories of each destination registry hold a
// blob, and makes concurrent requests for one blob on one registry wait for a single upload; later
// repositories get a cross-repository mount, each at most once.
type blobTracker struct {
	mu sync.Mutex
	m  map[string]*blobState // key: registry + "\x00" + digest
}

type blobState struct {
	repos map[string]*slot // repository (registry/repo) → its upload or mount
}

type slot struct {
	done chan struct{}
	err  error
}

func (s *slot) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ensureBlob puts blob d into dst, uploading it at most once per destination registry per run and
// mounting it from a repository that already holds it otherwise.
func (e *Engine) ensureBlob(ctx context.Context, src, dst name.Repository, d v1.Descriptor, counter *atomic.Int64) (string, error) {
	key := dst.RegistryStr() + "\x00" + d.Digest.String()
	layer := &blobLayer{desc: d, src: &src, counter: counter, open: func() (io.ReadCloser, error) {
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
			st = &blobState{repos: map[string]*slot{}}
			e.blobs.m[key] = st
		}
		if sl, ok := st.repos[dst.String()]; ok {
			// this repository is being (or has been) served by someone else
			e.blobs.mu.Unlock()
			select {
			case <-sl.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if sl.err == nil {
				return BlobDeduplicated, nil
			}
			continue // it failed and was removed: try ourselves
		}
		// pick a finished repository to mount from; wait if the first upload is still running
		var from string
		var pending *slot
		for r, sl := range st.repos {
			if sl.finished() && sl.err == nil {
				from = r
				break
			}
			if !sl.finished() {
				pending = sl
			}
		}
		if from == "" && pending != nil {
			e.blobs.mu.Unlock()
			select {
			case <-pending.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			continue
		}
		mine := &slot{done: make(chan struct{})}
		st.repos[dst.String()] = mine
		e.blobs.mu.Unlock()

		fromRepo := dst
		if from != "" {
			var err error
			if fromRepo, err = name.NewRepository(from, e.nameOpts(dst.RegistryStr())...); err != nil {
				mine.err = err
			}
		}
		how := ""
		if mine.err == nil {
			how, mine.err = e.upload(ctx, dst, fromRepo, layer)
		}
		if mine.err != nil {
			e.blobs.mu.Lock()
			delete(st.repos, dst.String())
			e.blobs.mu.Unlock()
		}
		close(mine.done)
		return how, mine.err
	}
}
