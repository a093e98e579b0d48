package engine

// Single-flight HEADs of source manifests: one request per reference, shared by every task that needs it.

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

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
