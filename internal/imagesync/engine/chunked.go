package engine

// Resumable blobs: large blobs go up in chunks and a failure mid-blob resumes where the registry
// says it is, re-reading the source from that offset.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// DefaultChunkSize is the chunk of a chunked upload (Options.ChunkSize): a failure costs at most
// this much re-sent, and blobs up to it go up in one PUT.
const DefaultChunkSize = 64 << 20

// maxResumes bounds the resumptions of one blob (each after a failed chunk).
const maxResumes = 8

// chunkedUpload sends layer to the upload session at loc in chunks: PATCH with Content-Range, then
// the final PUT ?digest=. After a failed chunk it asks the registry how far the upload got (GET on
// the upload URL: 204 with Range: 0-<last byte>), reopens the source at that offset (a Range
// request) and goes on. The registry verifies the digest at the PUT.
func (e *Engine) chunkedUpload(ctx context.Context, c *http.Client, dst name.Repository, loc *url.URL, layer *blobLayer) (string, error) {
	layer.opened.Store(true)
	d, size := layer.desc.Digest.String(), layer.desc.Size
	var offset int64
	var src io.ReadCloser
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	for resumes := 0; offset < size; {
		if src == nil {
			var err error
			if src, err = e.openSourceAt(ctx, layer, offset); err != nil {
				return "", err
			}
		}
		n := min(e.o.ChunkSize, size-offset)
		next, err := e.patch(ctx, c, loc, io.LimitReader(src, n), offset, n)
		if err == nil {
			loc, offset = next, offset+n
			continue
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if resumes++; resumes > maxResumes {
			return "", fmt.Errorf("upload of %s to %s: gave up after %d resumptions: %w", d, dst, maxResumes, err)
		}
		at, status, serr := uploadStatus(ctx, c, loc)
		if serr != nil {
			return "", fmt.Errorf("upload of %s to %s failed at byte %d (%w) and its status is unknown: %w", d, dst, offset, err, serr)
		}
		loc, offset = status, at
		src.Close()
		src = nil // reopened at the registry's offset
	}
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), http.NoBody)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(put)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusBadRequest && strings.Contains(err.Error(), "DIGEST_INVALID") {
			return "", &DigestMismatchError{Digest: d, Got: "(the registry's check)", Bytes: size}
		}
		return "", err
	}
	return BlobUploaded, nil
}

// patch sends one chunk and returns the upload URL for the next.
func (e *Engine) patch(ctx context.Context, c *http.Client, loc *url.URL, body io.Reader, offset, n int64) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+n-1))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return nil, err
	}
	return resp.Location()
}

// uploadStatus asks where an upload session is: the offset of the next byte it expects and the
// URL to continue at.
func uploadStatus(ctx context.Context, c *http.Client, loc *url.URL) (int64, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusNoContent); err != nil {
		return 0, nil, err
	}
	next := loc
	if l, err := resp.Location(); err == nil {
		next = l
	}
	r := resp.Header.Get("Range") // "0-<last byte received>"; none before the first byte
	if r == "" {
		return 0, next, nil
	}
	_, last, ok := strings.Cut(r, "-")
	end, err := strconv.ParseInt(last, 10, 64)
	if !ok || err != nil || end < -1 {
		return 0, nil, fmt.Errorf("upload status: bad Range %q", r)
	}
	return end + 1, next, nil
}

// openSourceAt streams the source blob from offset (a Range request when offset > 0), counting
// the bytes read like blobLayer.Compressed.
func (e *Engine) openSourceAt(ctx context.Context, layer *blobLayer, offset int64) (io.ReadCloser, error) {
	if layer.src == nil {
		return nil, errors.New("chunked upload: no source repository")
	}
	src := *layer.src
	auth, err := authn.Resolve(ctx, e.o.Keychain, src)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, src.Registry, auth, e.o.Transport, []string{src.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: src.Scheme(), Host: src.RegistryStr(), Path: "/v2/" + src.RepositoryStr() + "/blobs/" + layer.desc.Digest.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		want = http.StatusPartialContent
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, want); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("read %s from byte %d: %w", layer.desc.Digest, offset, err)
	}
	return &offsetCounter{ReadCloser: resp.Body, n: layer.counter}, nil
}

// offsetCounter adds the bytes read to the copy's byte counter.
type offsetCounter struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *offsetCounter) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
